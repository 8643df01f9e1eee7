"""Stopping rules compared offline: long recorded runs on blocks, replayed under each rule.

:func:`record_stream` times many gate resets of one block once; :func:`replay` and
:func:`compare_rules` then run every stopping rule of :mod:`lenna_core.latency.convergence` on the
same recorded measurements (in many orders), so rules differ only in how they stop; chapter 2
summarises them (:func:`summarise_replays`, :func:`cheapest_matching`). The alphas the blocks are
drawn with run from near-uniform to one-hot (:func:`probabilities_with_temperature`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from lenna_core.latency.blocks import CellContext, time_sampled_cell
from lenna_core.latency.convergence import (
    RESAMPLING,
    Rule,
    as_reset_values,
    label_block,
    timing_kwargs,
)
from lenna_core.latency.timing_perturbation import perturb
from lenna_core.space.search_space import DARTS_SPACE, SearchSpace
from lenna_core.validation import check_int, check_number

# ----------------------------------------------------------------- recorded long runs


@dataclass(frozen=True)
class RecordedStream:
    """A long run on one block: ``timings_ms[r, i]`` is the i-th timed pass of reset r,
    after ``warmup`` untimed passes; ``active[r]`` the ops that reset sampled;
    ``seconds[r]`` its wall time (building the cell included). ``tags`` describe the block
    (for example the alpha temperature) and become columns in :func:`compare_rules`.

    Recorded with ``warmup=0``, the first timing of a reset is the cell's first pass, so
    rules with and without a warm-up pass can be replayed; the summaries below (reference,
    spreads) use only :attr:`warm_timings_ms`, the passes after at least one warm-up.
    """

    context: CellContext
    timings_ms: np.ndarray
    active: np.ndarray
    seconds: np.ndarray
    warmup: int
    tags: Mapping[str, object] = field(default_factory=dict)

    @property
    def resets(self) -> int:
        """Number of recorded resets."""
        return int(self.timings_ms.shape[0])

    @property
    def warm_timings_ms(self) -> np.ndarray:
        """The timings taken after at least one untimed or timed warm-up pass."""
        return self.timings_ms[:, max(0, 1 - self.warmup):]

    @property
    def block_type(self) -> str:
        """'reduction' or 'normal'."""
        return "reduction" if self.context.reduction else "normal"

    def reference_ms(self, rule: Rule | None = None) -> float:
        """The long-run label: the mean over all resets of ``rule``'s per-reset value, or
        (no rule) of the median of all warm timings of each reset."""
        if rule is None:
            return float(np.median(self.warm_timings_ms, axis=1).mean())
        columns = _columns(rule, self.warmup, self.timings_ms.shape[1])
        return float(rule.reset_values(self.timings_ms[:, columns]).mean())

    def gate_spread(self) -> float:
        """Spread across gate samples: CV of the per-reset medians (sd / mean)."""
        medians = np.median(self.warm_timings_ms, axis=1)
        return float(medians.std(ddof=1) / medians.mean()) if self.resets > 1 else float("nan")

    def timing_noise(self) -> float:
        """Noise of repeated timings of one cell: the median over resets of the within-reset
        CV (sd / mean)."""
        t = self.warm_timings_ms
        if t.shape[1] < 2:
            return float("nan")
        return float(np.median(t.std(axis=1, ddof=1) / t.mean(axis=1)))

    def variance_components(self) -> tuple[float, float]:
        """Relative variances (over the squared grand mean) of one timing around its reset's
        mean (``within``), and of a reset's true mean across resets (``between``: gate
        samples plus slow changes of the machine), from a one-way analysis of variance."""
        t = self.warm_timings_ms
        k = t.shape[1]
        if k < 2 or self.resets < 2:
            raise ValueError("variance components need >= 2 resets of >= 2 timings")
        grand = t.mean()
        within = float(t.var(axis=1, ddof=1).mean()) / grand**2
        between = float(t.mean(axis=1).var(ddof=1)) / grand**2 - within / k
        return within, max(between, 0.0)

    def optimal_timings_per_reset(self, fixed_cost_passes: float) -> float:
        """Timings per reset that minimise the passes for a given label variance, when a
        reset costs ``fixed_cost_passes`` beyond its timings (warm-up, building the cell, in
        units of one pass): ``sqrt(fixed_cost * within / between)`` (two-stage sampling)."""
        if not (isinstance(fixed_cost_passes, (int, float)) and fixed_cost_passes > 0):
            raise ValueError(f"fixed_cost_passes={fixed_cost_passes!r}: must be a number > 0")
        within, between = self.variance_components()
        return math.inf if between == 0 else math.sqrt(fixed_cost_passes * within / between)

    def distinct_cells(self) -> int:
        """How many different single-path cells the resets sampled."""
        return len({tuple(row) for row in self.active.tolist()})


def record_stream(context: CellContext, probs: torch.Tensor, resets: int,
                  timings_per_reset: int, space: SearchSpace = DARTS_SPACE, *,
                  generator: torch.Generator | None = None, warmup: int = 1,
                  device: str = "cpu", threads: int | None = 1, bank: object | None = None,
                  tags: Mapping[str, object] | None = None) -> RecordedStream:
    """Time ``resets`` gate resets of one block, ``timings_per_reset`` timings each (after
    ``warmup`` untimed passes): the long run that rules are replayed on."""
    check_int("resets", resets, 2)
    check_int("timings_per_reset", timings_per_reset, 1)
    check_int("warmup", warmup, 0)
    space.check_probabilities(probs)
    timings = np.empty((resets, timings_per_reset))
    active = np.empty((resets, space.num_edges), dtype=int)
    seconds = np.empty(resets)
    for r in range(resets):
        start = time.perf_counter()
        ops, result = time_sampled_cell(
            context, probs, space, generator=generator, repeats=timings_per_reset,
            warmup=warmup, device=device, threads=threads, **timing_kwargs(bank))
        seconds[r] = perturb(time.perf_counter() - start)
        timings[r], active[r] = result.times_ms, ops
    return RecordedStream(context, timings, active, seconds, warmup, dict(tags or {}))


@dataclass(frozen=True)
class ReplayResult:
    """A rule applied to a recorded stream: what it would have spent and estimated.
    ``stopped_by`` is 'rule', 'max_resets' or 'end of stream' (the order ran out first)."""

    resets: int
    forward_passes: int
    estimate_ms: float
    stopped_by: str


def _columns(rule: Rule, recorded_warmup: int, available: int) -> slice:
    """The recorded timings a rule sees: extra warm-up it wants is taken from the first timed
    passes, then its ``timings_per_reset`` timings."""
    check_int("recorded_warmup", recorded_warmup, 0)
    if rule.warmup_per_reset < recorded_warmup:
        raise ValueError(f"the rule warms up {rule.warmup_per_reset} pass(es) per reset; the "
                         f"stream was recorded after {recorded_warmup}, so it cannot be replayed")
    skip = rule.warmup_per_reset - recorded_warmup
    if skip + rule.timings_per_reset > available:
        raise ValueError(f"the rule needs {skip + rule.timings_per_reset} timings per reset; "
                         f"the stream recorded {available}")
    return slice(skip, skip + rule.timings_per_reset)


def _replays(rule: Rule, values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Replay ``rule`` on every row of ``values`` (replicates x resets, already checked):
    resets used, estimates (ms) and how each replay stopped (0 rule, 1 max_resets,
    2 end of stream)."""
    m, n = values.shape
    cap = min(rule.max_resets, n)
    # Both rules are causal: whether they stop by reset r depends on the first r values only,
    # so rows are examined on growing prefixes and most replays never touch the long tail.
    first = np.zeros(m, dtype=int)
    pending, width = np.arange(m), 64
    while pending.size:
        width = min(width, cap)
        found = rule._first_stops(values[pending, :width])
        first[pending[found > 0]] = found[found > 0]
        pending = pending[found == 0]
        if width == cap:
            break
        width *= 2
    stop = np.where(first > 0, first, cap)
    how = np.where(first > 0, 0, 1 if n >= rule.max_resets else 2)
    sums = np.cumsum(values[:, :stop.max()], axis=1)[np.arange(m), stop - 1]
    return stop, sums / stop, how


