"""Chapter 2's verdict and findings, from its tables: which stopping rule to use and what the
chapter measured, as text printed from the run's own numbers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

from lenna_core.latency.convergence import Rule
from lenna_core.latency.rule_choice import CRITERIA, RuleChoice, choose_rule
from lenna_core.latency.rule_replay import RecordedStream, compare_rules, summarise_replays


@dataclass(frozen=True)
class RuleVerdict:
    """The rule chosen at matched error, the cheapest on its own reference, and their costs."""

    choice: RuleChoice
    own: RuleChoice
    by_type: pd.DataFrame
    contiguous: pd.DataFrame
    ratio_contiguous: float
    report: str


def rule_verdict(pooled: pd.DataFrame, raw: pd.DataFrame, streams: Sequence[RecordedStream],
                 sweep: Mapping[str, Rule], candidates: Sequence[str], reference: str,
                 replicates: int, seed: int) -> RuleVerdict:
    """Choose the rule (:func:`~lenna_core.latency.rule_choice.choose_rule`), replay it and
    ``reference`` in recorded order, and report both as text."""
    choice = choose_rule(pooled, reference, candidates)
    own = choose_rule(pooled, reference, candidates, criteria=CRITERIA[1:])
    best, best_own, lenna = choice.row, own.row, choice.reference
    by_type = summarise_replays(raw[raw.rule.isin([reference, best.name])],
                                by=["block_type", "rule"])
    in_order = compare_rules(streams, {reference: sweep[reference], best.name: sweep[best.name]},
                             replicates, seed, resample="contiguous", per_replicate=True)
    contiguous = summarise_replays(in_order, by=["rule"]).set_index("rule")
    ratio_contiguous = float(contiguous.loc[reference, "passes_mean"]
                             / contiguous.loc[best.name, "passes_mean"])
    lines = [
        f"rule to use: {best.name}, matched on {choice.matched_on}",
        f"  passes per label {best.passes_mean:.0f} (LENNA {lenna.passes_mean:.0f}): "
        f"LENNA / chosen = {choice.saving:.1f}x",
        f"  err_p90 {best.err_p90:.2%} (LENNA {lenna.err_p90:.2%}); err_common_p90 "
        f"{best.err_common_p90:.2%} (LENNA {lenna.err_common_p90:.2%})",
        f"cheapest on its own reference ({own.matched_on}): {best_own.name}, "
        f"{best_own.passes_mean:.0f} passes, LENNA / it = {own.saving:.1f}x, "
        f"err_common_p90 {best_own.err_common_p90:.2%}",
        by_type[["block_type", "rule", "passes_mean", "resets_mean", "err_p90",
                 "err_common_p90"]].to_string(index=False),
        "in recorded order:",
        contiguous[["passes_mean", "err_p90", "err_common_p90", "stopped_by_rule"]].to_string(),
        f"LENNA / chosen in recorded order = {ratio_contiguous:.1f}x",
    ]
    return RuleVerdict(choice, own, by_type, contiguous, ratio_contiguous, "\n".join(lines))


def span(values: Sequence[float] | pd.Series, fmt: str = "{:.2f}") -> str:
    """"``low`` to ``high``" of ``values``, each formatted with ``fmt`` (words, not a hyphen,
    which reads as a minus sign beside negative values); an infinite end reads "unbounded"."""
    low, high = (("unbounded" if math.isinf(v) else fmt.format(v))
                 for v in (min(values), max(values)))
    return low if low == high else f"{low} to {high}"


def machine_vs_gates(overview: pd.DataFrame) -> str:
    """How the spread between resets of the one-hot blocks (the machine alone) compares with
    that of the gated blocks (the machine and the sampled cells), in words."""
    cv = overview["between resets (CV)"]
    onehot, gated = cv[overview.temperature == 0], cv[overview.temperature != 0]
    if onehot.empty or gated.empty:
        return "**Between resets**"
    share = float(onehot.max() / gated.max())
    if share >= 0.5:
        return "**Between resets, the machine varies about as much as the gates do.**"
    return (f"**Between resets, the gates vary far more than the machine** (the one-hot "
            f"blocks' largest CV is {share:.0%} of the gated blocks').")


def convergence_findings(*, overview: pd.DataFrame, per_block: pd.DataFrame,
                         pooled: pd.DataFrame, reference: str, code_rule: str,
                         k_star: pd.DataFrame, first_setting: tuple[int, int],
                         verdict: RuleVerdict, totals: pd.DataFrame, labels: int,
                         repeatability: Mapping, repeatability_chunk: int,
                         block: str, seconds: float) -> str:
    """Chapter 2's findings as Markdown bullets, every number taken from the tables given."""
    onehot = overview[overview.temperature == 0]
    lenna_blocks = per_block[per_block.rule == reference]
    table = pooled.set_index("rule")
    lenna, code_row = table.loc[reference], table.loc[code_rule]
    choice, own = verdict.choice, verdict.own
    best, best_own = choice.row, own.row
    differences = {(r["protocol"], r["cell"]): r["relative_difference"]
                   for r in repeatability["results"]}
    bounds = k_star[f"bound {first_setting[0]}+{first_setting[1]}"]
    findings = [
        f"{machine_vs_gates(overview)} For {block}, a reset's median latency varies across "
        f"resets with a CV of {span(overview['between resets (CV)'])}; the one-hot blocks, "
        f"which time the same cell at every reset, vary by "
        f"{span(onehot['between resets (CV)'])}. Consecutive resets are correlated (lag-1 "
        f"autocorrelation {span(overview['lag-1 autocorrelation'])}). Timings within a reset "
        f"vary by a CV of {span(overview['within a reset (CV)'])}, and a cell's first pass "
        f"takes {span(overview['first pass / median'])}x its median.",
        f"**LENNA's rule** stopped after {span(lenna_blocks.resets_mean, '{:.0f}')} resets "
        f"(mean per block), {lenna.passes_mean:.0f} forward passes per label on average "
        f"({span(lenna_blocks.passes_mean, '{:.0f}')} per block), with a 90th-percentile error "
        f"of {lenna.err_p90:.1%} against its own long-run label "
        f"({span(100 * lenna_blocks.err_p90, '{:.1f}')}% per block). LENNA's code (patience "
        f"15) spends {code_row.passes_mean / lenna.passes_mean:.2f}x the passes for a "
        f"90th-percentile error of {code_row.err_p90:.1%}.",
        f"**Timings per reset.** The best number of timings, k*, is "
        f"{span(k_star['k* (warm-up only)'], '{:.1f}')} counting only the warm-up pass and "
        f"{span(k_star['k* (warm-up + build)'], '{:.1f}')} counting the cost of building the "
        f"cell; a rule that lost nothing to its stopping decision would save at most "
        f"{span(bounds, '{:.1f}')}x with {first_setting[0]} timing per reset.",
        f"**Matched error.** On its own reference, the cheapest standard-error rule (matched "
        f"on {own.matched_on}) is {best_own.name}: {best_own.passes_mean:.0f} passes per "
        f"label, LENNA's / its = {own.saving:.1f}x. The rule chosen, matched on "
        f"**{choice.matched_on}**, is {best.name}: {best.passes_mean:.0f} passes per label "
        f"({best.resets_mean:.0f} resets), LENNA's / its = **{choice.saving:.1f}x**, with "
        f"errors {best.err_p90:.1%} / {best.err_common_p90:.1%} against LENNA's "
        f"{lenna.err_p90:.1%} / {lenna.err_common_p90:.1%}; {verdict.ratio_contiguous:.1f}x "
        f"when replays read the resets in recorded order.",
        f"**Live labels** taken minutes after the long runs differ from them by a median of "
        f"{totals.loc[reference, 'median error']:.0%} (LENNA's rule) and "
        f"{totals.loc['chosen', 'median error']:.0%} (the chosen rule); the chosen rule spent "
        f"{totals.loc['chosen', 'forward passes']:,} passes on {labels} labels against "
        f"LENNA's {totals.loc[reference, 'forward passes']:,}.",
        f"**Repeatability.** One cell timed in two processes gave medians "
        f"{differences['sequential', 'normal']:.1%} and "
        f"{differences['sequential', 'reduction']:.1%} apart when the processes ran one after "
        f"the other, and {differences['interleaved', 'normal']:.2%} and "
        f"{differences['interleaved', 'reduction']:.2%} apart when they took turns every "
        f"{repeatability_chunk} passes.",
        f"The chapter ran in {seconds:.0f} s.",
    ]
    return "\n".join(f"- {line}" for line in findings)
