"""The reference cell and its clock: the one timing every labelled latency is a ratio to.

Timing on a CPU drifts in phases; a reference cell timed right after each measured pass sees
the same phase, so labels and evaluations record the ratio of the two times
(:meth:`ReferenceClock.time_against`) and scale it by the reference cell's latency, calibrated
once (the dataset labeller, chapter 3; the evaluation's ``LatencyMeter``; ``lenna transfer``).
Op tables keep plain medians of many passes: each op is timed in a tight loop, and their sum is
calibrated against labelled blocks instead.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from torch import nn

from lenna_core.latency.blocks import CellBank, CellContext
from lenna_core.latency.profiler import PassClock, cpu_threads, measure_latency
from lenna_core.space.search_space import DARTS_SPACE, SearchSpace

#: The reference cell: a normal cell with 16 channels per node on 16x16 inputs,
#: sep_conv_3x3 on every edge, batch size 1.
REFERENCE_CONTEXT = CellContext.in_network(16, False, False, 16)
REFERENCE_OP = "sep_conv_3x3"


class ReferenceClock:
    """Times the reference cell, one pass at a time, between the measured cells."""

    def __init__(self, space: SearchSpace = DARTS_SPACE, device: str = "cpu",
                 threads: int | None = 1, clock: PassClock | None = None) -> None:
        bank = CellBank(REFERENCE_CONTEXT, space).to(device)
        with cpu_threads(threads if device == "cpu" else None):
            bank.warm_up()
        self.cell = bank.select([space.primitives.index(REFERENCE_OP)] * space.num_edges)
        # One pass clock for the measured modules and the reference cell alike (None: the
        # device's own, see lenna_core.latency.profiler.clock_for).
        self.device, self.threads, self.clock = device, threads, clock

    def _time(self, module: nn.Module, input_shapes: Sequence, **passes: int) -> list[float]:
        return list(measure_latency(module, input_shapes, device=self.device,
                                    threads=self.threads, clock=self.clock, **passes).times_ms)

    def start_block(self, bank: CellBank) -> None:
        """Get ready to time ``bank``'s single-path cells: one untimed pass of every module."""
        with cpu_threads(self.threads if self.device == "cpu" else None):
            bank.warm_up()

    def sampled(self, bank: CellBank, active: list[int]) -> nn.Module:
        """The single-path cell of ``bank`` with op ``active[e]`` on edge ``e``, ready to time."""
        return bank.select(active)

    def ready(self, module: nn.Module, input_shapes: Sequence, warmup: int = 5) -> nn.Module:
        """``module`` as :meth:`time_against` takes it, after ``warmup`` + 1 untimed passes (on
        the device's own clock, not the pass clock): here the module itself; ONNX Runtime's
        clock exports it once into a session of its own."""
        measure_latency(module, input_shapes, device=self.device, threads=self.threads,
                        repeats=1, warmup=warmup)
        return module

    def warm(self, module: nn.Module, input_shapes: Sequence) -> None:
        """One untimed pass of ``module`` (a sampled cell's warm-up)."""
        self._time(module, input_shapes, repeats=1, warmup=0)

    def tick(self) -> float:
        """One timed pass of the reference cell (ms)."""
        return self._time(self.cell, REFERENCE_CONTEXT.input_shapes, repeats=1, warmup=0)[0]

    def time_against(self, module: nn.Module, input_shapes: Sequence) -> tuple[float, float]:
        """One timed pass of ``module`` (no warm-up), then one of the reference cell:
        (the module's ms, the module's time over the reference cell's)."""
        t = self._time(module, input_shapes, repeats=1, warmup=0)[0]
        return t, t / self.tick()

    def calibrate(self, passes: int = 1000) -> float:
        """The reference cell's latency (ms): the median of many passes."""
        return float(np.median(self._time(self.cell, REFERENCE_CONTEXT.input_shapes,
                                          repeats=passes, warmup=20)))