STOPPED_BY = ("rule", "max_resets", "end of stream")


def replay(rule: Rule, timings_ms: np.ndarray, order: Sequence[int] | np.ndarray | None = None,
           *, recorded_warmup: int = 1) -> ReplayResult:
    """Apply ``rule`` offline to recorded timings (resets x timings), visiting the resets in
    ``order`` (row indices, repeats allowed; default: as recorded). The rule sees only the
    first timings of each reset that it would have taken live."""
    t = np.asarray(timings_ms, dtype=float)
    if t.ndim != 2 or t.shape[0] < 1:
        raise ValueError(f"timings_ms has shape {t.shape}: need (resets, timings per reset)")
    values = as_reset_values(rule.reset_values(t[:, _columns(rule, recorded_warmup, t.shape[1])]))
    if order is not None:
        order = np.asarray(order, dtype=int)
        if order.ndim != 1 or order.size < 1 or order.min() < 0 or order.max() >= t.shape[0]:
            raise ValueError(f"order must list row indices in 0..{t.shape[0] - 1}")
        values = values[order]
    stop, estimate, how = _replays(rule, values[None, :])
    return ReplayResult(resets=int(stop[0]), forward_passes=int(stop[0]) * rule.passes_per_reset,
                        estimate_ms=float(estimate[0]), stopped_by=STOPPED_BY[int(how[0])])


