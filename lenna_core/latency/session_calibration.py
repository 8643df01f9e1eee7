"""Calibrating a latency model to the machine state of one labelling session.

Labels of the same blocks taken in two states of the same machine follow a power of each other
(:mod:`~lenna_core.latency.machine_state`), so a model trained on one session's labels is off
by such a power against another's. A :class:`SessionCalibration` is that power, fitted between
a model's predictions and a few blocks labelled in the session the model should predict:
calibrated ms = exp(log_offset) * ms ** slope. It keeps the model's order of blocks and moves
only its scale. :func:`cross_fitted` scores it honestly (no block's own label calibrates its
prediction) and :func:`calibration_curve` says how many labelled blocks it needs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from lenna_core.latency.machine_state import MIN_SHARED_BLOCKS, power_fit
from lenna_core.latency.metrics import latency_metrics
from lenna_core.validation import check_int


@dataclass(frozen=True)
class SessionCalibration:
    """calibrated ms = exp(``log_offset``) * ms ** ``slope``, fitted on ``blocks`` blocks."""

    log_offset: float
    slope: float
    blocks: int

    def apply(self, ms: Sequence[float] | np.ndarray) -> np.ndarray:
        """The calibrated latencies (ms) of latencies ``ms`` as the model predicted them."""
        return np.exp(self.log_offset) * np.asarray(ms, dtype=float) ** self.slope

    def to_record(self) -> dict:
        """The calibration as a JSON-ready dict (:meth:`from_record` reads it back)."""
        return {"log_offset": self.log_offset, "slope": self.slope, "blocks": self.blocks}

    @classmethod
    def from_record(cls, record: dict) -> SessionCalibration:
        """Read a calibration written by :meth:`to_record`, checking it is a usable one."""
        try:
            calibration = cls(float(record["log_offset"]), float(record["slope"]),
                              int(record["blocks"]))
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"session calibration {record!r} is not one written by "
                             f"SessionCalibration.to_record ({err!r})") from None
        if not (np.isfinite(calibration.log_offset) and np.isfinite(calibration.slope)
                and calibration.slope > 0):
            raise ValueError(f"session calibration {record!r}: log_offset must be finite and "
                             "slope positive")
        return calibration


def fit_session_calibration(predicted_ms: Sequence[float],
                            measured_ms: Sequence[float]) -> SessionCalibration:
    """The power that maps a model's predictions onto latencies measured in one session."""
    fit = power_fit(predicted_ms, measured_ms)
    if fit["slope"] <= 0:
        raise ValueError(f"the measured latencies fall as the predicted ones rise (slope "
                         f"{fit['slope']:.3f}): the model does not order these blocks; it "
                         "cannot be calibrated to them")
    return SessionCalibration(fit["offset"], fit["slope"], fit["blocks"])


def cross_fitted(predicted_ms: Sequence[float], measured_ms: Sequence[float], *,
                 folds: int = 2, seed: int = 0) -> np.ndarray:
    """Each block's prediction calibrated by a power fitted on the other folds' blocks only
    (seeded random folds), so scoring it against ``measured_ms`` is a held-out score."""
    predicted, measured = _paired(predicted_ms, measured_ms)
    check_int("folds", folds, 2)
    check_int("seed", seed, 0)
    if len(predicted) - int(np.ceil(len(predicted) / folds)) < MIN_SHARED_BLOCKS:
        raise ValueError(f"folds={folds} over {len(predicted)} blocks leaves fewer than "
                         f"{MIN_SHARED_BLOCKS} to fit each calibration: use fewer folds or "
                         "more blocks")
    order = np.random.default_rng(seed).permutation(len(predicted))
    calibrated = np.empty_like(predicted)
    for fold in np.array_split(order, folds):
        rest = np.setdiff1d(order, fold)
        calibration = fit_session_calibration(predicted[rest], measured[rest])
        calibrated[fold] = calibration.apply(predicted[fold])
    return calibrated


def calibration_curve(predicted_ms: Sequence[float], measured_ms: Sequence[float], *,
                      ks: Sequence[int] = (10, 25, 50, 100), draws: int = 100,
                      seed: int = 0) -> pd.DataFrame:
    """Share within ±10% of the blocks left over after calibrating on k random ones, per k:
    the mean and 5th percentile over ``draws`` seeded draws (columns ``k``,
    ``within_10_pct``, ``within_10_pct_p5``), beside the uncalibrated model (k = 0)."""
    predicted, measured = _paired(predicted_ms, measured_ms)
    check_int("draws", draws, 1)
    check_int("seed", seed, 0)
    ks = [int(k) for k in ks]
    if not ks or min(ks) < MIN_SHARED_BLOCKS or max(ks) > len(predicted) - MIN_SHARED_BLOCKS:
        raise ValueError(f"ks={ks}: each k must lie in [{MIN_SHARED_BLOCKS}, "
                         f"{len(predicted) - MIN_SHARED_BLOCKS}] (enough blocks to fit a power "
                         f"and to score it, of {len(predicted)})")
    rng = np.random.default_rng(seed)
    raw = latency_metrics(measured, predicted)["within_10_pct"]
    rows = [{"k": 0, "within_10_pct": raw, "within_10_pct_p5": raw}]
    for k in ks:
        scores = []
        for _ in range(draws):
            order = rng.permutation(len(predicted))
            fitted, scored = order[:k], order[k:]
            calibration = fit_session_calibration(predicted[fitted], measured[fitted])
            scores.append(latency_metrics(measured[scored],
                                          calibration.apply(predicted[scored]))["within_10_pct"])
        rows.append({"k": k, "within_10_pct": float(np.mean(scores)),
                     "within_10_pct_p5": float(np.percentile(scores, 5))})
    return pd.DataFrame(rows)


def _paired(predicted_ms: Sequence[float],
            measured_ms: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Both latencies as float arrays, checked to be paired, positive and finite."""
    predicted = np.asarray(predicted_ms, dtype=float)
    measured = np.asarray(measured_ms, dtype=float)
    if predicted.shape != measured.shape or predicted.ndim != 1:
        raise ValueError(f"predicted_ms and measured_ms must pair one latency per block, not "
                         f"shapes {predicted.shape} and {measured.shape}")
    for name, values in (("predicted_ms", predicted), ("measured_ms", measured)):
        if not (np.isfinite(values).all() and (values > 0).all()):
            raise ValueError(f"{name} must hold positive, finite latencies (ms)")
    return predicted, measured
