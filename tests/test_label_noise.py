"""Scores against noisy labels: SIMEX on synthetic labels whose truth is known, folds."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.neighbors import KNeighborsRegressor
from sklearn.pipeline import make_pipeline

from lenna_core.latency.label_noise import (
    SCORINGS,
    mean_of_two,
    out_of_fold_predictions,
    plot_extrapolation,
    plot_parity_panels,
    score_models_on_pairs,
    score_on_relabelled,
    score_three_ways,
    simex_interval,
    simex_metrics,
)
from lenna_core.latency.metrics import latency_metrics

LABEL_NOISE = 0.045  # log-noise of one labelling, as in the reference dataset


def _synthetic(model_error: float, n: int = 600, seed: int = 0):
    """Truth spread like the reference dataset's (log sd 0.25), two labellings, predictions."""
    rng = np.random.default_rng(seed)
    truth = np.exp(rng.normal(np.log(4.0), 0.25, n))
    first, second = (truth * np.exp(rng.normal(0, LABEL_NOISE, n)) for _ in range(2))
    return truth, first, second, truth * np.exp(rng.normal(0, model_error, n))


def test_mean_of_two_carries_half_the_noise_variance():
    truth, first, second, _ = _synthetic(0.0, n=20000)
    variance = np.var(np.log(mean_of_two(first, second) / truth))
    assert variance == pytest.approx(LABEL_NOISE ** 2 / 2, rel=0.05)


@pytest.mark.parametrize("model_error", [0.02, 0.03, 0.04])
def test_simex_recovers_the_score_against_the_truth(model_error):
    truth, first, second, predicted = _synthetic(model_error, seed=int(model_error * 100))
    against_truth = latency_metrics(truth, predicted)
    against_one_label = latency_metrics(first, predicted)
    estimate, _ = simex_metrics(predicted, first, second, seed=1)
    assert estimate["kendall_tau"] == pytest.approx(against_truth["kendall_tau"], abs=0.02)
    assert estimate["spearman"] == pytest.approx(against_truth["spearman"], abs=0.01)
    assert estimate["within_10_pct"] == pytest.approx(against_truth["within_10_pct"], abs=2.0)
    for metric in ("mape_pct", "rmse_ms", "within_5_pct", "within_10_pct", "kendall_tau"):
        assert (abs(estimate[metric] - against_truth[metric])
                < abs(against_one_label[metric] - against_truth[metric])), metric


def test_simex_curve_degrades_with_added_noise_and_is_seeded():
    _, first, second, predicted = _synthetic(0.03)
    estimate, curve = simex_metrics(predicted, first, second, draws=20, seed=3)
    assert curve["noise"].tolist() == [0.5, 0.75, 1.0, 1.25, 1.5]
    assert curve["kendall_tau"].is_monotonic_decreasing
    assert curve["mape_pct"].is_monotonic_increasing
    assert estimate["kendall_tau"] > curve["kendall_tau"].iloc[0]
    assert estimate["n"] == len(predicted)
    assert estimate == simex_metrics(predicted, first, second, draws=20, seed=3)[0]


def test_estimates_stay_in_each_metrics_range():
    truth, first, second, _ = _synthetic(0.0)
    estimate, _ = simex_metrics(truth, first, second, draws=10)
    assert estimate["within_10_pct"] <= 100.0 and estimate["kendall_tau"] <= 1.0
    assert estimate["mape_pct"] >= 0.0


def test_interval_brackets_the_estimate():
    _, first, second, predicted = _synthetic(0.03, n=300)
    estimate, _ = simex_metrics(predicted, first, second)
    band = simex_interval(predicted, first, second, resamples=30, draws=5)
    assert band.index.tolist() == ["5%", "95%"]
    assert (band.loc["5%"] <= band.loc["95%"]).all()
    assert band.loc["5%", "kendall_tau"] < estimate["kendall_tau"] < band.loc["95%", "kendall_tau"]