def _rule_names(rules: Mapping[str, Rule] | Sequence[Rule]) -> dict[str, Rule]:
    named = dict(rules) if isinstance(rules, Mapping) else {r.name: r for r in rules}
    if not named or (not isinstance(rules, Mapping) and len(named) != len(rules)):
        raise ValueError("rules must be a non-empty mapping or a sequence with distinct names")
    return named


def compare_rules(streams: Sequence[RecordedStream], rules: Mapping[str, Rule] | Sequence[Rule],
                  replicates: int = 200, seed: int = 0, *, resample: str = "bootstrap",
                  per_replicate: bool = False) -> pd.DataFrame:
    """Replay every rule on every stream ``replicates`` times and measure its label error.

    Replicates visit the recorded resets in random orders: ``"bootstrap"`` draws them with
    replacement (the recorded resets stand for the block's gate distribution, so a rule may
    use more resets than were recorded), ``"permutation"`` shuffles them, ``"contiguous"``
    reads them in recorded order from a random start (wrapping around), so a rule meets the
    machine's slow speed changes as it would live. With the last two a rule stops at the end
    of the stream at the latest. The error of an estimate is relative, against
    the stream's long-run mean of the rule's own per-reset value (``err``) and of the
    median of all timings per reset (``err_common``, which adds the statistic's bias).

    Returns one row per stream and rule (``per_replicate`` gives one per replicate).
    """
    check_int("replicates", replicates, 1)
    if resample not in RESAMPLING:
        raise ValueError(f"resample={resample!r}: must be one of {RESAMPLING}")
    if not streams:
        raise ValueError("streams must list at least one RecordedStream")
    named = _rule_names(rules)
    rng = np.random.default_rng(seed)
    parts = []
    longest = max(rule.max_resets for rule in named.values())
    for b, stream in enumerate(streams):
        common = stream.reference_ms()
        # The same orders for every rule (common random numbers): differences between rules
        # are not blurred by different draws.
        if resample == "bootstrap":
            order = rng.integers(0, stream.resets, size=(replicates, longest))
        elif resample == "permutation":
            order = rng.permuted(np.tile(np.arange(stream.resets), (replicates, 1)), axis=1)
        else:
            starts = rng.integers(0, stream.resets, size=(replicates, 1))
            order = (starts + np.arange(stream.resets)) % stream.resets
        for name, rule in named.items():
            values = as_reset_values(rule.reset_values(
                stream.timings_ms[:, _columns(rule, stream.warmup, stream.timings_ms.shape[1])]))
            own = float(values.mean())
            stop, estimate, how = _replays(rule, values[order[:, :rule.max_resets]])
            parts.append(pd.DataFrame({
                "block": b, "block_type": stream.block_type,
                **{k: [v] * replicates for k, v in stream.tags.items()}, "rule": name,
                "replicate": np.arange(replicates), "resets": stop,
                "forward_passes": stop * rule.passes_per_reset, "estimate_ms": estimate,
                "err": np.abs(estimate - own) / own,
                "err_common": np.abs(estimate - common) / common,
                "stopped_by_rule": how == 0}))
    raw = pd.concat(parts, ignore_index=True)
    return raw if per_replicate else summarise_replays(raw)


