"""Evaluation of derived cells: training is seeded, measurement is in ms, predictions add up."""

from __future__ import annotations

import pytest

from lenna_core import DARTS_V1, DARTS_V2, load_dataset
from lenna_core.search.estimators import FlopsEstimator, TargetConfig
from lenna_core.search.evaluation import (
    LatencyMeter,
    calibration_genotypes,
    composition_factors,
    measure_interleaved,
    measure_overhead,
    measure_target,
    predicted_ms,
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


def test_composition_fit_recovers_scale_and_offset():
    class Fixed(FlopsEstimator):
        unit = "ms"  # a stand-in estimator whose blocks "cost" their MMAC in ms

    estimator = Fixed(SMALL)
    genotypes = calibration_genotypes(4, seed=0)
    assert genotypes == calibration_genotypes(4, seed=0) and len(set(genotypes)) == 4
    blocks = [estimator.predict_genotype(g) for g in genotypes]
    assert blocks[0] < blocks[-1]  # the tilt runs from pooling-heavy to convolution-heavy
    measured = {g: 0.8 * b - 0.3 + 0.5 for g, b in zip(genotypes, blocks)}  # overhead 0.5
    fits, frame = composition_factors({"fixed": estimator, "flops": FlopsEstimator(SMALL)},
                                      measured, overhead_ms=0.5)
    assert list(fits) == ["fixed"]  # only ms estimators get a fit
    assert fits["fixed"].scale == pytest.approx(0.8) and fits["fixed"].offset == pytest.approx(-0.3)
    assert predicted_ms(estimator, DARTS_V1, 0.25, fits["fixed"]) == pytest.approx(
        0.8 * estimator.predict_genotype(DARTS_V1) - 0.3 + 0.25)
    assert frame["fitted_ms_fixed"].to_numpy() == pytest.approx(list(measured.values()))
    with pytest.raises(ValueError, match="at least 2"):
        composition_factors({"fixed": estimator}, dict(list(measured.items())[:1]), 0.0)
    with pytest.raises(ValueError, match="count=1"):
        calibration_genotypes(1, seed=0)


def test_interleaved_session_times_each_network_once(meter):
    timed = measure_interleaved([DARTS_V2, DARTS_V1, DARTS_V2], SMALL, meter, rounds=3)
    assert timed["genotype"].tolist() == [DARTS_V2.to_json(), DARTS_V1.to_json()]
    assert (timed["latency_ms"] > 0).all() and (timed["rounds"] == 3).all()
    assert timed["target_input"].iloc[0] == "1x3x8x8"
    with pytest.raises(ValueError, match="rounds=2"):
        measure_interleaved([DARTS_V2], SMALL, meter, rounds=2)
