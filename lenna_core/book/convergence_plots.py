"""Chapter 2's figures: one label under LENNA's rule, and passes against error per rule."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from lenna_core.book.plotting import legend_outside, readable_log_axes
from lenna_core.latency.convergence import LabelResult, LennaRule


def plot_lenna_rule(demo: LabelResult, rule: LennaRule, title: str) -> Figure:
    """(a) each reset's value with the label, (b) the cumulative average, (c) its relative
    change against the rule's tolerance, the last ``patience`` changes shaded."""
    values = np.array(demo.values_ms)
    resets = np.arange(1, demo.resets + 1)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2), layout="constrained")
    axes[0].plot(resets, values, ".", color="C0")
    axes[0].axhline(demo.label_ms, color="C3", lw=1, label=f"label {demo.label_ms:.2f} ms")
    axes[0].set(title="(a) value of each reset", xlabel="reset",
                ylabel="40% quantile of 10 timings (ms)")
    axes[0].legend()
    axes[1].plot(resets, rule.cumulative_average(values), color="C0")
    axes[1].set(title="(b) cumulative average", xlabel="reset", ylabel="average (ms)")
    axes[2].semilogy(resets[1:], 100 * rule.relative_changes(values), ".-", color="C0", lw=0.8)
    axes[2].axhline(100 * rule.tolerance, color="C3", lw=1, label="1% tolerance")
    axes[2].axvspan(demo.resets - rule.patience + 0.5, demo.resets + 0.5, color="C2",
                    alpha=0.2, label=f"last {rule.patience} changes")
    axes[2].set(title="(c) relative change of the average", xlabel="reset",
                ylabel="relative change (%)")
    axes[2].legend()
    fig.suptitle(title)
    return fig


def plot_passes_vs_error(pooled: pd.DataFrame, settings: Mapping[tuple, Sequence[str]],
                         se_settings: Sequence[Sequence[int]], min_resets: int,
                         lenna_err_p90: float, title: str) -> Figure:
    """Forward passes per label against the 90th-percentile label error: one curve per
    standard-error setting ``(k, warm-up, min resets) -> rule names``, LENNA's two rules as
    stars, LENNA's error as a dotted line."""
    by_rule = pooled.set_index("rule")
    fig, ax = plt.subplots(figsize=(11, 5))
    for (k, w, n), names in settings.items():
        curve = by_rule.loc[names].sort_values("passes_mean")
        ax.plot(curve.passes_mean, 100 * curve.err_p90, "o-" if n == min_resets else "s--",
                ms=3, color=f"C{list(se_settings).index([k, w])}",
                label=f"SE rule, median of {k} (+{w} warm-up, >= {n} resets)")
    for name, marker in (("LENNA (paper: x10)", "*"), ("LENNA (code: x15)", "P")):
        row = by_rule.loc[name]
        ax.plot(row.passes_mean, 100 * row.err_p90, marker, ms=14, color="k", label=name)
    ax.axhline(100 * lenna_err_p90, color="k", lw=0.8, ls=":")
    ax.set(xscale="log", xlabel="forward passes per label (mean over blocks)",
           ylabel="label error vs own reference, 90th pct (%)", title=title)
    readable_log_axes(ax, "x")
    legend_outside(ax, fontsize=8)
    fig.tight_layout()
    return fig
