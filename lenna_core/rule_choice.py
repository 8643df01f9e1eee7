"""Which stopping rule to use, and on what grounds: chapter 2's verdict as data.

The replays give each candidate rule a cost (mean forward passes) and two errors (against its
own long-run label and against a common reference). A rule is *matched* when neither error
is worse than LENNA's. Whether any rule matches depends on the timings the chapter measured,
so the verdict must say which criterion the chosen rule met instead of silently falling back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from .rule_replay import cheapest_matching

# From the strictest criterion to none: (what it is called, the error columns it matches on).
CRITERIA = (("both references", ("err_p90", "err_common_p90")),
            ("its own reference only", ("err_p90",)))
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
