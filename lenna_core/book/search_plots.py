"""Figures of a search sweep: the accuracy/latency front and predicted vs measured latency."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from lenna_core.search.sweep import BASELINE, PREDICTION_PREFIXES

LABELS = {BASELINE: "plain DARTS (lambda 0)", "mlp": "MLP penalty (LENNA)",
          "lookup_table": "lookup-table penalty (ProxylessNAS)", "flops": "FLOPs penalty"}
MARKERS = {BASELINE: "s", "mlp": "o", "lookup_table": "^", "flops": "D"}


def plot_pareto(results: pd.DataFrame, summary: pd.DataFrame, ax: Axes | None = None,
                title: str = "Accuracy vs measured latency") -> Figure:
    """Every run (small) and the mean +/- std per setting (large), the front joined by a line."""
    if ax is None:
        _, ax = plt.subplots(figsize=(7.5, 5.0))
    for i, (name, group) in enumerate(summary.groupby("estimator", sort=False)):
        color = f"C{i}"
        runs = results[results["estimator"] == name]
        ax.scatter(runs["measured_ms"], runs["test_acc"], s=14, alpha=0.35, color=color,
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


def plot_prediction_parity(results: pd.DataFrame, ax: Axes | None = None) -> Figure:
    """Predicted vs measured latency of every derived network: raw, through the calibration
    networks' composition, and through the cross-fitted one."""
    if ax is None:
        _, ax = plt.subplots(figsize=(5.5, 5.0))
    columns = [c for c in results.columns if c.startswith(PREDICTION_PREFIXES)]
    if not columns:
        raise ValueError("results hold no predicted_ms_* column: no ms estimator was given")
    for i, column in enumerate(columns):
        kind, name = column.split("_ms_", 1)
        error = np.median(np.abs(results[column] / results["measured_ms"] - 1)) * 100
        ax.scatter(results["measured_ms"], results[column], s=18, color=f"C{i}",
                   marker={"calibrated": "o", "crossfit": "s"}.get(kind, "x"),
                   label=f"{LABELS.get(name, name)}, {kind} (median |err| {error:.1f}%)")
    lo = 0.8 * min(results["measured_ms"].min(), results[columns].min().min())
    hi = 1.2 * max(results["measured_ms"].max(), results[columns].max().max())
    ax.plot([lo, hi], [lo, hi], color="k", lw=1)
    ax.fill_between([lo, hi], [0.9 * lo, 0.9 * hi], [1.1 * lo, 1.1 * hi], color="0.85",
                    label="±10%")
    ax.set(xlim=(lo, hi), ylim=(lo, hi), xlabel="measured latency (ms)",
           ylabel="predicted latency (ms)", title="Derived networks: predicted vs measured")
    ax.legend(fontsize=7, loc="upper left")
    return ax.figure
