"""Figures and findings for the transfer of a latency model to a new device (chapter 5)."""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib.pyplot as plt
import pandas as pd

from lenna_core.latency.device_identity import describe_differences
from lenna_core.latency.labeller import DEFAULT_RULE


def before_after(y_true: pd.Series, predictions: Mapping[str, pd.Series]) -> pd.DataFrame:
    """Within +-10% (%), MAPE (%) and Kendall tau of each named prediction of ``y_true``."""
    from lenna_core.latency.metrics import compare_models

    table = compare_models(y_true, predictions)
    return table[["n", "within_10_pct", "mape_pct", "kendall_tau"]]


def plot_transfer_curves(curves: pd.DataFrame, metric: str = "within_10_pct") -> plt.Figure:
    """One panel per device of ``curves`` (benchmarks/transfer.py ``--out``): ``metric``
    against the number of labelled blocks k, one line per method."""
    devices = list(dict.fromkeys(curves["device"]))
    if not devices:
        raise ValueError("curves is empty: write it with benchmarks/transfer.py --out")
    # Two panels a row: four devices side by side would each be too narrow to read.
    ncols = min(2, len(devices))
    nrows = -(-len(devices) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(6.5 * ncols + 2.5, 4.2 * nrows),
                             squeeze=False, layout="constrained")
    for ax in axes.flat[len(devices):]:
        ax.set_visible(False)
    # One colour per method in every panel: a device whose table prices no block lacks some
    # methods, and colours taken in turn per panel would then name the wrong line.
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    methods = [m for m in dict.fromkeys(curves["method"]) if not m.startswith("adapt")]
    colours = {m: cycle[i % len(cycle)] for i, m in enumerate(methods)}
    handles: dict[str, object] = {}
    for ax, device in zip(axes.flat, devices):
        part = curves[curves["device"] == device]
        for method, group in part.groupby("method", sort=False):
            group = group.sort_values("k")
            (line,) = ax.plot(group["k"], group[metric], "-o", ms=4,
                              color=colours.get(method, "k"),
                              lw=2 if method.startswith("adapt") else 1, label=method)
            handles.setdefault(method, line)
        column = f"ceiling_{metric}"
        if column in part and metric == "within_10_pct":
            handles.setdefault("perfect predictor (ceiling)", ax.axhline(
                part[column].iloc[0], color="0.4", ls="--", lw=1,
                label="perfect predictor (ceiling)"))
        ax.set_xscale("symlog", linthresh=10)
        ax.set_xlim(-1, part["k"].max() * 1.1)
        ax.set(xlabel="blocks labelled on the device (k)",
               ylabel={"within_10_pct": "held-out blocks within ±10% (%)",
                       "mape_pct": "MAPE (%)", "kendall_tau": "Kendall tau"}.get(metric, metric),
               title=device)
        ax.set_xticks(sorted(part["k"].unique()), [str(k) for k in sorted(part["k"].unique())])
    ordered = [m for m in (*dict.fromkeys(curves["method"]), "perfect predictor (ceiling)")
               if m in handles]
    axes[0][ncols - 1].legend([handles[m] for m in ordered], ordered, fontsize=8,
                              loc="upper left", bbox_to_anchor=(1.02, 1))
    return fig


def transfer_findings(differences: Mapping[str, tuple], table: pd.DataFrame, method: str,
                      k: int, seconds: float, held_out: int, speed: float) -> list[str]:
    """The chapter's findings as sentences, from its own variables; ``speed`` is the median
    ratio of this machine's labels to the shipped model's predictions."""
    before, after = table.iloc[0], table.iloc[-1]
    where = (f"differs from the reference device in {describe_differences(differences)}"
             if differences else "matches the reference device in every recorded field")
    return [
        f"**This machine** {where}.",
        f"**Before adapting**, the shipped model predicts {before.within_10_pct:.0f}% of "
        f"{held_out} blocks labelled here within ±10% (MAPE {before.mape_pct:.1f}%, Kendall "
        f"tau {before.kendall_tau:.2f}); a block takes {speed:.2f}x the reference "
        "device's time here (median), and the order of the blocks changes too.",
        f"**After adapting** from {k} blocks labelled in {seconds:.0f} s, cross-validation "
        f"chose `{method}`: {after.within_10_pct:.0f}% within ±10% (MAPE "
        f"{after.mape_pct:.1f}%, Kendall tau {after.kendall_tau:.2f}) on the same held-out "
        "blocks, whose labels carry their own noise (each a standard label's relative "
        f"standard error, at most {DEFAULT_RULE.target_rel_error:.0%}).",
    ]
