"""The reference cell's clock in ONNX Runtime: a network's session pass, then the reference
cell's, as :class:`~lenna_core.latency.reference_clock.ReferenceClock` does in torch.

The reference cell is exported once; a torch module given to :meth:`time_against` is exported
into a session of its own, whose first passes are left untimed (they allocate the session's
memory and pick its kernels). The dataset labeller's sampled cells are not traced one by one:
:meth:`OnnxReferenceClock.sampled` composes each from its context's ops, exported once
(:class:`~lenna_core.latency.onnx_compose.OnnxCellComposer`, 20x faster than tracing a cell).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from lenna_core.latency.blocks import CellBank, CellContext
from lenna_core.latency.onnx_compose import OnnxCellComposer
from lenna_core.latency.onnx_runtime import OnnxRuntimeCpu, OnnxSession, measure_onnx_latency
from lenna_core.latency.profiler import PassClock, as_shapes
from lenna_core.latency.reference_clock import REFERENCE_CONTEXT, ReferenceClock
from lenna_core.space.search_space import DARTS_SPACE, SearchSpace
from lenna_core.validation import check_int


class OnnxReferenceClock(ReferenceClock):
    """Times ONNX Runtime sessions against the reference cell's session, one pass each."""

    def __init__(self, space: SearchSpace = DARTS_SPACE, runtime: OnnxRuntimeCpu | None = None,
                 clock: PassClock | None = None, session_warmup: int = 3) -> None:
        """``session_warmup``: untimed passes of a session built for a torch module."""
        runtime = OnnxRuntimeCpu() if runtime is None else runtime
        check_int("session_warmup", session_warmup, 0)
        super().__init__(space, "cpu", runtime.threads, clock)
        self.runtime, self.session_warmup = runtime, session_warmup
        self.cell = runtime.session(self.cell, REFERENCE_CONTEXT.input_shapes)
        self.cell.run()  # its first pass pays the session's set-up
        # A context's ops are exported once (about 1 s); a dataset has some 150 contexts.
        self._composers: dict[CellContext, OnnxCellComposer] = {}

    def start_block(self, bank: CellBank) -> None:
        """Export ``bank``'s ops, unless a block of the same context already did (the ops'
        weights do not change what a pass costs)."""
        if bank.context not in self._composers:
            self._composers[bank.context] = OnnxCellComposer(bank)

    def sampled(self, bank: CellBank, active: list[int]) -> OnnxSession:
        """A session of the single-path cell composed from ``bank``'s exported ops, its first
        ``session_warmup`` passes run."""
        self.start_block(bank)
        session = self.runtime.load(self._composers[bank.context].compose(active),
                                    bank.context.input_shapes)
        for _ in range(self.session_warmup):
            session.run()
        return session

    def ready(self, module: nn.Module, input_shapes: Sequence, warmup: int = 5) -> OnnxSession:
        """``module`` exported once into a session of its own, its first
        ``max(warmup, session_warmup)`` passes run (untimed), for :meth:`time_against`."""
        session = self.runtime.session(module, as_shapes(input_shapes))
        for _ in range(max(warmup, self.session_warmup)):
            session.run()
        return session

    def _time(self, module: nn.Module | OnnxSession, input_shapes: Sequence,
              **passes: int) -> list[float]:
        if isinstance(module, nn.Module):
            module = self.runtime.session(module, input_shapes)
            passes["warmup"] = max(passes.get("warmup", 0), self.session_warmup)
        return list(measure_onnx_latency(module, clock=self.clock, **passes).times_ms)
