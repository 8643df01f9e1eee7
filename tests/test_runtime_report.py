"""Op costs of two runtimes side by side: medians over shared keys, relative to sep_conv_3x3."""

from __future__ import annotations

from pathlib import Path

import pytest

from lenna_core.book.runtime_report import op_costs, plot_op_costs
from lenna_core.latency.lookup_table import OpLatencyTable

TABLE = Path(__file__).resolve().parents[1] / "data" / "op_latency_table.csv"


def _scaled(table: OpLatencyTable, primitive: str, factor: float) -> OpLatencyTable:
    ops = table.ops.copy()
    ops.loc[ops["primitive"] == primitive, "latency_ms"] *= factor
    return OpLatencyTable(ops, table.fixed, table.space, table.meta)


def test_relative_costs_follow_each_runtimes_own_medians():
    torch_table = OpLatencyTable.from_csv(TABLE)
    other = _scaled(_scaled(torch_table, "max_pool_3x3", 2.0), "sep_conv_3x3", 0.5)
    costs = op_costs({"torch": torch_table, "other": other})
    assert costs.loc["sep_conv_3x3", "torch / sep_conv_3x3"] == pytest.approx(1.0)
    assert costs.loc["sep_conv_3x3", "other / sep_conv_3x3"] == pytest.approx(1.0)
    # max_pool doubled and sep_conv halved: its cost relative to sep_conv is 4x.
    assert costs.loc["max_pool_3x3", "other / sep_conv_3x3"] == pytest.approx(
        4 * costs.loc["max_pool_3x3", "torch / sep_conv_3x3"])
    assert costs.loc["dil_conv_3x3", "other ms"] == costs.loc["dil_conv_3x3", "torch ms"]
    fig = plot_op_costs(costs)
    assert len(fig.axes[0].patches) == 2 * len(costs)


def test_tables_without_shared_ops_or_a_single_table_are_refused():
    table = OpLatencyTable.from_csv(TABLE)
    moved = table.ops.assign(C=table.ops["C"] + 1000)
    with pytest.raises(ValueError, match="share no op"):
        op_costs({"a": table, "b": OpLatencyTable(moved, table.fixed, table.space, table.meta)})
    with pytest.raises(ValueError, match="at least two"):
        op_costs({"a": table})


def test_transfer_curves_wrap_two_devices_a_row():
    import pandas as pd

    from lenna_core.book.transfer_report import plot_transfer_curves

    curves = pd.DataFrame([{"device": f"d{d}", "method": m, "k": k, "within_10_pct": 50 + k / 10}
                           for d in range(3) for m in ("none", "scale") for k in (0, 10, 100)])
    fig = plot_transfer_curves(curves)
    shown = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in shown] == ["d0", "d1", "d2"]
    assert len(fig.axes) == 4  # a 2 x 2 grid, its fourth panel hidden


def test_a_method_keeps_its_colour_in_a_panel_that_lacks_the_others():
    import pandas as pd

    from lenna_core.book.transfer_report import plot_transfer_curves

    methods = {"d0": ("none", "scale", "remeasured_table", "adapt (CV)"),
               "d1": ("remeasured_table", "adapt (CV)")}  # its table prices no other method
    curves = pd.DataFrame([{"device": d, "method": m, "k": k, "within_10_pct": 50 + k / 10}
                           for d, names in methods.items() for m in names for k in (10, 100)])
    fig = plot_transfer_curves(curves)
    colours = [{line.get_label(): line.get_color() for line in ax.get_lines()}
               for ax in fig.axes[:2]]
    assert colours[0]["remeasured_table"] == colours[1]["remeasured_table"]
    assert colours[1]["adapt (CV)"] == "k"
    assert len(set(colours[0].values())) == 4
    legend = [text.get_text() for text in fig.axes[1].get_legend().get_texts()]
    assert legend == ["none", "scale", "remeasured_table", "adapt (CV)"]


def test_the_model_finding_says_whether_the_bar_is_met():
    import pandas as pd

    from lenna_core.book.runtime_report import model_finding

    metrics = pd.DataFrame({"n": [400, 400], "mape_pct": [3.0, 0.9],
                            "within_10_pct": [96.0, 99.5], "kendall_tau": [0.91, 0.97]},
                           index=pd.Index(["MLP on lookup table", "perfect predictor (expected)"],
                                          name="model"))
    assert model_finding(metrics).endswith("is met.")
    assert "99.5%" in model_finding(metrics)
    assert model_finding(metrics.assign(kendall_tau=0.85)).endswith("is not met.")
    with pytest.raises(ValueError, match="MLP"):
        model_finding(metrics, model="MLP")


def test_the_prior_finding_sets_the_probe_cell_table_against_ops_timed_alone():
    import pandas as pd

    from lenna_core.book.runtime_report import prior_finding

    metrics = pd.DataFrame({"n": [400, 400], "mape_pct": [4.5, 6.6],
                            "within_10_pct": [91.0, 80.0], "kendall_tau": [0.911, 0.877]},
                           index=pd.Index(["MLP on lookup table", "MLP on isolated op table"],
                                          name="model"))
    sentence = prior_finding(metrics)
    assert "80.0% within ±10%" in sentence and "tau 0.877" in sentence
    assert "worth +11.0 points" in sentence
    assert "91.0%" not in sentence  # the model's own score is model_finding's to print
    assert prior_finding(metrics.drop("MLP on isolated op table")) == ""
    with pytest.raises(ValueError, match="MLP on lookup table"):
        prior_finding(metrics.drop("MLP on lookup table"))


