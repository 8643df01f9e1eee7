"""Accuracy of latency predictions, and the noise floor that bounds it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from lenna_core.validation import check_int


def _as_arrays(y_true: Sequence[float], y_pred: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    t, p = np.asarray(y_true, dtype=float), np.asarray(y_pred, dtype=float)
    if t.shape != p.shape or t.ndim != 1 or t.size < 2:
        raise ValueError(f"y_true {t.shape} and y_pred {p.shape} must be 1-d, of equal length "
                         ">= 2")
    if not (np.isfinite(t).all() and np.isfinite(p).all()):
        raise ValueError("latencies must be finite (drop failed rows first)")
    if (t <= 0).any():
        raise ValueError("y_true must be positive: relative errors need a positive latency")
    return t, p


def latency_metrics(y_true: Sequence[float], y_pred: Sequence[float]) -> dict[str, float]:
    """RMSE (ms), MAPE (%), share within +/-5% and +/-10% (%), Kendall tau and Spearman rho."""
    t, p = _as_arrays(y_true, y_pred)
    relative = np.abs(p - t) / t
    return {
        "n": int(t.size),
        "rmse_ms": float(np.sqrt(np.mean((p - t) ** 2))),
        "mape_pct": float(100 * relative.mean()),
        "within_5_pct": float(100 * (relative <= 0.05).mean()),
        "within_10_pct": float(100 * (relative <= 0.10).mean()),
        "kendall_tau": float(stats.kendalltau(t, p).statistic),
        "spearman": float(stats.spearmanr(t, p).statistic),
    }


def compare_models(y_true: Sequence[float],
                   predictions: Mapping[str, Sequence[float]]) -> pd.DataFrame:
    """One row of ``latency_metrics`` per model, all scored against the same labels."""
    if not predictions:
        raise ValueError("predictions is empty: pass at least one model's predictions")
    return pd.DataFrame({name: latency_metrics(y_true, p) for name, p in predictions.items()}).T


def noise_floor(first: Sequence[float], second: Sequence[float]) -> dict[str, float]:
    """The same metrics between two independent measurements of the same blocks.

    No predictor can agree with a measurement better than a second measurement does, so these
    figures bound what a latency model can reach on this data.
    """
    return latency_metrics(first, second)


def resampled_label_noise(first: np.ndarray, second: np.ndarray, size: int,
                          rng: np.random.Generator) -> np.ndarray:
    """``size`` draws of one labelling's log noise, resampled from two labellings.

    ``log(first / second)`` is the difference of two independent noises, so divided by
    sqrt(2) it has one noise's spread; each draw takes one pair's value with a random sign.
    """
    log_noise = np.log(first / second) / np.sqrt(2)
    return rng.choice(log_noise, size=size) * rng.choice([-1.0, 1.0], size=size)


def perfect_predictor_ceiling(first: Sequence[float], second: Sequence[float],
                              y_true: Sequence[float], draws: int = 200,
                              seed: int = 0, averaged: int = 1) -> dict[str, float]:
    """Expected metrics of an error-free model scored against one noisy labelling of ``y_true``.

    The noise of one label is estimated from two labellings of the same blocks: their log
    ratio is the difference of two independent noises, so one label's log noise is that ratio
    divided by sqrt(2), with a random sign. Each draw perturbs ``y_true`` with resampled noise
    and scores the unperturbed values against it; the result is the mean over draws. This is
    the best any predictor can expect on ``y_true``, metric by metric. ``averaged=k`` scores
    against the geometric mean of k such labellings instead (log noise shrunk by sqrt(k)).
    """
    a, b = _as_arrays(first, second)
    if (b <= 0).any():
        raise ValueError("second must be positive: the noise is estimated from log ratios")
    truth = np.asarray(y_true, dtype=float)
    _as_arrays(truth, truth)
    check_int("draws", draws)
    check_int("averaged", averaged, hint=" (labellings averaged into each label)")
    rng = np.random.default_rng(seed)
    scores = []
    for _ in range(draws):
        noise = resampled_label_noise(a, b, truth.size, rng) / np.sqrt(averaged)
        scores.append(latency_metrics(truth * np.exp(noise), truth))
    return {key: float(np.mean([s[key] for s in scores])) for key in scores[0]}
