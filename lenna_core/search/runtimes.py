"""One sweep, two runtimes: every derived network timed in torch eager and in ONNX Runtime.

A search penalised with one runtime's latency model finds cells for that runtime; whether its
gain holds in the other runtime is a question of the same runs timed there. Here: the cross
table (every setting's accuracy and latency in each runtime, with its change against plain
DARTS), the paired changes per runtime, and the findings in sentences.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from lenna_core.search.sweep import (
    BASELINE,
    SweepPoint,
    best_at_matched_accuracy,
    paired_differences,
    summarise_sweep,
)


@dataclass(frozen=True)
class Runtime:
    """A runtime the derived networks are timed in: its name in prose, the short ``key`` of
    its table columns, its results column (reference-scaled ms), and the estimator setting
    whose latency model predicts it."""

    label: str
    key: str
    column: str
    penalty: str


TORCH = Runtime("torch eager", "torch", "measured_ms", "mlp")
ONNX_RUNTIME = Runtime("ONNX Runtime", "ort", "measured_ort_ms", "onnxruntime")
RUNTIMES = (TORCH, ONNX_RUNTIME)
#: Penalties searching for another runtime than torch eager's: the torch-eager comparisons of
#: the predictors leave them out.
OTHER_RUNTIME_PENALTIES = frozenset(r.penalty for r in RUNTIMES if r != TORCH)


def timed_runtimes(results: pd.DataFrame, runtimes: Sequence[Runtime] = RUNTIMES
                   ) -> list[Runtime]:
    """The ``runtimes`` whose latency column ``results`` holds."""
    return [r for r in runtimes if r.column in results]


def cross_table(results: pd.DataFrame, runtimes: Sequence[Runtime] = RUNTIMES) -> pd.DataFrame:
    """Per setting (estimator, lambda): mean and std over seeds of the test accuracy and of the
    latency in each runtime timed (``<key>_ms_mean``, ``<key>_ms_std``), and the change of the
    mean latency against plain DARTS's in that runtime (``<key>_change_pct``)."""
    present = timed_runtimes(results, runtimes)
    if not present:
        raise ValueError(f"results hold none of {[r.column for r in runtimes]}")
    keys = ["estimator", "penalty", "lam"]
    table = summarise_sweep(results, present[0].column)[
        [*keys, "seeds", "acc_mean", "acc_std"]]
    for runtime in present:
        summary = summarise_sweep(results, runtime.column).rename(columns={
            "latency_mean": f"{runtime.key}_ms_mean", "latency_std": f"{runtime.key}_ms_std",
            "latency_change_pct": f"{runtime.key}_change_pct"})
        wanted = [c for c in summary if c.startswith(f"{runtime.key}_")]
        table = table.merge(summary[[*keys, *wanted]], on=keys, how="left")
    return table


def paired_table(results: pd.DataFrame, runtimes: Sequence[Runtime] = RUNTIMES,
                 confidence: float = 0.95) -> pd.DataFrame:
    """Per setting, its runs against plain DARTS's run of the same seed: the mean change in
    accuracy (points) and in each timed runtime's latency (%), each with the half-width of
    its ``confidence`` interval over the seeds
    (:func:`~lenna_core.search.sweep.paired_differences`)."""
    present = timed_runtimes(results, runtimes)
    settings = results.loc[results["estimator"] != BASELINE, ["estimator", "lam"]]
    rows = []
    for estimator, lam in settings.drop_duplicates().itertuples(index=False):
        row = {"estimator": estimator, "lam": lam}
        for runtime in present:
            d = paired_differences(results, estimator, lam, confidence, runtime.column)
            row.update(seeds=d["seeds"], acc_change=d["acc_change"], acc_ci=d["acc_ci"])
            row[f"{runtime.key}_change_pct"] = d["latency_change_pct"]
            row[f"{runtime.key}_ci"] = d["latency_ci"]
        rows.append(row)
    return pd.DataFrame(rows)


def _change(d: dict) -> str:
    return f"{d['latency_change_pct']:+.1f} ± {d['latency_ci']:.1f}%"


