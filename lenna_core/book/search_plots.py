"""Figures of a search sweep: the accuracy/latency front (in one runtime, or in each runtime the
networks were timed in) and predicted vs measured latency."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from lenna_core.search.runtimes import RUNTIMES, Runtime, timed_runtimes
from lenna_core.search.sweep import BASELINE, PREDICTION_PREFIXES, summarise_sweep

LABELS = {BASELINE: "plain DARTS (lambda 0)", "mlp": "MLP penalty (LENNA)",
          "lookup_table": "lookup-table penalty (ProxylessNAS)", "flops": "FLOPs penalty",
          "onnxruntime": "ONNX Runtime MLP penalty"}
MARKERS = {BASELINE: "s", "mlp": "o", "lookup_table": "^", "flops": "D", "onnxruntime": "v"}


def plot_pareto(results: pd.DataFrame, summary: pd.DataFrame, ax: Axes | None = None,
                title: str = "Accuracy vs measured latency",
                latency_column: str = "measured_ms") -> Figure:
    """Every run (small) and the mean +/- std per setting (large), the front joined by a line;
    ``summary`` is :func:`~lenna_core.search.sweep.summarise_sweep` of ``latency_column``."""
    if ax is None:
        _, ax = plt.subplots(figsize=(7.5, 5.0))
    for i, (name, group) in enumerate(summary.groupby("estimator", sort=False)):
        color = f"C{i}"
        runs = results[results["estimator"] == name]
        ax.scatter(runs[latency_column], runs["test_acc"], s=14, alpha=0.35, color=color,
                   marker=MARKERS.get(name, "o"))
        ax.errorbar(group["latency_mean"], group["acc_mean"], xerr=group["latency_std"],
                    yerr=group["acc_std"], fmt=MARKERS.get(name, "o"), ms=8, capsize=3,
                    color=color, label=LABELS.get(name, name))
        for _, row in group.iterrows():
            ax.annotate(f"λ={row['lam']:g}", (row["latency_mean"], row["acc_mean"]),
                        textcoords="offset points", xytext=(6, 6), fontsize=8, color=color)
    front = summary[summary["pareto"]].sort_values("latency_mean")
    ax.plot(front["latency_mean"], front["acc_mean"], color="0.3", lw=1, ls="--",
            label="Pareto front (means)")
    ax.set(xlabel="measured latency of the target network (ms)",
           ylabel="test accuracy (%)", title=title)
    ax.legend(fontsize=8, loc="lower right")
    return ax.figure


def plot_runtime_fronts(results: pd.DataFrame, runtimes: tuple[Runtime, ...] = RUNTIMES,
                        title: str = "Accuracy vs measured latency") -> Figure:
    """:func:`plot_pareto` in each runtime the networks were timed in, side by side (torch
    eager | ONNX Runtime), one colour per estimator in every panel."""
    present = timed_runtimes(results, runtimes)
    if not present:
        raise ValueError(f"results hold none of {[r.column for r in runtimes]}")
    fig, axes = plt.subplots(1, len(present), figsize=(7.5 * len(present), 5.4), squeeze=False,
                             sharey=True, layout="constrained")
    for ax, runtime in zip(axes[0], present):
        # Every summary comes from the same results, so estimators keep their order (colour).
        plot_pareto(results, summarise_sweep(results, runtime.column), ax=ax,
                    title=runtime.label, latency_column=runtime.column)
        ax.set_xlabel(f"measured latency of the target network in {runtime.label} (ms)")
    fig.suptitle(title)
    return fig


PREDICTOR_TITLES = {"mlp": "MLP of chapter 4 (reference device)",
                    "lookup_table": "lookup table (reference device)",
                    "adapted": "MLP adapted to this machine (chapter 5)"}
KIND_MARKERS = {"predicted": "x", "calibrated": "o", "crossfit": "s"}
KIND_LABELS = {"predicted": "raw block sum", "calibrated": "random networks' fit",
               "crossfit": "cross-fit"}


def plot_prediction_parity(results: pd.DataFrame) -> Figure:
    """Predicted vs measured latency of every derived network, one panel per estimator: raw,
    through the calibration networks' composition, and through the cross-fitted one."""
    columns = [c for c in results.columns if c.startswith(PREDICTION_PREFIXES)]
    if not columns:
        raise ValueError("results hold no predicted_ms_* column: no ms estimator was given")
    names = list(dict.fromkeys(c.split("_ms_", 1)[1] for c in columns))
    lo = 0.9 * min(results["measured_ms"].min(), results[columns].min().min())
    hi = 1.1 * max(results["measured_ms"].max(), results[columns].max().max())
    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 5.2), squeeze=False,
                             sharex=True, sharey=True, layout="constrained")
    for ax, name in zip(axes[0], names):
        ax.fill_between([lo, hi], [0.9 * lo, 0.9 * hi], [1.1 * lo, 1.1 * hi], color="0.88",
                        label="±10%")
        ax.plot([lo, hi], [lo, hi], color="k", lw=1)
        for i, kind in enumerate(KIND_MARKERS):
            column = f"{kind}_ms_{name}"
            if column not in results:
                continue
            error = np.median(np.abs(results[column] / results["measured_ms"] - 1)) * 100
            ax.scatter(results["measured_ms"], results[column], s=20, color=f"C{i}",
                       marker=KIND_MARKERS[kind],
                       label=f"{KIND_LABELS[kind]} (median |err| {error:.1f}%)")
        ax.set(xlim=(lo, hi), ylim=(lo, hi), xlabel="measured latency (ms)",
               title=PREDICTOR_TITLES.get(name, name))
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.13), frameon=False)
    axes[0, 0].set_ylabel("predicted latency (ms)")
    fig.suptitle("Derived networks: predicted vs measured latency")
    return fig
