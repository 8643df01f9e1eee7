"""Two runtimes on one CPU: what each op costs in each, side by side (chapter 5).

An op table measured in torch eager and one measured in ONNX Runtime on the same kind of
machine hold the same keys; per primitive, the median latency over the keys both hold, and
that median relative to ``sep_conv_3x3`` (the reference cell's op) in the same runtime. The
relative costs are what a latency penalty pulls the alphas by, so two runtimes whose ratios
differ can prefer different cells.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from lenna_core.book.plotting import OP_COLOURS, readable_log_axes
from lenna_core.latency.dataset_files import read_metadata
from lenna_core.latency.lookup_table import OpLatencyTable
from lenna_core.latency.machine_state import shared_labels
from lenna_core.latency.metrics import latency_metrics
from lenna_core.latency.mlp_model import MLPLatency
from lenna_core.latency.op_timing import OP_KEY

REFERENCE_PRIMITIVE = "sep_conv_3x3"


def op_costs(tables: Mapping[str, OpLatencyTable], stride: int = 1) -> pd.DataFrame:
    """Per primitive (rows) and runtime: median ms over the keys every table holds, at
    ``stride``, and that median over ``sep_conv_3x3``'s (columns ``<runtime> ms``,
    ``<runtime> / sep_conv_3x3``)."""
    if len(tables) < 2:
        raise ValueError(f"tables has {len(tables)} entries: give at least two runtimes' tables")
    frames = [table.ops.loc[table.ops["stride"] == stride, [*OP_KEY, "latency_ms"]]
              .rename(columns={"latency_ms": name}) for name, table in tables.items()]
    shared = frames[0]
    for frame in frames[1:]:
        shared = shared.merge(frame, on=list(OP_KEY))
    if shared.empty:
        raise ValueError(f"the tables share no op at stride {stride}: measure them over the "
                         "same contexts (lenna table --contexts-of the same file)")
    medians = shared.groupby("primitive")[list(tables)].median()
    out = pd.DataFrame(index=medians.index)
    for name in tables:
        out[f"{name} ms"] = medians[name]
        out[f"{name} / {REFERENCE_PRIMITIVE}"] = medians[name] / medians.loc[REFERENCE_PRIMITIVE,
                                                                              name]
    return out.sort_values(f"{next(iter(tables))} ms")


def plot_op_costs(costs: pd.DataFrame) -> Figure:
    """Each primitive's cost relative to ``sep_conv_3x3``, one group of bars per primitive,
    one bar per runtime (log scale)."""
    columns = [c for c in costs.columns if c.endswith(f"/ {REFERENCE_PRIMITIVE}")]
    fig, ax = plt.subplots(figsize=(8, 3.8), layout="constrained")
    width = 0.8 / len(columns)
    x = np.arange(len(costs))
    for k, column in enumerate(columns):
        ax.bar(x + (k - (len(columns) - 1) / 2) * width, costs[column], width,
               label=column.split(" / ")[0], color=["0.35", "0.7", "0.55"][k % 3],
               edgecolor=[OP_COLOURS.get(p, "k") for p in costs.index], linewidth=1.5)
    ax.set_yscale("log")
    readable_log_axes(ax, "y")
    ax.set_xticks(x, costs.index, rotation=30, ha="right")
    ax.set(ylabel=f"median latency / {REFERENCE_PRIMITIVE}'s",
           title="What each op costs, relative to sep_conv_3x3, in each runtime")
    ax.axhline(1.0, color="k", lw=0.6)
    ax.legend(title="runtime", fontsize=8)
    return fig


def model_finding(metrics: pd.DataFrame, model: str = "MLP on lookup table",
                  bar: tuple[float, float] = (95.0, 0.90)) -> str:
    """One sentence: how ``model`` of a device folder's scores (``lenna fit``'s
    ``predictor_metrics_precise.csv``, indexed by model) meets the bar (within ±10%, tau)."""
    if model not in metrics.index:
        raise ValueError(f"model={model!r}: the scores hold {sorted(metrics.index)}")
    row = metrics.loc[model]
    met = row["within_10_pct"] >= bar[0] and row["kendall_tau"] >= bar[1]
    ceiling = ""
    if "perfect predictor (expected)" in metrics.index:
        ceiling = (" (a perfect predictor: "
                   f"{metrics.loc['perfect predictor (expected)', 'within_10_pct']:.1f}%)")
    return (f"The {model} predicts {row['within_10_pct']:.1f}% of {int(row['n'])} held-out "
            f"blocks within ±10% of their precise labels{ceiling}, MAPE "
            f"{row['mape_pct']:.1f}%, Kendall tau {row['kendall_tau']:.3f}: the bar of "
            f"{bar[0]:g}% and tau {bar[1]:.2f} is {'met' if met else 'not met'}.")


def prior_finding(metrics: pd.DataFrame, model: str = "MLP on lookup table",
                  alternative: str = "MLP on isolated op table") -> str:
    """One sentence: what the MLP's prior is worth, ``model`` (on the probe-cell table)
    against ``alternative`` (the same MLP on the table of ops timed alone); "" without it."""
    if alternative not in metrics.index:
        return ""
    if model not in metrics.index:
        raise ValueError(f"model={model!r}: the scores hold {sorted(metrics.index)}")
    ours, theirs = metrics.loc[model], metrics.loc[alternative]
    gain = ours["within_10_pct"] - theirs["within_10_pct"]
    return (f"On the table of ops timed alone, the same MLP predicts "
            f"{theirs['within_10_pct']:.1f}% within ±10% (MAPE {theirs['mape_pct']:.1f}%, tau "
            f"{theirs['kendall_tau']:.3f}): the probe cells' table is worth {gain:+.1f} points.")


def state_finding(stretch: dict, earlier: str, later: str) -> str:
    """One sentence on how the labels of the same blocks moved between two labellings
    (:func:`~lenna_core.latency.machine_state.state_stretch`'s result)."""
    return (f"The same {stretch['blocks']} blocks, labelled {earlier} and again {later}, agree "
            f"within ±10% on {stretch['within_10_pct']:.1f}% of blocks; the later labels follow "
            f"the earlier ones to the power {stretch['slope']:.2f} (small blocks "
            f"{(stretch['ratio_small'] - 1) * 100:+.0f}%, large ones "
            f"{(stretch['ratio_large'] - 1) * 100:+.0f}%), and once that power is fitted they "
            f"agree on {stretch['within_10_pct_fitted']:.1f}% (residual "
            f"{stretch['residual_sd'] * 100:.1f}%).")


def plot_state_stretch(earlier: pd.DataFrame, later: pd.DataFrame, stretch: dict,
                       labels: tuple[str, str] = ("earlier", "later")) -> Figure:
    """The later labels of the blocks both frames hold against the earlier ones (log-log),
    with the identity and the fitted power (``state_stretch``'s result) drawn through them."""
    pairs = shared_labels(earlier, later)
    x, y = pairs["latency_ms_earlier"], pairs["latency_ms_later"]
    fig, ax = plt.subplots(figsize=(5, 4.2), layout="constrained")
    ax.scatter(x, y, s=8, alpha=0.5, color="0.3", label=f"{len(pairs)} blocks")
    span = np.geomspace(min(x.min(), y.min()), max(x.max(), y.max()), 50)
    ax.plot(span, span, "k--", lw=0.8, label="same label")
    ax.plot(span, np.exp(stretch["offset"]) * span ** stretch["slope"], color="tab:red",
            label=f"fitted power {stretch['slope']:.2f}")
    ax.set(xscale="log", yscale="log", xlabel=f"label, {labels[0]} (ms)",
           ylabel=f"label, {labels[1]} (ms)", title="The same blocks in two machine states")
    readable_log_axes(ax)
    ax.legend(fontsize=8)
    return fig


def session_finding(metrics: pd.DataFrame, bar: float = 95.0,
                    raw: str = "MLP on lookup table",
                    row: str = "MLP on lookup table, calibrated to the session (cross-fitted)"
                    ) -> str:
    """One sentence: the MLP on the table as fitted against the same MLP calibrated to the
    precise labels' session (``lenna fit``'s rows ``raw`` and ``row``), and the bar; "" without
    that row."""
    if row not in metrics.index:
        return ""
    before, after = metrics.loc[raw], metrics.loc[row]
    met = "meets" if after["within_10_pct"] >= bar else "misses"
    return (f"Calibrated to the session of the precise labels by a power fitted on the other "
            f"half of the held-out blocks, the same MLP predicts {after['within_10_pct']:.1f}% "
            f"of them within ±10% (MAPE {after['mape_pct']:.1f}%, tau "
            f"{after['kendall_tau']:.3f}) where it predicted {before['within_10_pct']:.1f}% as "
            f"fitted: it {met} the bar of {bar:g}%.")


def plot_calibration_curve(curve: pd.DataFrame, bar: float = 95.0) -> Figure:
    """Share within ±10% of held-out blocks against the blocks labelled in the session that
    calibrate the model (:func:`~lenna_core.latency.session_calibration.calibration_curve`),
    its draws' 5th percentile shaded, the model as fitted at k = 0 and the bar dashed."""
    fitted = curve[curve["k"] > 0]
    fig, ax = plt.subplots(figsize=(5, 3.6), layout="constrained")
    ax.plot(fitted["k"], fitted["within_10_pct"], "o-", color="tab:blue",
            label="calibrated on k blocks (mean)")
    ax.fill_between(fitted["k"], fitted["within_10_pct_p5"], fitted["within_10_pct"],
                    color="tab:blue", alpha=0.2, label="5th percentile of the draws")
    raw = float(curve.loc[curve["k"] == 0, "within_10_pct"].iloc[0])
    ax.axhline(raw, color="0.4", lw=1, label=f"as fitted ({raw:.1f}%)")
    ax.axhline(bar, color="k", ls="--", lw=0.8, label=f"bar ({bar:g}%)")
    ax.set(xscale="log", xlabel="blocks labelled in the session (k)",
           ylabel="held-out blocks within ±10% (%)",
           title="Calibrating the model to a labelling session")
    ax.set_xticks(list(fitted["k"]), [str(k) for k in fitted["k"]])
    ax.legend(fontsize=8, loc="lower right")
    return fig


def calibration_table(model: MLPLatency, labellings: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Share within ±10% and Kendall tau of ``model`` as fitted and with its session
    calibration, against each labelling of blocks (a name per dataset frame, its "ok" rows
    scored)."""
    if model.session_calibration_ is None:
        raise ValueError("model has no session calibration to compare: "
                         "MLPLatency.calibrate_to_session, or lenna fit's saved model")
    as_fitted = model.without_session_calibration()
    rows = {}
    for name, frame in labellings.items():
        ok = frame[frame["status"] == "ok"] if "status" in frame.columns else frame
        raw = latency_metrics(ok["latency_ms"], as_fitted.predict(ok))
        calibrated = latency_metrics(ok["latency_ms"], model.predict(ok))
        rows[name] = {"blocks": len(ok), "as fitted, within ±10% (%)": raw["within_10_pct"],
                      "calibrated, within ±10% (%)": calibrated["within_10_pct"],
                      "Kendall tau": calibrated["kendall_tau"]}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("labels")


def labelled_at(path: str | Path) -> str:
    """When the dataset at ``path`` began to be labelled, from its metadata: "2026-12-05
    02:32 UTC"."""
    started = read_metadata(path)["sessions"][0]["started"]  # ISO 8601, UTC
    return f"{started[:10]} {started[11:16]} UTC"


def training_labels_finding(metrics: pd.DataFrame,
                            row: str = "pool's labels of the evaluation blocks") -> str:
    """One sentence: how well the pool's own labels of the held-out blocks agree with their
    precise labels (``lenna fit``'s row ``row``), the most a model trained on them inherits;
    "" without that row."""
    if row not in metrics.index:
        return ""
    own = metrics.loc[row]
    return (f"The pool's own labels of the same blocks agree with their precise labels within "
            f"±10% on {own['within_10_pct']:.1f}% of them (tau {own['kendall_tau']:.3f}): a "
            f"model trained on such labels averages away their noise, but not what sets them "
            f"apart from the precise ones, such as the machine's state while they were taken.")
