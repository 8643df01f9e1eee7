"""A grid of searches (estimator x lambda x seed), each evaluated, gathered in one table.

Every run has its own search folder under ``out_dir`` and one row in
``out_dir/results.csv``, written as soon as the run is evaluated: an interrupted sweep
resumes with the run it was in, and finished runs are not repeated. The runs go one after
the other, side by side in a local pool, or on a cluster through any executor (dask,
submitit's Slurm executor): :mod:`lenna_core.search.executors`.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from lenna_core.search.estimators import LatencyEstimator, TargetConfig
from lenna_core.search.evaluation import (
    LatencyMeter,
    composition_factors,
    cross_fitted_ms,
    measure_interleaved,
    measure_target,
    predicted_ms,
    train_genotype,
)
from lenna_core.search.executors import check_placement, finished_runs
from lenna_core.search.loop import LatencyAwareSearch, SearchConfig, op_counts
from lenna_core.search.penalty import PENALTIES, make_penalty
from lenna_core.space.data import DatasetSplits
from lenna_core.space.genotypes import Genotype
from lenna_core.validation import is_integer

BASELINE = "none"  # the estimator name of lambda = 0 runs: plain DARTS


@dataclass(frozen=True)
class SweepPoint:
    """One search of the grid."""

    estimator: str
    penalty: str
    lam: float
    seed: int

    @property
    def run_id(self) -> str:
        """Folder and row name of this run."""
        return f"{self.estimator}-{self.penalty}-lam{self.lam:g}-seed{self.seed}"


def sweep_points(lams: Mapping[str, Sequence[float]], seeds: Sequence[int],
                 penalty: str = "linear") -> list[SweepPoint]:
    """Plain DARTS (lambda 0) once per seed, then every estimator at each of its lambdas > 0."""
    if isinstance(seeds, str) or not seeds or not all(
            is_integer(s) and s >= 0 for s in seeds):
        raise ValueError(f"seeds={seeds!r}: give a non-empty list of integers >= 0 (with "
                         "papermill, a list goes in as YAML: -y 'seeds: [0, 1]')")
    if not isinstance(lams, Mapping):
        raise ValueError(f"lambdas={lams!r}: give a dict from estimator name to a list of "
                         "lambdas, e.g. {'mlp': [0.3, 1.0]}")
    if penalty not in PENALTIES:
        raise ValueError(f"penalty={penalty!r}: allowed penalties are {', '.join(PENALTIES)}")
    points = [SweepPoint(BASELINE, penalty, 0.0, seed) for seed in seeds]
    for name, values in lams.items():
        for lam in values:
            try:
                make_penalty(penalty, lam)
            except ValueError as err:
                raise ValueError(f"lambdas[{name!r}] holds {lam!r}: {err}") from None
            if lam > 0:
                points += [SweepPoint(name, penalty, float(lam), seed) for seed in seeds]
    return points


def check_estimators(points: Sequence[SweepPoint],
                     estimators: Mapping[str, LatencyEstimator]) -> None:
    """Refuse a grid naming an estimator that ``estimators`` lacks (before anything runs)."""
    unknown = {p.estimator for p in points} - set(estimators) - {BASELINE}
    if unknown:
        raise ValueError(f"no estimator named {sorted(unknown)}; known: {sorted(estimators)}: "
                         "give it, or drop it from the lambdas")


def _write_csv(frame: pd.DataFrame, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    frame.to_csv(tmp, index=False)
    os.replace(tmp, path)


def run_sweep(points: Sequence[SweepPoint], config: SearchConfig,
              estimators: Mapping[str, LatencyEstimator], out_dir: str | os.PathLike, *,
              splits: DatasetSplits, meter: LatencyMeter, target: TargetConfig,
              overhead_ms: float, evaluation: Mapping | None = None, progress: bool = True,
              report: bool = False, workers: int = 1, executor: Any = None,
              threads: int | None = None,
              predictors: Mapping[str, LatencyEstimator] | None = None) -> pd.DataFrame:
    """Search, train and time every point; returns (and keeps) one row per run.

    ``estimators`` maps names to estimators for the target; the ms estimators among
    ``predictors`` (default: all of ``estimators``) also predict every derived network:
    ``predicted_ms_<name>`` (blocks + ``overhead_ms``; :func:`measure_session` adds
    ``calibrated_ms_<name>``). Leave out of ``predictors`` an estimator of another runtime
    than ``meter``'s (ONNX Runtime's model beside torch eager's): its milliseconds are not the
    measured ones. ``evaluation``
    holds keyword arguments of :func:`~lenna_core.search.evaluation.train_genotype`. ``progress``
    draws a tqdm bar (on stderr); ``report`` prints one line per finished run with an ETA
    (on stdout, for notebooks). ``workers`` > 1 runs that many searches side by side in
    fresh processes, each with ``threads`` torch threads: every run is seeded on
    its own, so the genotypes and accuracies are those of ``workers=1``; the per-run
    latency is then timed while other runs compute, so re-time with :func:`measure_session`.

    ``executor`` runs the searches elsewhere instead of the local pool: a
    ``concurrent.futures.Executor`` such as dask's ``distributed.Client(...).get_executor()``,
    or a submitit executor (``submitit.AutoExecutor`` on Slurm), whose jobs are waited on by
    a thread each (:mod:`lenna_core.search.executors`). The executor is not shut down here.
    Each task carries the splits, estimators and meter (pickled), and writes its search
    folder under ``out_dir``, which the workers must reach; the results come back here, into
    the same resumable ``results.csv``. ``threads`` is the torch thread count of each run in
    a pool or on an executor (default: this process's, so their float rounding, and so
    their genotypes, are this process's).
    """
    check_placement(workers, executor, threads)
    check_estimators(points, estimators)
    predictors = estimators if predictors is None else predictors
    for name, estimator in {**estimators, **predictors}.items():
        if estimator.target != target:
            raise ValueError(f"estimator {name!r} is for target {estimator.target}, the sweep "
                             f"measures {target}: build both for the same TargetConfig")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "results.csv"
    results = pd.read_csv(path) if path.exists() else pd.DataFrame()
    done = set(results["run_id"]) if len(results) else set()
    # Absolute: a worker of an executor may start in another directory.
    shared = {"config": config, "estimators": dict(estimators),
              "predictors": dict(predictors), "out_dir": out_dir.resolve(),
              "splits": splits, "meter": meter, "target": target, "overhead_ms": overhead_ms,
              "evaluation": dict(evaluation or {})}
    todo = [p for p in points if p.run_id not in done]
    started = time.perf_counter()
    bar = tqdm(total=len(todo), desc="sweep", unit="run", disable=not progress)
    with bar, finished_runs(_search_and_evaluate, todo, shared, workers=workers,
                            executor=executor, threads=threads) as finished:
        for i, row in enumerate(finished):
            results = pd.concat([results, pd.DataFrame([row])], ignore_index=True)
            _write_csv(results, path)
            bar.update()
            if report:
                elapsed = time.perf_counter() - started
                eta = elapsed / (i + 1) * (len(todo) - i - 1)
                print(f"[{i + 1}/{len(todo)}] {row['run_id']}: test accuracy "
                      f"{row['test_acc']:.2f}%, {row['measured_ms']:.2f} ms measured; "
                      f"{elapsed:.0f} s so far, about {eta:.0f} s to go", flush=True)
    order = {p.run_id: i for i, p in enumerate(points)}
    wanted = results[results["run_id"].isin(order)]
    return wanted.sort_values("run_id", key=lambda ids: ids.map(order)).reset_index(drop=True)


def _search_and_evaluate(point: SweepPoint, *, config: SearchConfig,
                         estimators: Mapping[str, LatencyEstimator],
                         predictors: Mapping[str, LatencyEstimator], out_dir: Path,
                         splits: DatasetSplits, meter: LatencyMeter, target: TargetConfig,
                         overhead_ms: float, evaluation: dict) -> dict:
    """One run of the grid: search (resuming its checkpoint if any), then evaluate."""
    estimator = None if point.estimator == BASELINE else estimators[point.estimator]
    search = LatencyAwareSearch(replace(config, seed=point.seed), out_dir / point.run_id,
                                estimator, make_penalty(point.penalty, point.lam))
    found = search.run(progress=False, splits=splits)
    return {"run_id": point.run_id, **asdict(point), **evaluate_genotype(
        found.genotype, splits, target, meter, predictors, seed=point.seed,
        overhead_ms=overhead_ms, **evaluation),
            "search_seconds": found.seconds, "search_predicted": found.predicted,
            "search_unit": found.unit}


def measure_session(results: pd.DataFrame, target: TargetConfig, meter: LatencyMeter,
                    estimators: Mapping[str, LatencyEstimator], overhead_ms: float,
                    calibration: Sequence[Genotype]) -> tuple[pd.DataFrame, dict, pd.DataFrame]:
    """Re-time every derived network, with ``calibration`` networks, in one interleaved session.

    Runs of a sweep are timed minutes apart, and this machine's speed drifts by more than
    the differences to be compared; here every network is timed in the same session, pass
    by pass in turn (:func:`~lenna_core.search.evaluation.measure_interleaved`). The calibration
    networks (ones no search chose) give each ms estimator its composition fit (scale and
    offset, :func:`~lenna_core.search.evaluation.composition_factors`) from the same session.
    Returns the results with ``measured_ms`` (reference-scaled) and ``measured_raw_ms`` (this
    machine's wall clock) from the session (the per-run figure kept as ``measured_at_run_ms``),
    ``calibrated_ms_<name>`` (the composition of the calibration networks alone) and
    ``crossfit_ms_<name>`` (a composition fitted on every other network of the session,
    :func:`~lenna_core.search.evaluation.cross_fitted_ms`, with ``crossfit_extrapolated_<name>``),
    the fits, and the calibration networks' table. ``estimators`` may name predictors the sweep
    did not search with (a model adapted to this machine): they get ``predicted_ms_<name>`` too.
    """
    derived = [Genotype.from_json(g) for g in results["genotype"]]
    timed = measure_interleaved([*derived, *calibration], target, meter).set_index("genotype")
    out = results.copy()
    if "measured_at_run_ms" not in out:
        out["measured_at_run_ms"] = out["measured_ms"]
    out["measured_ms"] = [timed.loc[g.to_json(), "latency_ms"] for g in derived]
    out["ratio_iqr"] = [timed.loc[g.to_json(), "ratio_iqr"] for g in derived]
    factors, table = composition_factors(
        estimators, {g: timed.loc[g.to_json(), "latency_ms"] for g in calibration},
        overhead_ms)
    everything = {g: timed.loc[g.to_json(), "latency_ms"] for g in [*derived, *calibration]}
    for name in factors:
        if f"predicted_ms_{name}" not in out:  # a predictor the sweep did not search with
            out[f"predicted_ms_{name}"] = [predicted_ms(estimators[name], g, overhead_ms)
                                           for g in derived]
        out[f"calibrated_ms_{name}"] = [predicted_ms(estimators[name], g, overhead_ms,
                                                     factors[name]) for g in derived]
        crossed = cross_fitted_ms(estimators[name], derived, everything, overhead_ms)
        out[f"crossfit_ms_{name}"] = crossed["cross_fitted_ms"].to_numpy()
        out[f"crossfit_extrapolated_{name}"] = crossed["extrapolated"].to_numpy()
    out["measured_raw_ms"] = [timed.loc[g.to_json(), "raw_ms"] for g in derived]
    return out, factors, table


def measure_runtime_session(results: pd.DataFrame, target: TargetConfig, meter: LatencyMeter,
                            name: str = "ort") -> pd.DataFrame:
    """Time every derived network again with ``meter``, in one interleaved session of its own.

    For a second runtime: with an ONNX Runtime meter
    (:func:`~lenna_core.search.onnx_evaluation.onnx_meter`) each target network is exported
    once, and the sessions take turns pass by pass, each pass followed by a pass of the
    reference cell's session (:func:`~lenna_core.search.evaluation.measure_interleaved`).
    Returns the results with ``measured_<name>_ms`` (median ratio x ``meter.reference_ms``),
    ``measured_<name>_raw_ms`` (this machine's wall clock) and ``ratio_iqr_<name>``.
    """
    derived = [Genotype.from_json(g).to_json() for g in results["genotype"]]
    timed = measure_interleaved([Genotype.from_json(g) for g in dict.fromkeys(derived)],
                                target, meter).set_index("genotype")
    out = results.copy()
    out[f"measured_{name}_ms"] = timed.loc[derived, "latency_ms"].to_numpy()
    out[f"measured_{name}_raw_ms"] = timed.loc[derived, "raw_ms"].to_numpy()
    out[f"ratio_iqr_{name}"] = timed.loc[derived, "ratio_iqr"].to_numpy()
    return out


def evaluate_genotype(genotype: Genotype, splits: DatasetSplits, target: TargetConfig,
                      meter: LatencyMeter, predictors: Mapping[str, LatencyEstimator], *,
                      overhead_ms: float, seed: int = 0, **train_kwargs) -> dict:
    """Accuracy after training, measured target latency and each ms estimator's prediction."""
    row = {"genotype": genotype.to_json(),
           **{f"ops/{k}": v for k, v in op_counts(genotype).items()}}
    row.update(train_genotype(genotype, splits, seed=seed, **train_kwargs))
    row.update(measure_target(genotype, target, meter, overhead_ms))
    for name, estimator in predictors.items():
        if estimator.unit == "ms":
            row[f"predicted_ms_{name}"] = predicted_ms(estimator, genotype, overhead_ms)
        else:
            row[f"predicted_{estimator.unit}_{name}"] = estimator.predict_genotype(genotype)
    return row


def summarise_sweep(results: pd.DataFrame, latency_column: str = "measured_ms") -> pd.DataFrame:
    """Mean and std over seeds per (estimator, penalty, lambda), with changes vs lambda 0;
    the latency is ``latency_column`` (another runtime's: ``measured_ort_ms``)."""
    if not len(results):
        raise ValueError("results is empty: run the sweep first")
    if latency_column not in results:
        raise ValueError(f"results have no column {latency_column!r}")
    grouped = results.groupby(["estimator", "penalty", "lam"], sort=False)
    summary = grouped.agg(seeds=("seed", "nunique"), acc_mean=("test_acc", "mean"),
                          acc_std=("test_acc", "std"), latency_mean=(latency_column, "mean"),
                          latency_std=(latency_column, "std")).reset_index()
    base = summary[summary["estimator"] == BASELINE]
    if len(base):
        summary["latency_change_pct"] = 100.0 * (summary["latency_mean"]
                                                 / base["latency_mean"].iloc[0] - 1.0)
        summary["acc_change"] = summary["acc_mean"] - base["acc_mean"].iloc[0]
    summary["pareto"] = pareto_mask(summary["latency_mean"].to_numpy(),
                                    summary["acc_mean"].to_numpy())
    return summary


def pareto_mask(latency: Sequence[float], acc: Sequence[float]) -> np.ndarray:
    """True for points no other point beats on both (lower latency, higher accuracy)."""
    latency, acc = np.asarray(latency, dtype=float), np.asarray(acc, dtype=float)
    if latency.shape != acc.shape:
        raise ValueError("latency and acc must have the same length")
    mask = np.ones(len(latency), dtype=bool)
    for i in range(len(latency)):
        better = (latency <= latency[i]) & (acc >= acc[i]) & ((latency < latency[i])
                                                              | (acc > acc[i]))
        mask[i] = not better.any()
    return mask


def best_at_matched_accuracy(summary: pd.DataFrame, tolerance: float = 1.0) -> pd.DataFrame:
    """Per estimator, the fastest setting whose mean accuracy is within ``tolerance`` points
    of plain DARTS's (lambda 0), with its latency change in percent."""
    if "acc_change" not in summary:
        raise ValueError("summary has no lambda = 0 baseline to match")
    matched = summary[(summary["estimator"] != BASELINE)
                      & (summary["acc_change"] >= -tolerance)]
    return (matched.sort_values("latency_mean").groupby("estimator", sort=False).head(1)
            .reset_index(drop=True))


def paired_differences(results: pd.DataFrame, estimator: str, lam: float,
                       confidence: float = 0.95, latency_column: str = "measured_ms"
                       ) -> dict[str, float]:
    """Per seed, a setting's run against plain DARTS's run of the same seed: the mean change
    in test accuracy (points) and in measured latency (%, of ``latency_column``), each with
    the half-width of its ``confidence`` t-interval over the seeds (NaN with one seed)."""
    from scipy import stats

    base = results[results["estimator"] == BASELINE].set_index("seed")
    runs = results[(results["estimator"] == estimator)
                   & np.isclose(results["lam"], lam)].set_index("seed")
    seeds = sorted(set(base.index) & set(runs.index))
    if not seeds:
        raise ValueError(f"no seed has both a plain DARTS run and a run of {estimator} at "
                         f"lambda {lam:g}")
    accuracy = runs.loc[seeds, "test_acc"] - base.loc[seeds, "test_acc"]
    latency = 100.0 * (runs.loc[seeds, latency_column] / base.loc[seeds, latency_column] - 1.0)
    n = len(seeds)

    def half_width(values: pd.Series) -> float:
        if n < 2:
            return float("nan")
        return float(stats.t.ppf(0.5 + confidence / 2, n - 1) * values.std(ddof=1) / np.sqrt(n))

    return {"seeds": n, "acc_change": float(accuracy.mean()), "acc_ci": half_width(accuracy),
            "latency_change_pct": float(latency.mean()), "latency_ci": half_width(latency)}


#: The columns of a results table that predict ``measured_ms``: raw block sums plus stem and
#: head, through the calibration networks' composition, and through the cross-fitted one.
PREDICTION_PREFIXES = ("predicted_ms_", "calibrated_ms_", "crossfit_ms_")


def prediction_errors(results: pd.DataFrame) -> pd.DataFrame:
    """Per ms estimator, raw and composition-calibrated: median and max absolute relative
    error (%) of the predicted latency against the measured one."""
    rows = []
    columns = [c for c in results.columns if c.startswith(PREDICTION_PREFIXES)]
    for column in columns:
        error = 100.0 * (results[column] / results["measured_ms"] - 1.0)
        kind, name = column.split("_ms_", 1)
        rows.append({"estimator": name, "prediction": kind,
                     "median_abs_error_pct": float(error.abs().median()),
                     "max_abs_error_pct": float(error.abs().max()),
                     "median_signed_error_pct": float(error.median()), "networks": len(error)})
    return pd.DataFrame(rows)


def genotype_of(results: pd.DataFrame, run_id: str) -> Genotype:
    """The derived genotype of one run of a results table."""
    match = results[results["run_id"] == run_id]
    if match.empty:
        raise ValueError(f"run_id={run_id!r} is not in the results")
    return Genotype.from_json(match["genotype"].iloc[0])


def describe_sweep(config: SearchConfig, target: TargetConfig, evaluation: Mapping) -> str:
    """A JSON record of the sweep's settings (for the chapter's output)."""
    return json.dumps({"search": asdict(config), "target": target.to_dict(),
                       "evaluation": dict(evaluation)}, indent=1)


def findings(summary: pd.DataFrame, errors: pd.DataFrame, tolerance: float = 1.0) -> list[str]:
    """The chapter's conclusions as sentences, with the numbers of this sweep."""
    base = summary[summary["estimator"] == BASELINE].iloc[0]
    if base["seeds"] > 1:
        lines = [f"Plain DARTS (lambda 0): {base['acc_mean']:.2f} ± {base['acc_std']:.2f}% test "
                 f"accuracy, {base['latency_mean']:.1f} ± {base['latency_std']:.1f} ms "
                 f"measured (mean ± std over {int(base['seeds'])} seeds)."]
    else:
        lines = [f"Plain DARTS (lambda 0): {base['acc_mean']:.2f}% test accuracy, "
                 f"{base['latency_mean']:.1f} ms measured (one seed: no spread to show)."]
    best = best_at_matched_accuracy(summary, tolerance)
    for name in summary.loc[summary["estimator"] != BASELINE, "estimator"].unique():
        match = best[best["estimator"] == name]
        if match.empty:
            lines.append(f"{name}: no lambda kept the accuracy within {tolerance:g} point of "
                         "plain DARTS.")
            continue
        row = match.iloc[0]
        lines.append(f"{name}: at lambda {row['lam']:g} the cells run "
                     f"{-row['latency_change_pct']:.1f}% faster ({row['latency_mean']:.1f} ms) "
                     f"with accuracy {row['acc_change']:+.2f} points vs plain DARTS "
                     f"(within {tolerance:g} point).")
    for _, row in errors.iterrows():
        lines.append(f"{row['estimator']} ({row['prediction']}): median |predicted - measured| "
                     f"{row['median_abs_error_pct']:.1f}% over {int(row['networks'])} derived "
                     f"networks (max {row['max_abs_error_pct']:.1f}%).")
    return lines
