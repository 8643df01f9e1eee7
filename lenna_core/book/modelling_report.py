"""Chapter 4's split, candidate models, learning curve and findings text, built from the
chapter's data and results."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure
from sklearn.model_selection import train_test_split

from lenna_core.book.plotting import legend_outside, readable_log_axes
from lenna_core.latency.block_checks import extrapolation_expected
from lenna_core.latency.candidates import candidate_models as candidate_models  # for chapter 4
from lenna_core.latency.dataset import held_out_split
from lenna_core.latency.lookup_table import OpLatencyTable
from lenna_core.latency.metrics import latency_metrics
from lenna_core.latency.mlp_model import MLPLatency


def modelling_split(data: pd.DataFrame, extra: Sequence[pd.DataFrame], test_fraction: float,
                    seed: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(train, test, extra_train, extra_test): ``data``'s held-out split
    (:func:`~lenna_core.latency.dataset.held_out_split`), and the labelled rows of the
    ``extra`` sets split at random in the same proportion; their training part joins train."""
    train, test = held_out_split(data, test_fraction, seed)
    ok_extra = (pd.concat([e[e["status"] == "ok"] for e in extra], ignore_index=True) if extra
                else data.iloc[:0])
    extra_train, extra_test = (train_test_split(ok_extra, test_size=test_fraction,
                                                random_state=seed)
                               if len(ok_extra) > 1 else (ok_extra, ok_extra))
    return pd.concat([train, extra_train], ignore_index=True), test, extra_train, extra_test


def learning_curve(train: pd.DataFrame, test: pd.DataFrame, sizes: Sequence[int], *,
                   hidden: tuple[int, ...], max_epochs: int, seed: int,
                   table: OpLatencyTable) -> pd.DataFrame:
    """Test metrics of the plain MLP and the MLP on ``table`` fit on seeded random subsets of
    ``train`` of each size (sizes above ``len(train)`` are skipped); one row per (size, model)."""
    curve = []
    for size in [s for s in sizes if s <= len(train)]:
        subset = train.sample(n=size, random_state=seed)
        for name, prior in (("MLP", None), ("MLP on lookup table", table)):
            model = MLPLatency(hidden=hidden, max_epochs=max_epochs, random_state=seed,
                               prior=prior).fit(subset, subset["latency_ms"])
            with extrapolation_expected():  # a small subset spans less than the test blocks
                curve.append({"model": name, "rows": size,
                              **latency_metrics(test["latency_ms"], model.predict(test))})
    return pd.DataFrame(curve)


def plot_learning_curve(curve: pd.DataFrame, floor: Mapping, ablation: Mapping) -> Figure:
    """Test MAPE against training blocks per model, with the noise floor and the MLP that
    sees no probabilities."""
    fig, ax = plt.subplots(figsize=(8.5, 3.8))
    for name, points in curve.groupby("model"):
        ax.plot(points["rows"], points["mape_pct"], marker="o", label=name)
    ax.axhline(floor["mape_pct"], color="0.4", ls="--", label="noise floor")
    ax.axhline(ablation["mape_pct"], color="C3", ls=":", label="MLP without probabilities")
    ax.set(xscale="log", xlabel="training blocks", ylabel="test MAPE (%)",
           title="Learning curve")
    readable_log_axes(ax, "x")
    sizes = sorted(int(n) for n in curve["rows"].unique())
    ax.set_xticks(sizes, [str(n) for n in sizes])  # the sizes fitted, each labelled
    legend_outside(ax, fontsize=9)
    fig.tight_layout()
    return fig


def modelling_findings(table: pd.DataFrame, names: Sequence[str], floor: Mapping,
                       ablation: Mapping, ceiling: Mapping, saved_name: str, saved_scores,
                       precise_table: pd.DataFrame, extra_table: pd.DataFrame, seed: int
                       ) -> list[str]:
    """Chapter 4's findings, one line each, from its tables: the MLP against the noise floor,
    the ablation and a perfect predictor; every other model (``names``); the saved model
    against twice-labelled blocks with a bootstrap band (``saved_scores``, from
    :func:`~lenna_core.latency.label_noise.score_models_on_pairs`); the precise labels; the extra
    blocks shaped like derived cells."""
    from lenna_core.latency.label_noise import simex_interval

    m = table.loc["MLP"]
    lines = [
        f"MLP on {int(m['n'])} held-out blocks: MAPE {m['mape_pct']:.1f}% (noise floor "
        f"{floor['mape_pct']:.1f}% between two labellings, ratio "
        f"{m['mape_pct'] / floor['mape_pct']:.2f}), {m['within_10_pct']:.1f}% within ±10%, "
        f"Kendall tau {m['kendall_tau']:.3f}, RMSE {m['rmse_ms']:.3f} ms. Without the "
        f"probabilities: MAPE {ablation['mape_pct']:.1f}%.",
        f"A perfect predictor against these labels: MAPE {ceiling['mape_pct']:.1f}%, "
        f"{ceiling['within_10_pct']:.1f}% within ±10%, Kendall tau "
        f"{ceiling['kendall_tau']:.3f}."]
    for name in [n for n in names if n != "MLP"]:
        lines.append(f"{name}: MAPE {table.loc[name, 'mape_pct']:.1f}%, "
                     f"{table.loc[name, 'within_10_pct']:.1f}% within ±10%, Kendall tau "
                     f"{table.loc[name, 'kendall_tau']:.3f}, RMSE "
                     f"{table.loc[name, 'rmse_ms']:.3f} ms")
    band = simex_interval(saved_scores.predicted, saved_scores.first, saved_scores.second,
                          seed=seed)
    for scoring, row in saved_scores.table.iterrows():
        lines.append(f"{saved_name}, {int(row['n'])} twice-labelled blocks out of fold, "
                     f"against {scoring}: Kendall tau {row['kendall_tau']:.3f}, "
                     f"{row['within_10_pct']:.1f}% within ±10%, MAPE {row['mape_pct']:.2f}%")
    lines.append("  5-95% bootstrap band of the estimate: Kendall tau "
                 f"{band['kendall_tau'].iloc[0]:.3f}-{band['kendall_tau'].iloc[1]:.3f}, "
                 f"within ±10% {band['within_10_pct'].iloc[0]:.1f}-"
                 f"{band['within_10_pct'].iloc[1]:.1f}%, MAPE "
                 f"{band['mape_pct'].iloc[0]:.2f}-{band['mape_pct'].iloc[1]:.2f}%")
    for name in ("MLP", "MLP on lookup table", "lookup table, calibrated"):
        row = precise_table.loc[name]
        lines.append(f"{name} against precise labels of the {int(row['n'])} held-out blocks: "
                     f"{row['within_10_pct']:.1f}% within ±10%, Kendall tau "
                     f"{row['kendall_tau']:.3f}, MAPE {row['mape_pct']:.2f}%, RMSE "
                     f"{row['rmse_ms']:.3f} ms")
    lines.append(f"  two precise labellings agree to MAPE "
                 f"{precise_table.loc['noise floor', 'mape_pct']:.2f}%; a perfect predictor "
                 "would reach Kendall tau "
                 f"{precise_table.loc['perfect predictor (expected)', 'kendall_tau']:.3f}")
    if len(extra_table):
        lines.append("on the blocks shaped like derived cells, MAPE: " + ", ".join(
            f"{name} {row['mape_pct']:.1f}%" for name, row in extra_table.iterrows()))
    return lines
