"""Latency metrics on hand-computed examples."""

from __future__ import annotations

import math

import pytest

from lenna_core.metrics import latency_metrics, noise_floor


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
