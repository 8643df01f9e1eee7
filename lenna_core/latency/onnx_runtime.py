"""ONNX Runtime on the CPU as a latency device: a network exported once, one inference session
per network, timed with the profiler's loop and statistics.

People deploy searched cells with an inference runtime, not with torch eager at batch size 1,
and the runtime changes both the milliseconds and the ops' relative costs. A device here is the
runtime, its version, its execution provider, its threads and its graph optimisation level
(:meth:`OnnxRuntimeCpu.fingerprint`, which
:func:`~lenna_core.latency.device_identity.identity_from_record` reads). Each pass is one
``InferenceSession.run`` on fixed inputs, timed by a pass clock (the wall clock by default: the
CPU provider returns when the work is done).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import onnxruntime as ort
import torch
from torch import nn

from lenna_core.latency.onnx_export import example_inputs, export_onnx
from lenna_core.latency.profiler import (
    LatencyResult,
    PassClock,
    ThreadCpuClock,
    WallClock,
    device_name,
    machine_fingerprint,
    timed_passes,
)
from lenna_core.validation import check_int

BACKEND = "onnxruntime"
PROVIDER = "CPUExecutionProvider"
#: Graph optimisation levels by the names a record keeps; "all" is ONNX Runtime's default.
OPTIMIZATION_LEVELS = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}


def check_optimization(optimization: object) -> None:
    """Refuse a graph optimisation level that is not a key of :data:`OPTIMIZATION_LEVELS`."""
    if optimization not in OPTIMIZATION_LEVELS:
        raise ValueError(f"optimization={optimization!r}: must be one of "
                         f"{', '.join(map(repr, OPTIMIZATION_LEVELS))}")


def runtime_record(threads: int, optimization: str = "all") -> dict:
    """What ONNX Runtime adds to a machine record: runtime, version, provider, threads, level."""
    check_optimization(optimization)
    return {"runtime": BACKEND, "onnxruntime": ort.__version__, "execution_provider": PROVIDER,
            "intra_op_threads": threads, "inter_op_threads": 1,
            "graph_optimization": optimization}


class OnnxSession:
    """One exported network in its own inference session, with fixed seeded inputs."""

    def __init__(self, model: bytes, input_shapes: Sequence[Sequence[int]],
                 options: ort.SessionOptions) -> None:
        self.input_shapes = tuple(tuple(int(s) for s in shape) for shape in input_shapes)
        self.session = ort.InferenceSession(model, options, providers=[PROVIDER])
        names = [i.name for i in self.session.get_inputs()]
        self.feeds = {name: x.numpy() for name, x in zip(names, example_inputs(input_shapes))}

    def run(self, feeds: dict[str, np.ndarray] | None = None) -> list[np.ndarray]:
        """One inference pass on ``feeds`` (default: the session's own inputs); its outputs."""
        return self.session.run(None, self.feeds if feeds is None else feeds)


@dataclass(frozen=True)
class OnnxRuntimeCpu:
    """ONNX Runtime's CPU execution provider with ``threads`` intra-op threads (one inter-op
    thread: passes run sequentially) and graph optimisation level ``optimization``."""

    threads: int = 1
    optimization: str = "all"

    def __post_init__(self) -> None:
        check_int("threads", self.threads)
        check_optimization(self.optimization)

    def options(self) -> ort.SessionOptions:
        """Session options for this device."""
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = OPTIMIZATION_LEVELS[self.optimization]
        options.log_severity_level = 3  # errors only: the optimiser's notes are not ours
        return options

    def session(self, module: nn.Module, input_shapes: Sequence[Sequence[int]]) -> OnnxSession:
        """Export ``module`` (eval mode) for ``input_shapes`` and open its session."""
        return self.load(export_onnx(module, input_shapes), input_shapes)

    def load(self, model: bytes, input_shapes: Sequence[Sequence[int]]) -> OnnxSession:
        """Open a session on an already serialized ONNX model with inputs of ``input_shapes``."""
        return OnnxSession(model, input_shapes, self.options())

    def fingerprint(self) -> dict:
        """This machine's record with the runtime's: what the latencies depend on."""
        return {**machine_fingerprint("cpu"), **runtime_record(self.threads, self.optimization)}


def measure_onnx_latency(session: OnnxSession, *, repeats: int = 50, warmup: int = 10,
                         clock: PassClock | None = None) -> LatencyResult:
    """Time ``session`` on its inputs with ``clock`` (default: the wall clock), as
    :func:`~lenna_core.latency.profiler.measure_latency` times a torch module (ms)."""
    check_int("repeats", repeats)
    check_int("warmup", warmup, 0)
    clock = WallClock() if clock is None else clock
    threads = session.session.get_session_options().intra_op_num_threads
    if isinstance(clock, ThreadCpuClock) and threads != 1:
        raise ValueError(f"clock={clock.name!r} sees only the calling thread; the session runs "
                         f"{threads} threads: use the wall clock")
    times = timed_passes(session.run, [], warmup=warmup, repeats=repeats, clock=clock)
    return LatencyResult(times_ms=times, device="cpu", device_name=device_name(torch.device("cpu")),
                         threads=threads, batch_size=session.input_shapes[0][0],
                         input_shapes=session.input_shapes, warmup=warmup,
                         backend=BACKEND)
