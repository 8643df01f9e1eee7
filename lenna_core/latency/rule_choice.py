"""Which stopping rule to use, and on what grounds: chapter 2's verdict as data.

The replays give each candidate rule a cost (mean forward passes) and two errors (against its
own long-run label and against a common reference). A rule is *matched* when neither error
is worse than LENNA's. Whether any rule matches depends on the timings the chapter measured,
so the verdict must say which criterion the chosen rule met instead of silently falling back.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from lenna_core.latency.convergence import Rule, StandardErrorRule
from lenna_core.latency.rule_replay import cheapest_matching

# From the strictest criterion to none: (what it is called, the error columns it matches on).
CRITERIA = (("both references", ("err_p90", "err_common_p90")),
            ("its own reference only", ("err_p90",)))
#: The columns of :func:`matched_settings`'s table after the setting's own.
MATCHED_COLUMNS = ("target", "passes per label", "resets", "err_p90", "err_common_p90",
                   "LENNA / these passes")
UNMATCHED = "neither reference (no rule tried matched LENNA's error; the most precise one)"


@dataclass(frozen=True)
class RuleChoice:
    """The chosen rule's pooled row, the criterion it met, and LENNA's row to compare with."""

    row: pd.Series
    matched_on: str
    reference: pd.Series

    @property
    def name(self) -> str:
        """The chosen rule's name (its row label in the pooled table)."""
        return str(self.row.name)

    @property
    def saving(self) -> float:
        """LENNA's mean forward passes per label over the chosen rule's."""
        return float(self.reference.passes_mean / self.row.passes_mean)

    @property
    def matched_both(self) -> bool:
        """True when the chosen rule is no worse than LENNA's on both references."""
        return self.matched_on == CRITERIA[0][0]


def choose_rule(pooled: pd.DataFrame, reference: str, candidates: Sequence[str],
                criteria: Sequence[tuple[str, Sequence[str]]] = CRITERIA) -> RuleChoice:
    """The cheapest of ``candidates`` that matches ``reference`` on the first criterion any
    of them meets; if none meets any, the candidate with the smallest ``err_p90``."""
    if not candidates:
        raise ValueError("candidates is empty: give at least one rule name from the table")
    table = pooled.set_index("rule")
    for label, columns in criteria:
        row = cheapest_matching(pooled, reference, candidates, error_columns=columns)
        if row is not None:
            return RuleChoice(row, label, table.loc[reference])
    closest = table.loc[list(candidates)].sort_values(["err_p90", "passes_mean"]).iloc[0]
    return RuleChoice(closest, UNMATCHED, table.loc[reference])


def standard_error_sweep(base: Mapping[str, Rule], settings: Sequence[tuple[int, int]],
                         min_resets: Sequence[int], target_range: Sequence[float],
                         target_count: int) -> tuple[dict[str, Rule], dict[tuple, list[str]]]:
    """``base`` plus the standard-error rule at ``target_count`` targets spaced geometrically
    over ``target_range``, for every (timings, warm-up) of ``settings`` and every minimum of
    resets; also the rule names of each (timings, warm-up, min resets)."""
    sweep, by_setting = dict(base), {}
    for (k, w), n in itertools.product(settings, min_resets):
        by_setting[k, w, n] = []
        for target in np.geomspace(*target_range, target_count):
            rule = StandardErrorRule(float(target), timings_per_reset=k, warmup_per_reset=w,
                                     min_resets=n)
            sweep[rule.name] = rule
            by_setting[k, w, n].append(rule.name)
    return sweep, by_setting


def matched_settings(pooled: pd.DataFrame, reference: str, by_setting: Mapping[tuple, list[str]],
                     sweep: Mapping[str, Rule]) -> tuple[pd.DataFrame, dict]:
    """Per criterion (own reference; own + common) and setting, the cheapest rule that matches
    ``reference``'s error, or None: as a table and by (criterion, timings, warm-up, min)."""
    lenna = pooled.set_index("rule").loc[reference]
    rows, matched = [], {}
    for criterion, columns in (("own", ["err_p90"]),
                               ("own + common", ["err_p90", "err_common_p90"])):
        for (k, w, n), names in by_setting.items():
            m = cheapest_matching(pooled, reference, names, error_columns=columns)
            matched[criterion, k, w, n] = m
            found = {} if m is None else {
                "target": sweep[m.name].target_rel_error, "passes per label": m.passes_mean,
                "resets": m.resets_mean, "err_p90": m.err_p90,
                "err_common_p90": m.err_common_p90,
                "LENNA / these passes": lenna.passes_mean / m.passes_mean}
            rows.append({"matched on": criterion, "timings": k, "warm-up": w, "min resets": n,
                         **{column: found.get(column) for column in MATCHED_COLUMNS}})
    return pd.DataFrame(rows), matched
