"""When is a latency label good enough? Stopping rules for the binary-gate average.

A block's label is its expected latency under its architecture probabilities: the mean,
over binary-gate resets, of one statistic of the timings of the sampled single-path cell.
A *stopping rule* turns each reset's timings into one value and, watching the stream of
values, says when their mean has settled. The same rule labels a block live
(:func:`label_block`) and is replayed offline on a recorded long run
(:mod:`lenna_core.latency.rule_replay`), so rules are compared on identical measurements.

Two rules:

* :class:`LennaRule`, LENNA's: per reset the 40% quantile of 10 timings; stop once the
  cumulative average has changed by less than 1% at ten resets in a row.
* :class:`StandardErrorRule`: per reset the median of a few timings; stop once the standard
  error of the mean, relative to the mean, is at most a target.

Forward passes, the cost that counts on a GPU, are ``resets * (warmup + timings)`` per label.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from lenna_core.latency.blocks import CellContext, time_sampled_cell
from lenna_core.latency.timing_perturbation import perturb
from lenna_core.space.search_space import DARTS_SPACE, SearchSpace
from lenna_core.validation import check_fraction, check_int

STATISTICS = ("median", "mean", "min")
RESAMPLING = ("bootstrap", "permutation", "contiguous")


def as_reset_values(values: Sequence[float] | np.ndarray) -> np.ndarray:
    """``values`` (one per reset) as a float array; a ValueError unless they are finite
    with a positive mean."""
    v = np.asarray(values, dtype=float)
    if v.ndim != 1:
        raise ValueError(f"values must be one-dimensional (one value per reset); got {v.shape}")
    # A positive mean, not every value positive: a control-variate adjustment
    # (control_variate_mean) can push a single reset below zero while the mean stays right.
    if v.size and (not np.isfinite(v).all() or v.mean() <= 0):
        raise ValueError("values must be finite per-reset latencies (ms) with a positive mean")
    return v


def _as_timings(timings_ms: Sequence[float] | np.ndarray, needed: int) -> np.ndarray:
    t = np.asarray(timings_ms, dtype=float)
    if t.ndim not in (1, 2) or t.shape[-1] < needed:
        raise ValueError(f"timings_ms has shape {t.shape}: need at least {needed} timings per "
                         "reset (one row per reset)")
    return t[..., :needed]


def relative_standard_error(values: Sequence[float] | np.ndarray) -> float:
    """Standard error of the mean divided by the mean (``nan`` for fewer than 2 values)."""
    v = as_reset_values(values)
    if v.size < 2:
        return float("nan")
    return float(v.std(ddof=1) / math.sqrt(v.size) / v.mean())


def control_variate_mean(values: Sequence[float] | np.ndarray,
                         controls: Sequence[float] | np.ndarray,
                         control_mean: float) -> tuple[float, np.ndarray]:
    """The mean of ``values``, corrected by a control variate whose mean is known exactly.

    ``controls[i]`` is a cheap prediction of ``values[i]`` (for a sampled cell, the lookup
    table's sum over the ops the gates drew) and ``control_mean`` its exact expectation (the
    table's sum over all ops weighted by their probabilities). With the least-squares slope
    ``b`` of values on controls, ``values - b * (controls - control_mean)`` keeps the mean
    but loses the part of the spread the control explains (which op was drawn), leaving the
    timing noise. Returns the estimate and those adjusted values; with fewer than 3 values or
    a constant control (one op per edge) nothing is adjusted.
    """
    v, c = as_reset_values(values), np.asarray(controls, dtype=float)
    if c.shape != v.shape:
        raise ValueError(f"controls {c.shape} must match values {v.shape}")
    if not math.isfinite(control_mean):
        raise ValueError(f"control_mean={control_mean}: must be finite")
    adjusted = v
    if v.size >= 3 and np.ptp(c) > 0:
        slope = np.cov(v, c)[0, 1] / np.var(c, ddof=1)
        adjusted = v - slope * (c - control_mean)
    return float(adjusted.mean()), adjusted


class _Rule:
    """What every stopping rule shares; subclasses are frozen dataclasses that define
    ``timings_per_reset``, ``warmup_per_reset``, ``max_resets``, :meth:`reset_values`
    and :meth:`_first_stops`."""

    timings_per_reset: int
    warmup_per_reset: int
    max_resets: int

    @property
    def passes_per_reset(self) -> int:
        """Forward passes one reset costs: untimed warm-up plus timed passes."""
        return self.warmup_per_reset + self.timings_per_reset

    def reset_values(self, timings_ms: np.ndarray) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def _first_stops(self, values: np.ndarray) -> np.ndarray:  # pragma: no cover
        """For each row of ``values`` (replays x resets), the first reset (1-based) at which
        the criterion holds; 0 where it never does."""
        raise NotImplementedError

    def _first_stop(self, values: np.ndarray) -> int | None:
        first = int(self._first_stops(values[None, :])[0]) if values.size else 0
        return first or None

    def reset_value(self, timings_ms: Sequence[float]) -> float:
        """The value of one reset (ms) from its timings; extra timings beyond
        ``timings_per_reset`` are ignored."""
        t = _as_timings(timings_ms, self.timings_per_reset)
        if t.ndim != 1:
            raise ValueError("reset_value takes the timings of one reset; use reset_values")
        return float(self.reset_values(t[None, :])[0])

    def stopping_point(self, values: Sequence[float] | np.ndarray) -> int | None:
        """How many of ``values`` (per-reset values, in order) the rule uses before it stops:
        the first reset at which its criterion holds, or ``max_resets``; ``None`` while it
        would go on."""
        v = as_reset_values(values)
        first = self._first_stop(v[:self.max_resets])
        if first is not None:
            return first
        return self.max_resets if v.size >= self.max_resets else None

    def converged(self, values: Sequence[float] | np.ndarray) -> bool:
        """Whether the criterion itself (not the ``max_resets`` cap) stopped the rule."""
        return self._first_stop(as_reset_values(values)[:self.max_resets]) is not None

    def should_stop(self, values: Sequence[float] | np.ndarray) -> bool:
        """Whether the rule stops at (or before) the last of ``values``."""
        return self.stopping_point(values) is not None


@dataclass(frozen=True)
class LennaRule(_Rule):
    """LENNA's rule: per reset the ``quantile`` of ``timings_per_reset`` timings; stop when
    the cumulative average has changed by less than ``tolerance`` (relative) at ``patience``
    consecutive resets, or after ``max_resets``. A constant stream stops at reset
    ``patience + 1`` (the first change is measured at the second reset)."""

    quantile: float = 0.4
    timings_per_reset: int = 10
    tolerance: float = 0.01
    patience: int = 10
    max_resets: int = 1000
    warmup_per_reset: int = 1

    def __post_init__(self) -> None:
        check_fraction("quantile", self.quantile, closed=True)
        check_int("timings_per_reset", self.timings_per_reset, 1)
        check_fraction("tolerance", self.tolerance)
        check_int("patience", self.patience, 1)
        check_int("max_resets", self.max_resets, 2)
        check_int("warmup_per_reset", self.warmup_per_reset, 0)

    @property
    def name(self) -> str:
        """A short label for tables and legends."""
        return (f"LENNA q{self.quantile:g} of {self.timings_per_reset}, "
                f"<{self.tolerance:.0%} x{self.patience}")

    def reset_values(self, timings_ms: np.ndarray) -> np.ndarray:
        """The ``quantile`` of each row's first ``timings_per_reset`` timings (ms)."""
        t = _as_timings(timings_ms, self.timings_per_reset)
        return np.quantile(np.atleast_2d(t), self.quantile, axis=1)

    def cumulative_average(self, values: Sequence[float] | np.ndarray) -> np.ndarray:
        """The running mean after each reset (ms)."""
        v = as_reset_values(values)
        return np.cumsum(v) / np.arange(1, v.size + 1)

    def relative_changes(self, values: Sequence[float] | np.ndarray) -> np.ndarray:
        """``|avg_r - avg_{r-1}| / avg_{r-1}`` for resets r = 2, 3, ... (one fewer than values)."""
        avg = self.cumulative_average(values)
        return np.abs(np.diff(avg)) / avg[:-1]

    def _first_stops(self, values: np.ndarray) -> np.ndarray:
        m, n = values.shape
        if n - 1 < self.patience:
            return np.zeros(m, dtype=int)
        avg = np.cumsum(values, axis=1) / np.arange(1, n + 1)
        below = np.abs(np.diff(avg, axis=1)) < self.tolerance * avg[:, :-1]
        counts = np.concatenate([np.zeros((m, 1), dtype=int), np.cumsum(below, axis=1)], axis=1)
        # runs[:, i] counts small changes i .. i+patience-1; change j is measured at reset j + 2.
        hits = (counts[:, self.patience:] - counts[:, :-self.patience]) == self.patience
        return np.where(hits.any(axis=1), hits.argmax(axis=1) + self.patience + 1, 0)


@dataclass(frozen=True)
class StandardErrorRule(_Rule):
    """Stop when the relative standard error of the mean of the per-reset values,
    ``std(ddof=1) / sqrt(n) / mean``, is at most ``target_rel_error`` (from ``min_resets``
    resets on), or after ``max_resets``. Per reset: the ``statistic`` of
    ``timings_per_reset`` timings. For roughly normal means the error is below
    1.645 x target in 90% of labels."""

    target_rel_error: float = 0.02
    timings_per_reset: int = 3
    min_resets: int = 8
    max_resets: int = 1000
    statistic: str = "median"
    warmup_per_reset: int = 1

    def __post_init__(self) -> None:
        check_fraction("target_rel_error", self.target_rel_error)
        check_int("timings_per_reset", self.timings_per_reset, 1)
        check_int("min_resets", self.min_resets, 2)
        check_int("max_resets", self.max_resets, self.min_resets)
        check_int("warmup_per_reset", self.warmup_per_reset, 0)
        if self.statistic not in STATISTICS:
            raise ValueError(f"statistic={self.statistic!r}: must be one of {STATISTICS}")

    @property
    def name(self) -> str:
        """A short label for tables and legends."""
        return (f"SE {self.statistic} of {self.timings_per_reset} (+{self.warmup_per_reset} "
                f"warm-up, >= {self.min_resets} resets) <= {self.target_rel_error:.1%}")

    def reset_values(self, timings_ms: np.ndarray) -> np.ndarray:
        """The ``statistic`` of each row's first ``timings_per_reset`` timings (ms)."""
        t = np.atleast_2d(_as_timings(timings_ms, self.timings_per_reset))
        return getattr(np, self.statistic)(t, axis=1)

    def relative_standard_errors(self, values: Sequence[float] | np.ndarray) -> np.ndarray:
        """The relative standard error after each reset (``nan`` after the first)."""
        v = as_reset_values(values)
        return _running_rse(v[None, :])[0] if v.size else v

    def _first_stops(self, values: np.ndarray) -> np.ndarray:
        if values.shape[1] < self.min_resets:
            return np.zeros(values.shape[0], dtype=int)
        ok = _running_rse(values)[:, self.min_resets - 1:] <= self.target_rel_error
        return np.where(ok.any(axis=1), ok.argmax(axis=1) + self.min_resets, 0)


def _running_rse(values: np.ndarray) -> np.ndarray:
    """Relative standard error of the mean of each row's first 1, 2, ... values."""
    n = np.arange(1, values.shape[1] + 1)
    x = values - values[:, :1]  # centred: no cancellation in the sum of squares
    s1, s2 = np.cumsum(x, axis=1), np.cumsum(x * x, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        var = np.clip((s2 - s1 * s1 / n) / (n - 1), 0.0, None)
        mean = s1 / n + values[:, :1]
        # A running mean at or below zero (adjusted values) has no relative error: not yet.
        return np.where(mean > 0, np.sqrt(var / n) / np.where(mean > 0, mean, 1.0), np.inf)


Rule = LennaRule | StandardErrorRule


# ---------------------------------------------------------------------------- live labels


@dataclass(frozen=True)
class LabelResult:
    """One block labelled by one rule: the label and everything it cost."""

    label_ms: float
    resets: int
    forward_passes: int
    values_ms: tuple[float, ...]
    active: tuple[tuple[int, ...], ...]
    timings_ms: tuple[tuple[float, ...], ...]
    relative_standard_error: float
    converged: bool
    seconds: float
    rule: str


def timing_kwargs(bank: object | None) -> dict:
    """The keyword arguments of ``time_sampled_cell`` for ``bank`` (a
    :class:`~lenna_core.latency.blocks.CellBank` reusing built modules): none without one."""
    return {} if bank is None else {"bank": bank}


def label_block(context: CellContext, probs: torch.Tensor, rule: Rule,
                space: SearchSpace = DARTS_SPACE, *, generator: torch.Generator | None = None,
                device: str = "cpu", threads: int | None = 1,
                bank: object | None = None) -> LabelResult:
    """Label one block live: reset the gates, time the sampled cell, until ``rule`` stops.

    With a ``bank`` (a :class:`lenna_core.latency.blocks.CellBank` for ``context``) the sampled
    cells reuse its modules instead of being built at every reset."""
    space.check_probabilities(probs)
    values: list[float] = []
    actives: list[tuple[int, ...]] = []
    timings: list[tuple[float, ...]] = []
    start = time.perf_counter()
    while True:
        active, result = time_sampled_cell(
            context, probs, space, generator=generator, repeats=rule.timings_per_reset,
            warmup=rule.warmup_per_reset, device=device, threads=threads, **timing_kwargs(bank))
        actives.append(tuple(active))
        timings.append(result.times_ms)
        values.append(rule.reset_value(result.times_ms))
        if rule.should_stop(values):  # O(resets) per step: negligible next to a forward pass
            break
    return LabelResult(
        label_ms=float(np.mean(values)), resets=len(values),
        forward_passes=len(values) * rule.passes_per_reset, values_ms=tuple(values),
        active=tuple(actives), timings_ms=tuple(timings),
        relative_standard_error=relative_standard_error(values),
        converged=rule.converged(values), seconds=perturb(time.perf_counter() - start),
        rule=rule.name)