def summarise_replays(raw: pd.DataFrame, by: Sequence[str] | None = None) -> pd.DataFrame:
    """Per-replicate rows of :func:`compare_rules` reduced to one row per group (default:
    per block and rule): mean passes and resets, mean and 90th-percentile errors."""
    if by is None:
        by = [c for c in raw.columns if c not in
              ("replicate", "resets", "forward_passes", "estimate_ms", "err", "err_common",
               "stopped_by_rule")]
    grouped = raw.groupby(list(by), sort=False)
    return grouped.agg(
        passes_mean=("forward_passes", "mean"), passes_p90=("forward_passes",
                                                            lambda x: x.quantile(0.9)),
        resets_mean=("resets", "mean"), err_mean=("err", "mean"),
        err_p90=("err", lambda x: x.quantile(0.9)), err_common_mean=("err_common", "mean"),
        err_common_p90=("err_common", lambda x: x.quantile(0.9)),
        stopped_by_rule=("stopped_by_rule", "mean")).reset_index()


def cheapest_matching(pooled: pd.DataFrame, reference: str, candidates: Sequence[str],
                      error_columns: Sequence[str] = ("err_p90", "err_common_p90")
                      ) -> pd.Series | None:
    """Among the ``candidates`` rows of ``pooled`` (one row per rule, as from
    ``summarise_replays(raw, by=["rule"])``), the one with the fewest mean forward passes whose
    every ``error_columns`` value is no worse than the ``reference`` rule's; ``None`` if
    none matches."""
    table = pooled.set_index("rule")
    missing = [r for r in [reference, *candidates] if r not in table.index]
    if missing:
        raise ValueError(f"rules {missing} are not in the table")
    limit = table.loc[reference, list(error_columns)]
    chosen = table.loc[list(candidates)]
    ok = chosen[(chosen[list(error_columns)] <= limit).all(axis=1)]
    if ok.empty:
        return None
    return ok.sort_values("passes_mean").iloc[0]


def live_labels(streams: Sequence[RecordedStream], alphas: Mapping[tuple, torch.Tensor],
                contexts: Mapping[str, CellContext], rules: Mapping[str, Rule], *,
                generator: torch.Generator, device: str = "cpu",
                threads: int | None = 1) -> pd.DataFrame:
    """Label every recorded block (alphas keyed by (block type, temperature), in the order of
    ``streams``) once more, live, with each of ``rules``; beside each its long-run reference."""
    rows = []
    for stream, ((kind, temperature), probs) in zip(streams, alphas.items()):
        for name, rule in rules.items():
            result = label_block(contexts[kind], probs, rule, generator=generator,
                                 device=device, threads=threads)
            reference = stream.reference_ms(rule)
            rows.append({"block_type": kind, "temperature": temperature, "rule": name,
                         "resets": result.resets, "forward passes": result.forward_passes,
                         "seconds": result.seconds, "label (ms)": result.label_ms,
                         "reference (ms)": reference,
                         "error": abs(result.label_ms - reference) / reference})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------- alphas to test on


