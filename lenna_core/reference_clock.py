"""The reference cell and its clock: the one timing every labelled latency is a ratio to.

Timing on a CPU drifts in phases; a reference cell timed right after each measured pass sees
the same phase, so labels, op tables and evaluations record the ratio of the two times and
scale it by the reference cell's latency, calibrated once (the dataset labeller, chapter 3;
the evaluation's ``LatencyMeter``; ``lenna transfer``).
"""

from __future__ import annotations

from .blocks import CellBank, CellContext
from .profiler import cpu_threads, measure_latency
from .search_space import DARTS_SPACE, SearchSpace

#: The reference cell: a normal cell with 16 channels per node on 16x16 inputs,
#: sep_conv_3x3 on every edge, batch size 1.
REFERENCE_CONTEXT = CellContext.in_network(16, False, False, 16)
REFERENCE_OP = "sep_conv_3x3"


class ReferenceClock:
    """Times the reference cell, one pass at a time, between the measured cells."""

    def __init__(self, space: SearchSpace = DARTS_SPACE, device: str = "cpu",
                 threads: int | None = 1) -> None:
        bank = CellBank(REFERENCE_CONTEXT, space).to(device)
        with cpu_threads(threads if device == "cpu" else None):
            bank.warm_up()
        self.cell = bank.select([space.primitives.index(REFERENCE_OP)] * space.num_edges)
        self.device, self.threads = device, threads

    def tick(self) -> float:
        """One timed pass of the reference cell (ms)."""
        return measure_latency(self.cell, REFERENCE_CONTEXT.input_shapes, device=self.device,
                               repeats=1, warmup=0, threads=self.threads).times_ms[0]

    def calibrate(self, passes: int = 1000) -> float:
        """The reference cell's latency (ms): the median of many passes."""
        return measure_latency(self.cell, REFERENCE_CONTEXT.input_shapes, device=self.device,
                               repeats=passes, warmup=20, threads=self.threads).median
