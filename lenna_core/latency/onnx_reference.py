"""The reference cell's clock in ONNX Runtime: a network's session pass, then the reference
cell's, as :class:`~lenna_core.latency.reference_clock.ReferenceClock` does in torch.

The reference cell is exported once; a torch module given to :meth:`time_against` is exported
into a session of its own, whose first passes are left untimed (they allocate the session's
memory and pick its kernels).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from lenna_core.latency.onnx_runtime import OnnxRuntimeCpu, OnnxSession, measure_onnx_latency
from lenna_core.latency.profiler import PassClock
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

    def _time(self, module: nn.Module | OnnxSession, input_shapes: Sequence,
              **passes: int) -> list[float]:
        if isinstance(module, nn.Module):
            module = self.runtime.session(module, input_shapes)
            passes["warmup"] = max(passes.get("warmup", 0), self.session_warmup)
        return list(measure_onnx_latency(module, clock=self.clock, **passes).times_ms)