@pytest.mark.parametrize("kwargs, match", [
    ({"first": [1.0, 2.0]}, "equal length"),
    ({"second": [1.0, -2.0, 3.0]}, "second must hold finite, positive"),
    ({"y_pred": [1.0, np.nan, 3.0]}, "y_pred must hold finite"),
    ({"draws": 0}, "draws"),
    ({"steps": [1.0]}, "steps"),
    ({"steps": [0.0, 1.0]}, "steps"),
])
def test_simex_rejects_bad_input(kwargs, match):
    args = {"y_pred": [1.0, 2.0, 3.0], "first": [1.0, 2.0, 3.0], "second": [1.1, 2.1, 2.9]}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        simex_metrics(args.pop("y_pred"), args.pop("first"), args.pop("second"), **args)


def test_three_scorings_go_from_one_label_to_the_estimate():
    _, first, second, predicted = _synthetic(0.03, n=300)
    table, curve = score_three_ways(predicted, first, second, draws=10, seed=2)
    assert table.index.tolist() == list(SCORINGS)
    assert table.loc[SCORINGS[0]].to_dict() == latency_metrics(first, predicted)
    assert table.loc[SCORINGS[1], "mape_pct"] == curve.loc[0, "mape_pct"]
    assert table.loc[SCORINGS[2]].to_dict() == simex_metrics(predicted, first, second,
                                                             draws=10, seed=2)[0]
    assert table["kendall_tau"].is_monotonic_increasing  # less label noise, better ranks


def test_extrapolation_plot_marks_each_estimate_at_zero_noise():
    import matplotlib
    matplotlib.use("Agg")
    _, first, second, predicted = _synthetic(0.03, n=200)
    estimate, curve = simex_metrics(predicted, first, second, draws=5)
    ax = plot_extrapolation({"model": curve}, {"model": estimate["kendall_tau"]},
                            "kendall_tau", target=0.9)
    points = [line for line in ax.lines if line.get_marker() == "o"]
    assert [list(p.get_xdata()) for p in points] == [curve["noise"].tolist(), [0.0]]
    assert points[1].get_ydata()[0] == estimate["kendall_tau"]
    assert any(list(line.get_ydata()) == [0.9, 0.9] for line in ax.lines)


def _nearest_neighbour():
    """1-NN on column x: it returns a training row's own label, so a leak would show."""
    return make_pipeline(ColumnTransformer([("x", "passthrough", ["x"])]),
                         KNeighborsRegressor(n_neighbors=1))


def _frame(ids, seed=0):
    rng = np.random.default_rng(seed)
    ids = np.asarray(ids)
    return pd.DataFrame({"row_id": ids, "x": ids * 1.0 + rng.uniform(0, 0.1, ids.size),
                         "latency_ms": rng.uniform(1.0, 5.0, ids.size)})


def test_out_of_fold_predictions_never_see_the_scored_row():
    train = _frame(range(40))
    scored = [3, 7, 11, 20, 21, 30]
    predicted = out_of_fold_predictions(_nearest_neighbour(), train, scored, folds=3)
    assert predicted.index.tolist() == sorted(scored)
    own = train.set_index("row_id").loc[scored, "latency_ms"]
    assert (predicted != own).all()
    # In-sample, 1-NN would return each row's own label.
    fitted = _nearest_neighbour().fit(train, train["latency_ms"])
    assert np.allclose(fitted.predict(train.set_index("row_id").loc[scored].reset_index()), own)


def test_out_of_fold_predictions_train_on_the_extra_rows():
    train = _frame(range(20))
    extra = train.iloc[[4, 5]].assign(row_id=[1004, 1005], latency_ms=[9.0, 9.5])
    predicted = out_of_fold_predictions(_nearest_neighbour(), train, [4, 5], folds=2,
                                        extra_train=extra)
    assert predicted.tolist() == [9.0, 9.5]  # the twins in the extra set are the neighbours


@pytest.mark.parametrize("ids, folds, match", [
    ([1, 2, 99], 2, "not in train"), ([1, 2, 3], 1, "folds"), ([1], 2, "cannot fill"),
])
def test_out_of_fold_predictions_reject_bad_input(ids, folds, match):
    with pytest.raises(ValueError, match=match):
        out_of_fold_predictions(_nearest_neighbour(), _frame(range(10)), ids, folds=folds)


