"""Latency metrics on hand-computed examples."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lenna_core.latency.metrics import (
    compare_models,
    latency_metrics,
    noise_floor,
    perfect_predictor_ceiling,
)


def test_metrics_of_a_known_example():
    m = latency_metrics([10.0, 20.0, 40.0, 80.0], [11.0, 19.0, 40.0, 100.0])
    assert m["n"] == 4
    assert m["rmse_ms"] == pytest.approx(math.sqrt((1 + 1 + 0 + 400) / 4))
    assert m["mape_pct"] == pytest.approx(100 * (0.1 + 0.05 + 0 + 0.25) / 4)
    assert m["within_5_pct"] == 50.0  # 5% and 0% errors
    assert m["within_10_pct"] == 75.0
    assert m["kendall_tau"] == pytest.approx(1.0) and m["spearman"] == pytest.approx(1.0)


def test_a_reversed_order_has_negative_rank_correlation():
    m = latency_metrics([1.0, 2.0, 3.0], [3.0, 2.0, 1.0])
    assert m["kendall_tau"] == pytest.approx(-1.0) and m["spearman"] == pytest.approx(-1.0)


def test_noise_floor_of_identical_measurements_is_perfect():
    m = noise_floor([1.0, 2.0, 3.0], [1.0, 2.0, 3.0])
    assert m["rmse_ms"] == 0.0 and m["mape_pct"] == 0.0 and m["within_5_pct"] == 100.0


@pytest.mark.parametrize("t, p, match", [
    ([1.0, 2.0], [1.0], "equal length"), ([1.0], [1.0], ">= 2"),
    ([1.0, float("nan")], [1.0, 2.0], "finite"), ([0.0, 1.0], [1.0, 1.0], "positive"),
])
def test_bad_inputs(t, p, match):
    with pytest.raises(ValueError, match=match):
        latency_metrics(t, p)


def test_ceiling_without_label_noise_is_a_perfect_score():
    truth = np.linspace(1.0, 10.0, 50)
    m = perfect_predictor_ceiling(truth, truth, truth, draws=3)
    assert m["mape_pct"] == 0.0 and m["within_10_pct"] == 100.0
    assert m["kendall_tau"] == pytest.approx(1.0)


def test_ceiling_recovers_the_error_of_known_gaussian_label_noise():
    rng = np.random.default_rng(1)
    sigma, truth = 0.05, rng.uniform(1.0, 20.0, 4000)
    first = truth * np.exp(sigma * rng.standard_normal(truth.size))
    second = truth * np.exp(sigma * rng.standard_normal(truth.size))
    m = perfect_predictor_ceiling(first, second, truth, draws=5, seed=2)
    # One label off by exp(sigma z): mean |exp(sigma z) - 1| ~ sigma sqrt(2 / pi) = 3.99%,
    # while two labellings disagree by about sqrt(2) times that.
    assert m["mape_pct"] == pytest.approx(100 * sigma * math.sqrt(2 / math.pi), rel=0.05)
    assert m["mape_pct"] < noise_floor(first, second)["mape_pct"] / 1.3
    assert m["within_10_pct"] == pytest.approx(100 * 0.954, abs=1.5)  # P(|z| < ~1.95)


def test_ceiling_is_seeded():
    first, second, truth = [1.0, 2.0, 3.1, 4.0], [1.1, 1.9, 3.0, 4.2], [1.0, 2.0, 3.0, 4.0]
    one = perfect_predictor_ceiling(first, second, truth, draws=4, seed=7)
    assert one == perfect_predictor_ceiling(first, second, truth, draws=4, seed=7)
    assert one != perfect_predictor_ceiling(first, second, truth, draws=4, seed=8)


@pytest.mark.parametrize("draws", [0, -1, 2.5, True])
def test_ceiling_rejects_bad_draws(draws):
    with pytest.raises(ValueError, match="draws"):
        perfect_predictor_ceiling([1.0, 2.0], [1.0, 2.0], [1.0, 2.0], draws=draws)


def test_ceiling_against_averaged_labels_shrinks_the_noise_by_root_k():
    rng = np.random.default_rng(3)
    sigma, truth = 0.05, rng.uniform(1.0, 20.0, 4000)
    first = truth * np.exp(sigma * rng.standard_normal(truth.size))
    second = truth * np.exp(sigma * rng.standard_normal(truth.size))
    m = perfect_predictor_ceiling(first, second, truth, draws=5, seed=2, averaged=4)
    # The mean of four labellings carries log noise sigma / 2.
    assert m["mape_pct"] == pytest.approx(100 * sigma / 2 * math.sqrt(2 / math.pi), rel=0.05)


@pytest.mark.parametrize("averaged", [0, -2, 1.5, True])
def test_ceiling_rejects_bad_averaged(averaged):
    with pytest.raises(ValueError, match="averaged"):
        perfect_predictor_ceiling([1.0, 2.0], [1.0, 2.0], [1.0, 2.0], averaged=averaged)


def test_compare_models_scores_every_model_on_the_same_labels():
    y = [1.0, 2.0, 4.0]
    table = compare_models(y, {"exact": [1.0, 2.0, 4.0], "double": [2.0, 4.0, 8.0]})
    assert list(table.index) == ["exact", "double"]
    assert table.loc["exact", "mape_pct"] == 0.0 and table.loc["double", "mape_pct"] == 100.0
    assert table.loc["double"].to_dict() == latency_metrics(y, [2.0, 4.0, 8.0])


def test_compare_models_rejects_no_models():
    with pytest.raises(ValueError, match="predictions"):
        compare_models([1.0, 2.0], {})