def _holds(there: dict, own: dict) -> str:
    """Whether a gain seen in its own runtime (``own``) holds in another (``there``)."""
    change, ci = there["latency_change_pct"], there["latency_ci"]
    if change + ci < 0:
        kept = (f", {100 * change / own['latency_change_pct']:.0f}% of its gain in its own "
                "runtime" if own["latency_change_pct"] < 0 else "")
        return f"the gain holds (its interval lies below zero{kept})"
    if change - ci > 0:
        return "the gain reverses (its interval lies above zero: slower than plain DARTS)"
    return "the gain is not resolved (its interval includes zero)"


def _bar(d: dict, bar_pct: float, label: str) -> str:
    low, high = d["latency_change_pct"] - d["latency_ci"], d["latency_change_pct"] + d["latency_ci"]
    if high <= -bar_pct:
        verdict = "yes, the whole interval lies beyond it"
    elif low > -bar_pct:
        verdict = "no, the whole interval falls short of it"
    else:
        verdict = "not resolved, the interval straddles it"
    return f"At least {bar_pct:g}% faster in {label} than plain DARTS: {verdict}."


def findings(results: pd.DataFrame, tolerance: float = 1.0, bar_pct: float = 30.0,
             runtimes: Sequence[Runtime] = RUNTIMES) -> list[str]:
    """Sentences: for each runtime's own search (its penalty at the fastest lambda, in that
    runtime, whose mean accuracy is within ``tolerance`` points of plain DARTS's), its paired
    latency change in that runtime against ``bar_pct`` percent, and whether the gain holds
    in every other runtime timed. Says so where a runtime was not timed or not searched."""
    present = timed_runtimes(results, runtimes)
    missing = [r for r in runtimes if r not in present]
    if missing:
        return [f"Not timed in {', '.join(r.label for r in missing)} (no "
                f"{', '.join(r.column for r in missing)} in the results): no comparison "
                "across runtimes."]
    lines = []
    for runtime in present:
        if runtime.penalty not in set(results["estimator"]):
            lines.append(f"No search was penalised for {runtime.label} (no "
                         f"{runtime.penalty} setting in the results).")
            continue
        summary = summarise_sweep(results, runtime.column)
        best = best_at_matched_accuracy(summary, tolerance)
        match = best[best["estimator"] == runtime.penalty]
        if match.empty:
            lines.append(f"The {runtime.label} search ({runtime.penalty} penalty): no lambda "
                         f"kept the accuracy within {tolerance:g} point of plain DARTS.")
            continue
        lam = float(match["lam"].iloc[0])
        own = paired_differences(results, runtime.penalty, lam, latency_column=runtime.column)
        seeds = "one seed: no interval" if own["seeds"] < 2 else (
            f"{own['seeds']} paired seeds, 95% intervals")
        line = (f"The {runtime.label} search ({runtime.penalty} penalty at lambda {lam:g}, the "
                f"fastest in {runtime.label} within {tolerance:g} point of plain DARTS's "
                f"accuracy): latency {_change(own)} in {runtime.label}, accuracy "
                f"{own['acc_change']:+.2f} ± {own['acc_ci']:.2f} points against plain DARTS of "
                f"the same seed ({seeds}). {_bar(own, bar_pct, runtime.label)}")
        for other in present:
            if other != runtime:
                there = paired_differences(results, runtime.penalty, lam,
                                           latency_column=other.column)
                line += (f" In {other.label} the same networks change by "
                         f"{_change(there)}: {_holds(there, own)}.")
        lines.append(line)
    return lines


def runs_to_draw(lambdas: dict, penalty: str, seed: int,
                 runtimes: Sequence[Runtime] = RUNTIMES) -> list[str]:
    """Run ids of each runtime's own search at its largest lambda, for ``seed`` (the cells to
    draw side by side); a runtime without a lambda > 0 is left out."""
    out = []
    for runtime in runtimes:
        lams = [lam for lam in lambdas.get(runtime.penalty, []) if lam > 0]
        if lams:
            out.append(SweepPoint(runtime.penalty, penalty, float(max(lams)), seed).run_id)
    return out