def probabilities_with_temperature(space: SearchSpace, temperature: float,
                                   generator: torch.Generator | None = None) -> torch.Tensor:
    """Edge probabilities from near-uniform to one-hot: ``softmax(z / temperature)`` per edge
    with ``z ~ N(0, 1)``; ``temperature=0`` gives the exact one-hot at each row's largest
    ``z``, ``math.inf`` the exact uniform."""
    check_number("temperature", temperature, 0, hint=" (0: one-hot, inf: uniform)")
    logits = torch.randn(space.num_edges, space.num_ops, generator=generator,
                         dtype=torch.float64)
    if temperature == 0:
        probs = torch.nn.functional.one_hot(logits.argmax(dim=1), space.num_ops)
    elif math.isinf(temperature):
        probs = torch.ones_like(logits) / space.num_ops
    else:
        probs = torch.softmax(logits / temperature, dim=1)
    return probs.float()


def mean_entropy(probs: torch.Tensor) -> float:
    """Mean entropy of the rows of ``probs``, normalised: 1 for uniform, 0 for one-hot."""
    if probs.dim() != 2 or probs.size(1) < 2:
        raise ValueError(f"probs has shape {tuple(probs.shape)}: need (edges, ops >= 2)")
    p = probs.detach().double().clamp_min(0)
    h = -(torch.where(p > 0, p * p.log(), torch.zeros_like(p))).sum(dim=1)
    return float(h.mean() / math.log(probs.size(1)))


def stream_overview(streams: Sequence[RecordedStream]) -> pd.DataFrame:
    """One row per recorded stream: its block and alphas, distinct cells drawn, reference
    label (ms), spread between resets and within a reset (CV), lag-1 autocorrelation of the
    resets' medians, first pass over median, and wall time per reset (ms)."""
    medians = [np.median(s.warm_timings_ms, axis=1) for s in streams]
    return pd.DataFrame([{
        "block_type": s.block_type, "temperature": s.tags["temperature"],
        "entropy": s.tags["entropy"], "distinct cells": s.distinct_cells(),
        "reference (ms)": s.reference_ms(), "between resets (CV)": s.gate_spread(),
        "within a reset (CV)": s.timing_noise(),
        "lag-1 autocorrelation": np.corrcoef(m[:-1], m[1:])[0, 1],
        "first pass / median": np.median(s.timings_ms[:, 0] / m),
        "ms per reset": 1e3 * np.median(s.seconds)} for s, m in zip(streams, medians)])


def timings_per_reset(streams: Sequence[RecordedStream], recorded_timings: int,
                      settings: Sequence[Sequence[int]]) -> pd.DataFrame:
    """Per stream: the variance components, the cost of building a cell (in passes), the
    best number of timings per reset k* with and without that cost, and for each ``(k,
    warm-up)`` setting the largest saving over LENNA's 10 + 1 a rule could reach."""
    pass_ms = np.array([np.median(s.warm_timings_ms) for s in streams])
    reset_ms = np.array([np.median(s.seconds) * 1e3 for s in streams])
    build = np.maximum(reset_ms / pass_ms - recorded_timings, 0.0)
    table = pd.DataFrame({
        "block_type": [s.block_type for s in streams],
        "temperature": [s.tags["temperature"] for s in streams],
        "within (CV)": [np.sqrt(s.variance_components()[0]) for s in streams],
        "between (CV)": [np.sqrt(s.variance_components()[1]) for s in streams],
        "build (passes)": build,
        "k* (warm-up only)": [s.optimal_timings_per_reset(1.0) for s in streams],
        "k* (warm-up + build)": [s.optimal_timings_per_reset(1.0 + b)
                                 for s, b in zip(streams, build)]})
    within_var, between_var = np.array([s.variance_components() for s in streams]).T
    for k, w in settings:
        table[f"bound {k}+{w}"] = ((1 + 10) / (w + k) * (between_var + within_var / 10)
                                   / (between_var + within_var / k))
    return table
