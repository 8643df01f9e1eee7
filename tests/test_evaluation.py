"""Evaluation of derived cells: training is seeded, measurement is in ms, predictions add up."""

from __future__ import annotations

import pytest

from lenna_core import DARTS_V1, DARTS_V2, load_dataset
from lenna_core.estimators import FlopsEstimator, TargetConfig
from lenna_core.evaluation import (
    LatencyMeter,
    composition_factors,
    measure_interleaved,
    measure_overhead,
    measure_target,
    predicted_ms,
    random_genotypes,
    train_genotype,
)

SMALL = TargetConfig(C=4, layers=3, image_size=8)


@pytest.fixture(scope="module")
def splits():
    return load_dataset("digits")


@pytest.fixture(scope="module")
def meter():
    return LatencyMeter(reference_ms=7.0, passes=3, warmup=1)


def test_training_is_seeded_and_learns(splits):
    kwargs = {"C": 4, "layers": 3, "epochs": 2, "batch_size": 64, "seed": 3}
    first = train_genotype(DARTS_V2, splits, **kwargs)
    again = train_genotype(DARTS_V2, splits, **kwargs)
    assert first["test_acc"] == again["test_acc"]
    assert first["final_train_loss"] == again["final_train_loss"]
    assert first["test_acc"] > 50.0  # ten classes: chance is 10%
    with pytest.raises(ValueError, match="epochs=0"):
        train_genotype(DARTS_V2, splits, epochs=0)


def test_measurement_reports_ms_with_its_configuration(meter):
    out = measure_target(DARTS_V2, SMALL, meter, overhead_ms=0.1)
    assert out["measured_ms"] > 0 and out["measured_raw_ms"] > 0
    assert out["target_batch"] == 1 and out["target_input"] == "1x3x8x8"
    assert out["overhead_ms"] == 0.1
    overhead = measure_overhead(SMALL, meter)
    assert 0 < overhead < out["measured_ms"]  # stem and head only: a small part
    with pytest.raises(ValueError, match="passes=2"):
        LatencyMeter(reference_ms=7.0, passes=2)


def test_predictions_need_a_latency_unit_and_add_the_overhead():
    flops = FlopsEstimator(SMALL)
    with pytest.raises(ValueError, match="works in MMAC, not ms"):
        predicted_ms(flops, DARTS_V2, 0.5)


def test_composition_factor_is_the_median_ratio():
    class Fixed(FlopsEstimator):
        unit = "ms"  # a stand-in estimator whose blocks "cost" their MMAC in ms

    estimator = Fixed(SMALL)
    genotypes = random_genotypes(3, seed=0)
    assert genotypes == random_genotypes(3, seed=0) and genotypes[0] != genotypes[1]
    measured = {g: 2.0 + i for i, g in enumerate(genotypes)}
    factors, frame = composition_factors({"fixed": estimator, "flops": FlopsEstimator(SMALL)},
                                         measured, overhead_ms=0.5)
    assert list(factors) == ["fixed"]  # only ms estimators get a factor
    ratios = [(m - 0.5) / estimator.predict_genotype(g) for g, m in measured.items()]
    assert factors["fixed"] == pytest.approx(sorted(ratios)[1])
    blocks = estimator.predict_genotype(DARTS_V1)
    assert predicted_ms(estimator, DARTS_V1, 0.25, factors["fixed"]) == pytest.approx(
        factors["fixed"] * blocks + 0.25)
    assert len(frame) == 3


def test_interleaved_session_times_each_network_once(meter):
    timed = measure_interleaved([DARTS_V2, DARTS_V1, DARTS_V2], SMALL, meter, rounds=3)
    assert timed["genotype"].tolist() == [DARTS_V2.to_json(), DARTS_V1.to_json()]
    assert (timed["latency_ms"] > 0).all() and (timed["rounds"] == 3).all()
    assert timed["target_input"].iloc[0] == "1x3x8x8"
    with pytest.raises(ValueError, match="rounds=2"):
        measure_interleaved([DARTS_V2], SMALL, meter, rounds=2)
