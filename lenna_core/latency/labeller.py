"""The dataset labeller: per gate reset, a sampled cell's time over the reference cell's.

The stopping rule of the reference dataset, the labeller built from it and the record of it
kept in a dataset's metadata. ``lenna label`` (:mod:`lenna_core.cli.label`) is the command
line around them.
"""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import torch

from lenna_core.latency.blocks import CellBank, CellContext
from lenna_core.latency.convergence import (
    StandardErrorRule,
    control_variate_mean,
    relative_standard_error,
)
from lenna_core.latency.dataset import Labeler, read_metadata
from lenna_core.latency.lookup_table import OpLatencyTable
from lenna_core.latency.profiler import cpu_threads
from lenna_core.latency.reference_clock import REFERENCE_CONTEXT, REFERENCE_OP, ReferenceClock
from lenna_core.space.search_space import DARTS_SPACE, SearchSpace
from lenna_core.space.single_path import sample_active

#: The stopping rule of the reference dataset, applied to the per-reset ratios (chapter 2
#: compares stopping rules on plain timings; chapter 3 explains the ratio).
DEFAULT_RULE = StandardErrorRule(target_rel_error=0.04, timings_per_reset=1, min_resets=8,
                                 max_resets=300, statistic="median", warmup_per_reset=0)

def make_labeler(rule: StandardErrorRule, clock: ReferenceClock, reference_ms: float,
                 space: SearchSpace = DARTS_SPACE, device: str = "cpu",
                 threads: int | None = 1, control: OpLatencyTable | None = None) -> Labeler:
    """A dataset labeler: per reset, the sampled cell's time over the reference cell's.

    Per reset, ``rule.timings_per_reset`` passes of the sampled cell alternate with passes of
    the reference cell and the reset's value is the ``rule.statistic`` of their ratios. With a
    ``control`` table, the label is corrected by the table's prediction for each drawn cell
    (:func:`~lenna_core.latency.convergence.control_variate_mean`), and the stopping rule judges the
    corrected values: the same expectation, from fewer resets.
    """
    if (str(clock.device), clock.threads) != (str(device), threads):
        raise ValueError(f"clock times on device={clock.device!r} with threads="
                         f"{clock.threads!r}, the labeller on device={device!r} with "
                         f"threads={threads!r}: build the ReferenceClock with the same ones")
    statistic = getattr(np, rule.statistic)

    def labeler(context: CellContext, probs: torch.Tensor, generator: torch.Generator,
                bank: CellBank) -> dict:
        # Everything between the timed passes runs on the timing's threads too: with more
        # threads than the cores a pinned process may use, idle OpenMP workers spin on the
        # core the next pass is timed on (the warm-up alone then took 5.6 s per block).
        with cpu_threads(threads if device == "cpu" else None):
            return _label(context, probs, generator, bank)

    def _stops(values: list[float]) -> bool:
        # Adjusted values can average below zero over the first few resets (a wild slope):
        # no estimate yet, so go on, up to max_resets.
        if len(values) >= rule.max_resets:
            return True
        return bool(values) and float(np.mean(values)) > 0 and rule.should_stop(values)

    def _label(context: CellContext, probs: torch.Tensor, generator: torch.Generator,
               bank: CellBank) -> dict:
        clock.start_block(bank)
        if control is not None:
            op_ms, fixed_ms = control.block_arrays([context], "the control variate")
            op_ms, fixed_ms = op_ms[0], float(fixed_ms[0])
            expected = fixed_ms + float((probs.numpy() * op_ms).sum())
        ratios: list[float] = []
        predicted: list[float] = []
        adjusted: list[float] = ratios
        while not _stops(adjusted):
            active = sample_active(probs, space, generator)
            cell = clock.sampled(bank, active)
            for _ in range(rule.warmup_per_reset):
                clock.warm(cell, context.input_shapes)
            per_pass = [clock.time_against(cell, context.input_shapes)[1]
                        for _ in range(rule.timings_per_reset)]
            ratios.append(float(statistic(per_pass)))
            if control is not None:
                predicted.append(fixed_ms + float(op_ms[np.arange(len(active)), active].sum()))
                adjusted = list(control_variate_mean(ratios, predicted, expected)[1])
        mean = float(np.mean(adjusted))
        if mean <= 0:  # only an adjusted mean stopped by max_resets can get here
            raise ValueError(f"the control-variate label is {mean:.3g} after {len(ratios)} "
                             "resets: raise max_resets or label without --control-table")
        return {"latency_ms": mean * reference_ms,
                "label_rel_se": relative_standard_error(adjusted), "resets": len(ratios),
                "forward_passes": len(ratios) * (2 * rule.timings_per_reset
                                                 + rule.warmup_per_reset)}
    return labeler


def describe_rule(rule: StandardErrorRule, reference_ms: float,
                  control_table: str | None = None) -> dict:
    """The labeller's record in a dataset's metadata: the rule, the reference cell and its
    calibrated latency (ms), and the control table's file name if one corrects the labels."""
    described = {"name": type(rule).__name__, **asdict(rule),
                 "per_reset_value": "time of the sampled cell / time of the reference cell",
                 "label": "mean per-reset ratio x reference_ms",
                 "reference_cell": f"{REFERENCE_OP} on every edge of "
                                   f"{REFERENCE_CONTEXT.to_dict()}",
                 "reference_ms": reference_ms}
    if control_table is not None:
        described["control_variate"] = (f"op latency table {control_table}: its sum over the "
                                         "drawn ops, least-squares slope per row")
    return described


def reference_ms_from(path: str, runtime: dict | None, threads: int | None) -> float:
    """The calibrated reference-cell latency (ms) of the dataset at ``path``; a ``ValueError``
    unless its labels were timed with ``runtime`` (None: torch eager) on ``threads`` threads,
    since another runtime or thread count gives the reference cell other milliseconds."""
    try:
        settings = read_metadata(path)["settings"]
        reference_ms = float(settings["rule"]["reference_ms"])
    except (OSError, KeyError, TypeError) as err:
        raise ValueError(f"no calibrated reference cell in its metadata ({err!r})") from None
    if settings.get("runtime") != runtime or settings.get("threads") != threads:
        raise ValueError(f"its labels were timed with runtime "
                         f"{settings.get('runtime') or 'torch eager'} on "
                         f"{settings.get('threads')} thread(s), this run with "
                         f"{runtime or 'torch eager'} on {threads}: scale from a dataset "
                         "labelled with the same --runtime and --threads")
    return reference_ms
