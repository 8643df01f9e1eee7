"""Chapter 1's figures: additivity of single-path cells, and the baselines' test parity."""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.colors import to_hex
from matplotlib.figure import Figure

from lenna_core.book.plotting import CELL_COLOURS, readable_log_axes

#: The ratios of :func:`lenna_core.latency.additivity.additivity_experiment`, as the figure
#: names them.
TIMINGS = {"ratio": "warm, wall clock", "cpu_ratio": "warm, CPU clock",
           "first_pass_ratio": "first pass, wall clock"}


def plot_additivity(cells: pd.DataFrame) -> Figure:
    """Left: each cell's measured latency against fixed cost + its ops timed alone (log-log,
    by block); right: the measured / predicted ratio per block context and clock."""
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.8), layout="constrained")
    sns.scatterplot(data=cells, x="predicted_ms", y="measured_ms", hue="block", ax=axes[0],
                    s=30)
    lims = [cells[["predicted_ms", "measured_ms"]].min().min() * 0.8,
            cells[["predicted_ms", "measured_ms"]].max().max() * 1.25]
    axes[0].plot(lims, lims, color="0.3", lw=1)
    axes[0].set(xscale="log", yscale="log", xlim=lims, ylim=lims,
                xlabel="table: fixed cost + sum of op latencies (ms)",
                ylabel="measured single-path cell (ms)",
                title="Additivity: cell vs sum of its ops")
    axes[0].legend(fontsize=8)
    readable_log_axes(axes[0])
    long = cells.melt(id_vars="block", value_vars=list(TIMINGS), var_name="timing",
                      value_name="measured / predicted")
    long["timing"] = long["timing"].map(TIMINGS)
    sns.boxplot(data=long, y="block", x="measured / predicted", hue="timing", ax=axes[1],
                fliersize=2)
    axes[1].axvline(1.0, color="0.3", lw=1)
    axes[1].set(ylabel="", title="Ratio per block context")
    return fig


def plot_test_parity(measured: np.ndarray, predictions: Mapping[str, np.ndarray],
                     metrics: Mapping[str, Mapping], reduction: np.ndarray) -> Figure:
    """One log-log panel per model: predicted against measured test labels (ms), reduction
    blocks in orange, each panel titled with the model's MAPE and share within +/-10%."""
    fig, axes = plt.subplots(1, len(predictions), figsize=(5 * len(predictions), 4.8),
                             sharex=True, sharey=True, layout="constrained")
    axes = np.atleast_1d(axes)
    lims = [min(measured.min(), *(p.min() for p in predictions.values())) * 0.8,
            max(measured.max(), *(p.max() for p in predictions.values())) * 1.25]
    for ax, (name, p) in zip(axes, predictions.items()):
        m = metrics[name]
        ax.scatter(measured, p, s=8, alpha=0.5,
                   c=np.where(reduction, *(to_hex(CELL_COLOURS[k]) for k in ("reduction",
                                                                             "normal"))))
        ax.plot(lims, lims, color="0.3", lw=1)
        ax.set(xscale="log", yscale="log", xlim=lims, ylim=lims, xlabel="measured label (ms)",
               title=f"{name}\nMAPE {m['mape_pct']:.1f}%, {m['within_10_pct']:.0f}% within ±10%")
        readable_log_axes(ax)
    axes[0].set_ylabel("predicted (ms)")
    axes[0].legend(handles=[plt.Line2D([], [], ls="", marker="o", color=colour, label=kind)
                            for kind, colour in CELL_COLOURS.items()])
    fig.suptitle("Test blocks: predicted vs measured expected latency")
    return fig