def test_models_are_scored_out_of_fold_on_the_paired_blocks():
    train = _frame(range(30))
    pairs = pd.DataFrame({"row_id": [2, 5, 9, 14, 22, 27],
                          "latency_ms_first": [1.1, 2.0, 3.2, 1.5, 4.1, 2.2],
                          "latency_ms_second": [1.0, 2.2, 3.0, 1.6, 3.9, 2.4]})
    scores = score_models_on_pairs({"1-NN": _nearest_neighbour()}, train, pairs, folds=3)
    got = scores["1-NN"]
    expected = out_of_fold_predictions(_nearest_neighbour(), train, pairs["row_id"], folds=3)
    pd.testing.assert_series_equal(got.predicted, expected)
    assert got.first.tolist() == [1.1, 2.0, 3.2, 1.5, 4.1, 2.2]
    assert got.table.equals(score_three_ways(expected, got.first, got.second)[0])


class _Exact:
    """A stand-in model that predicts the truth stored in column ``truth``."""

    def predict(self, frame):
        return frame["truth"].to_numpy()


def _relabelled_frame(n: int = 400):
    truth, first, second, _ = _synthetic(0.0, n=n)
    return pd.DataFrame({"truth": truth, "latency_ms_1": first, "latency_ms_2": second,
                         "latency_ms": mean_of_two(first, second)})


def test_scores_on_relabelled_rows_come_with_their_floor_and_ceiling():
    frame = _relabelled_frame()
    table = score_on_relabelled({"exact": _Exact()}, frame, seed=0)
    assert list(table.index) == ["exact", "noise floor", "perfect predictor (expected)"]
    assert table.loc["exact"].to_dict() == latency_metrics(frame["latency_ms"], frame["truth"])
    assert table.loc["noise floor"].to_dict() == latency_metrics(frame["latency_ms_1"],
                                                                  frame["latency_ms_2"])
    # The truth scored against the mean label is what the ceiling expects, noise for noise.
    for metric in ("mape_pct", "within_5_pct", "kendall_tau"):
        assert table.loc["perfect predictor (expected)", metric] == pytest.approx(
            table.loc["exact", metric], rel=0.08), metric
    one = score_on_relabelled({"exact": _Exact()}, frame.drop(columns="latency_ms_2"))
    assert list(one.index) == ["exact"]  # one labelling: no floor to show


def test_parity_panels_draw_one_panel_per_series():
    import matplotlib
    matplotlib.use("Agg")
    frame = _relabelled_frame(50)
    fig = plot_parity_panels(frame["latency_ms"], {"one": frame["latency_ms_1"],
                                                   "model": frame["truth"]})
    assert [ax.get_ylabel() for ax in fig.axes] == ["one (ms)", "model (ms)"]
    within = latency_metrics(frame["latency_ms"], frame["truth"])["within_10_pct"]
    assert f"{within:.1f}% within ±10%" in fig.axes[1].get_title()
    with pytest.raises(ValueError, match="panels"):
        plot_parity_panels(frame["latency_ms"], {})
    with pytest.raises(ValueError, match="ncols"):
        plot_parity_panels(frame["latency_ms"], {"one": frame["latency_ms_1"]}, ncols=0)


def test_parity_panels_wrap_into_rows_and_draw_the_floor_on_each():
    import matplotlib
    matplotlib.use("Agg")
    frame = _relabelled_frame(50)
    panels = {f"model {k}": frame["truth"] * (1 + 0.01 * k) for k in range(4)}
    fig = plot_parity_panels(frame["latency_ms"], panels, ncols=3,
                             floor=(frame["latency_ms_1"], frame["latency_ms_2"]))
    drawn = [ax for ax in fig.axes if ax.axison]
    assert len(fig.axes) == 6 and len(drawn) == 4  # 2 rows of 3, two spare panels hidden
    assert all(len(ax.collections) == 2 for ax in drawn)  # the blocks and the floor
    floor_points = drawn[3].collections[1].get_offsets()
    assert np.allclose(floor_points[:, 0], frame["latency_ms_1"])