def test_the_state_finding_reports_the_power_and_both_agreements():
    from lenna_core.book.runtime_report import state_finding

    stretch = {"blocks": 424, "slope": 1.24, "offset": 0.47, "residual_sd": 0.038,
               "within_10_pct": 52.4, "within_10_pct_fitted": 97.2, "ratio_small": 0.81,
               "ratio_large": 1.2}
    sentence = state_finding(stretch, "at 02:32", "at 10:05")
    assert "The same 424 blocks, labelled at 02:32 and again at 10:05" in sentence
    assert "on 52.4% of blocks" in sentence and "power 1.24" in sentence
    assert "small blocks -19%, large ones +20%" in sentence
    assert "agree on 97.2% (residual 3.8%)" in sentence


def test_the_state_plot_draws_every_shared_block_the_identity_and_the_fit():
    import numpy as np
    import pandas as pd

    from lenna_core.book.runtime_report import plot_state_stretch
    from lenna_core.latency.machine_state import state_stretch

    ms = np.linspace(0.05, 0.5, 30)
    earlier = pd.DataFrame({"row_id": range(30), "status": "ok", "latency_ms": ms})
    later = earlier.assign(latency_ms=1.1 * ms ** 1.2)
    stretch = state_stretch(earlier, later)
    ax = plot_state_stretch(earlier, later, stretch, ("at 02:32", "at 10:05")).axes[0]
    assert len(ax.collections[0].get_offsets()) == 30
    fitted = ax.lines[1].get_ydata()
    np.testing.assert_allclose(fitted, 1.1 * ax.lines[1].get_xdata() ** 1.2, rtol=1e-6)
    assert ax.get_xlabel() == "label, at 02:32 (ms)"
    assert "fitted power 1.20" in ax.get_legend_handles_labels()[1]


def test_labelled_at_reads_when_a_labelling_began():
    from pathlib import Path

    from lenna_core.book.runtime_report import labelled_at

    earlier = Path(__file__).resolve().parents[1] / "data" / "machine_state"
    assert labelled_at(earlier / "onnxruntime_precise_earlier.csv") == "2026-12-05 02:32 UTC"


def test_the_training_labels_finding_quotes_the_pools_own_score():
    import pandas as pd

    from lenna_core.book.runtime_report import training_labels_finding

    metrics = pd.DataFrame({"within_10_pct": [91.7, 93.9], "kendall_tau": [0.94, 0.938]},
                           index=["MLP on lookup table", "pool's labels of the evaluation blocks"])
    sentence = training_labels_finding(metrics)
    assert "on 93.9% of them (tau 0.938)" in sentence
    assert training_labels_finding(metrics.drop("pool's labels of the evaluation blocks")) == ""


def test_the_session_finding_sets_the_calibrated_score_against_the_model_as_fitted():
    import pandas as pd

    from lenna_core.book.runtime_report import session_finding

    columns = ["within_10_pct", "mape_pct", "kendall_tau"]
    row = "MLP on lookup table, calibrated to the session (cross-fitted)"
    metrics = pd.DataFrame([[91.7, 4.4, 0.940], [95.3, 3.5, 0.939]], columns=columns,
                           index=pd.Index(["MLP on lookup table", row], name="model"))
    sentence = session_finding(metrics)
    assert "predicts 95.3% of them within ±10% (MAPE 3.5%, tau 0.939)" in sentence
    assert "where it predicted 91.7% as fitted: it meets the bar of 95%" in sentence
    assert "it misses the bar of 96%" in session_finding(metrics, bar=96)
    assert session_finding(metrics.drop(row)) == ""


def test_the_calibration_curve_plot_draws_each_k_the_model_as_fitted_and_the_bar():
    import pandas as pd

    from lenna_core.book.runtime_report import plot_calibration_curve

    curve = pd.DataFrame({"k": [0, 10, 25, 100], "within_10_pct": [91.7, 93.0, 94.5, 95.1],
                          "within_10_pct_p5": [91.7, 88.6, 92.2, 94.1]})
    ax = plot_calibration_curve(curve).axes[0]
    assert list(ax.lines[0].get_xdata()) == [10, 25, 100]
    assert list(ax.lines[0].get_ydata()) == [93.0, 94.5, 95.1]
    labels = ax.get_legend_handles_labels()[1]
    assert "as fitted (91.7%)" in labels and "bar (95%)" in labels


def test_the_calibration_table_scores_the_model_as_fitted_and_calibrated_on_each_labelling():
    import numpy as np

    from lenna_core.book.runtime_report import calibration_table
    from lenna_core.latency.dataset import read_dataset
    from lenna_core.latency.metrics import latency_metrics
    from lenna_core.latency.mlp_model import MLPLatency
    from lenna_core.latency.session_calibration import SessionCalibration

    data = Path(__file__).resolve().parents[1] / "data"
    model = MLPLatency.load(data / "mlp_latency", check_device_here=False)
    frame = read_dataset(data / "devices" / "xeon-6-167" / "precise.csv")
    blocks = frame[frame["status"] == "ok"].iloc[:60]
    raw = model.predict(blocks)
    with pytest.raises(ValueError, match="no session calibration"):
        calibration_table(model, {"here": blocks})
    model.set_session_calibration(SessionCalibration(0.0, 1.2, 60))
    # One labelling the calibrated model predicts exactly, one the model as fitted does.
    table = calibration_table(model, {"calibrated to": blocks.assign(latency_ms=raw ** 1.2),
                                      "as fitted": blocks.assign(latency_ms=raw)})
    assert table.loc["calibrated to", "calibrated, within ±10% (%)"] == 100.0
    assert table.loc["as fitted", "as fitted, within ±10% (%)"] == 100.0
    want = latency_metrics(raw, raw ** 1.2)["within_10_pct"]
    assert table.loc["as fitted", "calibrated, within ±10% (%)"] == want
    assert (table["blocks"] == 60).all() and np.isfinite(table["Kendall tau"]).all()

