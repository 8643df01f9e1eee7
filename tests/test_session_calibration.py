"""Session calibration: the power from a model's predictions to one session's labels."""

from __future__ import annotations

import numpy as np
import pytest

from lenna_core.latency.metrics import latency_metrics
from lenna_core.latency.session_calibration import (
    SessionCalibration,
    calibration_curve,
    cross_fitted,
    fit_session_calibration,
)


def session(blocks: int = 200, slope: float = 1.1, log_offset: float = 0.15,
            noise: float = 0.03, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Predictions spanning a decade of ms and labels that follow a power of them."""
    rng = np.random.default_rng(seed)
    predicted = np.exp(rng.uniform(np.log(0.2), np.log(2.0), blocks))
    measured = np.exp(log_offset + slope * np.log(predicted) + rng.normal(0, noise, blocks))
    return predicted, measured


def test_the_fit_recovers_the_power_and_apply_maps_predictions_onto_the_labels():
    predicted, measured = session(noise=0.0)
    calibration = fit_session_calibration(predicted, measured)
    assert calibration.slope == pytest.approx(1.1)
    assert calibration.log_offset == pytest.approx(0.15)
    assert calibration.blocks == 200
    np.testing.assert_allclose(calibration.apply(predicted), measured, rtol=1e-9)
    assert SessionCalibration.from_record(calibration.to_record()) == calibration


def test_a_calibration_that_does_not_order_the_blocks_or_is_not_one_is_refused():
    predicted, measured = session(noise=0.0)
    with pytest.raises(ValueError, match="does not order these blocks"):
        fit_session_calibration(predicted, 1.0 / measured)
    with pytest.raises(ValueError, match="slope positive"):
        SessionCalibration.from_record({"log_offset": 0.0, "slope": -1.0, "blocks": 5})
    with pytest.raises(ValueError, match="not one written by"):
        SessionCalibration.from_record({"slope": 1.0})
    with pytest.raises(ValueError, match="positive, finite"):
        fit_session_calibration(predicted, np.where(measured > 1, 0.0, measured))


def test_cross_fitting_never_calibrates_a_block_with_its_own_label():
    predicted, measured = session()
    before = cross_fitted(predicted, measured, folds=2, seed=4)
    changed = measured.copy()
    changed[7] *= 3.0  # only block 7's label moves
    after = cross_fitted(predicted, changed, folds=2, seed=4)
    assert after[7] == before[7]
    moved = ~np.isclose(after, before, rtol=1e-12)
    # The other fold's blocks, calibrated on block 7 among others, move; none of its own fold.
    assert 0 < moved.sum() < len(predicted) - 1


def test_cross_fitted_predictions_beat_the_uncalibrated_model_on_a_shifted_session():
    predicted, measured = session(noise=0.03)
    raw = latency_metrics(measured, predicted)["within_10_pct"]
    calibrated = latency_metrics(measured, cross_fitted(predicted, measured))["within_10_pct"]
    assert raw < 60 and calibrated > 95


def test_the_curve_starts_at_the_raw_model_and_rises_with_the_blocks_that_calibrate():
    predicted, measured = session(noise=0.05)
    curve = calibration_curve(predicted, measured, ks=(10, 50), draws=40, seed=1)
    assert list(curve["k"]) == [0, 10, 50]
    assert curve.loc[0, "within_10_pct"] == latency_metrics(measured, predicted)["within_10_pct"]
    assert curve["within_10_pct"].is_monotonic_increasing
    assert (curve["within_10_pct_p5"] <= curve["within_10_pct"]).all()
    again = calibration_curve(predicted, measured, ks=(10, 50), draws=40, seed=1)
    assert again.equals(curve)


def test_bad_arguments_name_what_to_change():
    predicted, measured = session(blocks=30)
    with pytest.raises(ValueError, match="ks="):
        calibration_curve(predicted, measured, ks=(25,))
    with pytest.raises(ValueError, match="folds=5"):
        cross_fitted(predicted[:12], measured[:12], folds=5)
    with pytest.raises(ValueError, match="folds=1"):
        cross_fitted(predicted, measured, folds=1)
    with pytest.raises(ValueError, match="pair one latency per block"):
        cross_fitted(predicted, measured[:-1])
