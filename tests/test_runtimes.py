"""One sweep in two runtimes: the cross table, the paired changes per runtime, the findings and
the results page's conclusion, the two fronts side by side."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lenna_core.search.runtimes import (
    cross_table,
    findings,
    paired_table,
    runs_to_draw,
    timed_runtimes,
)
from lenna_core.search.sweep import paired_differences, summarise_sweep


def two_runtime_results() -> pd.DataFrame:
    """Plain DARTS; the torch-eager MLP search, a third faster in torch but slower in ONNX
    Runtime; the ONNX Runtime search, 40% faster there and a little faster in torch."""
    rows = []
    for seed in range(3):
        base_torch, base_ort = 30.0 + seed, 10.0 + 0.1 * seed
        rows += [
            {"estimator": "none", "penalty": "linear", "lam": 0.0, "seed": seed,
             "test_acc": 97.0 + 0.1 * seed, "measured_ms": base_torch,
             "measured_ort_ms": base_ort},
            {"estimator": "mlp", "penalty": "linear", "lam": 1.0, "seed": seed,
             "test_acc": 96.5 + 0.1 * seed, "measured_ms": 20.0 + seed,
             "measured_ort_ms": 10.5 + 0.1 * seed},
            {"estimator": "onnxruntime", "penalty": "linear", "lam": 1.0, "seed": seed,
             "test_acc": 96.8 + 0.1 * seed, "measured_ms": base_torch - 1.0 - 0.2 * seed,
             "measured_ort_ms": 0.6 * base_ort},
        ]
    return pd.DataFrame(rows)


def test_summaries_and_pairs_of_another_runtime_read_its_column():
    results = two_runtime_results()
    default = summarise_sweep(results)
    assert default.equals(summarise_sweep(results, "measured_ms"))  # today's behaviour
    ort = summarise_sweep(results, "measured_ort_ms").set_index("estimator")
    assert ort.loc["none", "latency_mean"] == pytest.approx(10.1)
    assert ort.loc["onnxruntime", "latency_change_pct"] == pytest.approx(-40.0)
    d = paired_differences(results, "onnxruntime", 1.0, latency_column="measured_ort_ms")
    assert d["latency_change_pct"] == pytest.approx(-40.0)
    assert d["latency_ci"] == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(ValueError, match="no column 'measured_npu_ms'"):
        summarise_sweep(results, "measured_npu_ms")


def test_cross_table_gives_every_setting_in_both_runtimes_against_plain_darts():
    table = cross_table(two_runtime_results()).set_index("estimator")
    assert list(table.index) == ["none", "mlp", "onnxruntime"]
    for key in ("torch", "ort"):
        for suffix in ("ms_mean", "ms_std", "change_pct"):
            assert f"{key}_{suffix}" in table
    assert table.loc["mlp", "acc_mean"] == pytest.approx(96.6)
    assert table.loc["mlp", "torch_change_pct"] == pytest.approx(100 * (21 / 31 - 1))
    assert table.loc["mlp", "ort_change_pct"] == pytest.approx(100 * (10.6 / 10.1 - 1))
    assert table.loc["onnxruntime", "ort_ms_mean"] == pytest.approx(0.6 * 10.1)
    assert table.loc["none", "ort_ms_std"] == pytest.approx(np.std([10.0, 10.1, 10.2], ddof=1))
    torch_only = cross_table(two_runtime_results().drop(columns="measured_ort_ms"))
    assert not any(c.startswith("ort_") for c in torch_only)


def test_paired_table_pairs_each_setting_with_plain_darts_in_each_runtime():
    table = paired_table(two_runtime_results()).set_index("estimator")
    assert list(table.index) == ["mlp", "onnxruntime"] and (table["seeds"] == 3).all()
    assert table.loc["onnxruntime", "ort_change_pct"] == pytest.approx(-40.0)
    assert table.loc["mlp", "ort_change_pct"] > 0 and table.loc["mlp", "torch_change_pct"] < 0
    assert table.loc["mlp", "acc_change"] == pytest.approx(-0.5)


def test_findings_say_whether_each_search_beats_the_bar_and_holds_in_the_other_runtime():
    torch_line, ort_line = findings(two_runtime_results(), tolerance=1.0, bar_pct=30.0)
    assert ort_line.startswith("The ONNX Runtime search (onnxruntime penalty at lambda 1")
    assert "latency -40.0 ± 0.0% in ONNX Runtime" in ort_line
    assert "At least 30% faster in ONNX Runtime than plain DARTS: yes" in ort_line
    assert "In torch eager the same networks change by -" in ort_line
    assert ort_line.endswith("the gain holds (its interval lies below zero, 10% of its gain "
                             "in its own runtime).")
    assert "At least 30% faster in torch eager than plain DARTS: not resolved" in torch_line
    assert torch_line.endswith("the gain reverses (its interval lies above zero: slower than "
                               "plain DARTS).")
    strict = findings(two_runtime_results(), tolerance=0.1)
    assert all("no lambda kept the accuracy within 0.1 point" in line for line in strict)
    far = findings(two_runtime_results(), bar_pct=50.0)[1]
    assert "At least 50% faster in ONNX Runtime than plain DARTS: no" in far


def test_findings_say_so_when_a_runtime_was_not_timed_or_not_searched():
    results = two_runtime_results()
    assert findings(results.drop(columns="measured_ort_ms")) == [
        "Not timed in ONNX Runtime (no measured_ort_ms in the results): no comparison across "
        "runtimes."]
    lines = findings(results[results["estimator"] != "onnxruntime"])
    assert lines[1] == ("No search was penalised for ONNX Runtime (no onnxruntime setting in "
                        "the results).")
    assert [r.key for r in timed_runtimes(results)] == ["torch", "ort"]


def test_the_cells_drawn_are_each_runtimes_strongest_search_of_the_seed():
    lambdas = {"mlp": [0.3, 1.0], "flops": [1.0], "onnxruntime": [0.0, 2.0]}
    assert runs_to_draw(lambdas, "linear", 0) == ["mlp-linear-lam1-seed0",
                                                  "onnxruntime-linear-lam2-seed0"]
    assert runs_to_draw({"mlp": [1.0]}, "linear", 3) == ["mlp-linear-lam1-seed3"]


def test_results_page_answers_across_runtimes_or_says_why_not():
    from lenna_core.book.results_page import conclusions, runtime_conclusion

    results = two_runtime_results()
    text = runtime_conclusion(results)
    assert text.startswith("4. **Does a search's gain carry across runtimes?** The torch eager")
    assert "At least 30% faster in ONNX Runtime than plain DARTS: yes" in text
    missing = runtime_conclusion(results.drop(columns="measured_ort_ms"))
    assert "Not answered by these results" in missing and "measured_ort_ms" in missing
    # The torch-eager questions compare the torch-eager predictors only.
    precise = pd.DataFrame({"within_10_pct": [97.7]}, index=["MLP on lookup table"])
    first = conclusions(results, summarise_sweep(results), precise).splitlines()[0]
    assert "mlp at lambda 1" in first and "onnxruntime" not in first


def test_the_fronts_are_drawn_side_by_side_with_one_colour_per_estimator():
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib.collections import PathCollection

    from lenna_core.book.search_plots import plot_runtime_fronts

    fig = plot_runtime_fronts(two_runtime_results())
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in panels] == ["torch eager", "ONNX Runtime"]
    assert "in ONNX Runtime (ms)" in panels[1].get_xlabel()

    def colours(ax):  # of each estimator's runs, in drawing order
        return [tuple(c.get_facecolor()[0]) for c in ax.collections
                if isinstance(c, PathCollection)]

    assert len(colours(panels[0])) == 3 and colours(panels[0]) == colours(panels[1])
    legend = [t.get_text() for t in panels[1].get_legend().get_texts()]
    assert "ONNX Runtime MLP penalty" in legend
    ort = panels[1].collections[0].get_offsets()[:, 0]  # plain DARTS's runs, in ONNX Runtime
    assert ort.tolist() == pytest.approx([10.0, 10.1, 10.2])
    one = plot_runtime_fronts(two_runtime_results().drop(columns="measured_ort_ms"))
    assert [ax.get_title() for ax in one.axes if ax.get_title()] == ["torch eager"]


def test_a_sweep_with_a_fourth_setting_is_searched_and_timed_in_both_runtimes(tmp_path):
    from test_sweep import tiny_sweep

    from lenna_core.latency.onnx_reference import OnnxReferenceClock
    from lenna_core.search.estimators import FlopsEstimator
    from lenna_core.search.evaluation import LatencyMeter
    from lenna_core.search.sweep import measure_runtime_session, run_sweep, sweep_points

    config, estimators, kwargs = tiny_sweep()
    # Any estimator can stand in for ONNX Runtime's model: the search does not care.
    searched = {**estimators, "onnxruntime": FlopsEstimator(kwargs["target"])}
    points = sweep_points({"flops": [1.0], "onnxruntime": [3.0]}, [0, 1])
    results = run_sweep(points, config, searched, tmp_path, predictors=estimators, **kwargs)
    assert "predicted_MMAC_flops" in results and "predicted_MMAC_onnxruntime" not in results
    meter = LatencyMeter(0.5, passes=3, warmup=1, clock=OnnxReferenceClock())
    results = measure_runtime_session(results, kwargs["target"], meter)
    table = cross_table(results)
    assert table["estimator"].tolist() == ["none", "flops", "onnxruntime"]
    assert (table[["torch_ms_mean", "ort_ms_mean"]] > 0).all().all()
    lines = findings(results, tolerance=100.0)
    assert lines[0].startswith("No search was penalised for torch eager")
    assert lines[1].startswith("The ONNX Runtime search (onnxruntime penalty at lambda 3")
