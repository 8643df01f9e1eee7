"""Latency measurement in milliseconds, with the context every figure needs to be reproduced.

A measurement is ``warmup`` untimed forward passes, then ``repeats`` timed ones, under
``torch.inference_mode`` and in eval mode. On CPU the thread count is fixed for the duration
(and recorded). Each pass is timed by a *pass clock*, the one place where a device says how it
is timed: the wall clock on CPU, CUDA events on a GPU (device time, not the time to enqueue
kernels), this thread's CPU time for chapter 1's comparison. Every backend shares one timing
loop (:func:`timed_passes`): torch eager here, ONNX Runtime in
:mod:`~lenna_core.latency.onnx_runtime`. :class:`~lenna_core.latency.reference_clock.ReferenceClock`
turns passes into ratios to the reference cell for the labeller and the evaluation.
"""

from __future__ import annotations

import functools
import os
import platform
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Protocol

import numpy as np
import torch
from torch import nn

from lenna_core.latency.timing_perturbation import perturb, perturbation_settings
from lenna_core.space.operations import make_op
from lenna_core.validation import check_int


def resolve_device(device: str | torch.device, name: str = "device") -> torch.device:
    """Parse ``device`` and check it exists here; raise a ValueError that says what to use,
    naming the argument as the caller's user typed it (``name``: '--device', a parameter)."""
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"{name}={device!r} is not a device torch knows; use 'cpu' or "
                         "'cuda' / 'cuda:N'") from err
    if resolved.type not in ("cpu", "cuda"):
        raise ValueError(f"{name}={device!r}: the profiler supports 'cpu' and 'cuda' only")
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"{name}={device!r}: no CUDA device is available on this machine; "
                             "use device='cpu'")
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise ValueError(f"{name}={device!r}: only {torch.cuda.device_count()} CUDA "
                             "device(s) exist")
    return resolved


@functools.lru_cache(maxsize=1)
def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _cpu_details() -> dict[str, str]:
    """Family/model numbers and the widest vector ISA, from /proc/cpuinfo: two CPUs that
    share a model name (a cloud VM often reports only "AMD EPYC") can still time ops apart."""
    details = {"cpu_family_model": "unknown", "cpu_isa": "unknown"}
    try:
        with open("/proc/cpuinfo") as f:
            fields = dict(line.split(":", 1) for line in f.read().split("\n\n")[0].splitlines()
                          if ":" in line)
    except OSError:
        return details
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    if "cpu family" in fields and "model" in fields:
        details["cpu_family_model"] = f"{fields['cpu family']}/{fields['model']}"
    flags = set(fields.get("flags", "").split())
    for isa in ("avx512f", "avx2", "avx", "sse4_2"):
        if isa in flags:
            details["cpu_isa"] = isa
            break
    return details


def device_name(device: torch.device) -> str:
    """The CPU or GPU model behind ``device``."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return _cpu_model()  # cached: the profiler asks on every measurement


def load_average() -> tuple[float, float, float]:
    """The 1-, 5- and 15-minute load averages; NaN where the platform keeps none."""
    return os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3


def machine_fingerprint(device: str | torch.device = "cpu") -> dict:
    """What a latency figure depends on: hardware, software and load of this machine."""
    resolved = resolve_device(device)
    load = load_average()
    return {
        "device": str(resolved), "device_name": device_name(resolved),
        "cpu_model": _cpu_model(), **_cpu_details(), "cpu_count": os.cpu_count(),
        "platform": platform.platform(), "python": platform.python_version(),
        "torch": torch.__version__, "cuda": torch.version.cuda,
        # The kernels' code path: scripts/cpu_isa.sh pins AVX2 on a wider CPU, and the same
        # op times differently on the two paths.
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "load_average_1_5_15": [round(x, 2) for x in load],
        # Set only in the test mode that perturbs every timing (never for real labels).
        "timing_perturbation": perturbation_settings(),
    }


@contextmanager
def cpu_threads(threads: int | None) -> Iterator[None]:
    """Fix torch's intra-op CPU threads inside the block (None leaves them alone)."""
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@dataclass(frozen=True)
class LatencyResult:
    """Timings of one module on one input shape, in milliseconds, with their context."""

    times_ms: tuple[float, ...]
    device: str
    device_name: str
    threads: int | None
    batch_size: int
    input_shapes: tuple[tuple[int, ...], ...]
    warmup: int
    torch_version: str = field(default=torch.__version__)
    #: What ran the passes: "torch eager", or "onnxruntime" for an exported network.
    backend: str = "torch eager"

    @property
    def repeats(self) -> int:
        """Number of timed passes."""
        return len(self.times_ms)

    @property
    def median(self) -> float:
        """Median latency (ms): the default summary, robust to the occasional slow pass."""
        return float(np.median(self.times_ms))

    @property
    def min(self) -> float:
        """Fastest pass (ms)."""
        return float(np.min(self.times_ms))

    @property
    def iqr(self) -> float:
        """Interquartile range (ms)."""
        q1, q3 = np.percentile(self.times_ms, [25, 75])
        return float(q3 - q1)

    def quantile(self, q: float) -> float:
        """The ``q`` quantile (0..1) of the timings (ms); LENNA used the 0.4 quantile."""
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"q={q}: a quantile must lie in [0, 1]")
        return float(np.quantile(self.times_ms, q))

    def trimmed_mean(self, low: float = 0.2, high: float = 0.8) -> float:
        """Mean of the timings between the ``low`` and ``high`` quantiles (ms)."""
        if not 0.0 <= low < high <= 1.0:
            raise ValueError(f"low={low}, high={high}: need 0 <= low < high <= 1")
        ordered = sorted(self.times_ms)
        n = len(ordered)
        # The epsilon keeps 5 * (1 - 0.8) from flooring to 0 in binary floating point.
        kept = ordered[int(n * low + 1e-9):n - int(n * (1.0 - high) + 1e-9)]
        return float(np.mean(kept)) if kept else self.median

    def outliers(self, k: float = 1.5) -> tuple[float, ...]:
        """Timings above Tukey's fence ``Q3 + k * IQR``: LENNA's "popping values"."""
        q3 = np.percentile(self.times_ms, 75)
        return tuple(t for t in self.times_ms if t > q3 + k * self.iqr)

    def summary(self) -> dict:
        """Statistics and context as a flat dict (one row of a results table)."""
        row = {k: v for k, v in asdict(self).items() if k != "times_ms"}
        row["input_shapes"] = format_shapes(self.input_shapes)
        row.update(repeats=self.repeats, median_ms=self.median, min_ms=self.min,
                   iqr_ms=self.iqr, trimmed_mean_ms=self.trimmed_mean(),
                   q40_ms=self.quantile(0.4), outliers=len(self.outliers()))
        return row


def format_shapes(shapes: Sequence[Sequence[int]]) -> str:
    """Input shapes as text, e.g. ``1x16x32x32+1x16x32x32`` for a cell's two inputs."""
    return "+".join("x".join(map(str, shape)) for shape in shapes)


def as_shapes(input_shape: Sequence[int] | Sequence[Sequence[int]]) -> tuple[tuple[int, ...], ...]:
    """``input_shape`` as a tuple of shapes (one per input), checked: positive sizes, batch
    first and the same batch for every input."""
    nested = len(input_shape) > 0 and isinstance(input_shape[0], (tuple, list, torch.Size))
    shapes = tuple(tuple(int(s) for s in shape) for shape in (input_shape if nested
                                                              else [input_shape]))
    for shape in shapes:
        if len(shape) < 2 or any(s < 1 for s in shape):
            raise ValueError(f"input_shape={tuple(input_shape)}: give (batch, channels, ...) "
                             "with positive sizes, or a list of such shapes for several inputs")
    if len({shape[0] for shape in shapes}) != 1:
        raise ValueError(f"input_shape={tuple(input_shape)}: all inputs need the same batch size")
    return shapes


class PassClock(Protocol):
    """Times one forward pass in milliseconds: how a device is timed."""

    name: str

    def time_pass(self, run: Callable[..., object], *args: object) -> float:
        """Call ``run(*args)`` and return how long it took (ms) by this clock."""
        ...


class WallClock:
    """Wall-clock time of the pass: on CPU the call returns when the work is done."""

    name = "wall"

    def time_pass(self, run: Callable[..., object], *args: object) -> float:
        """Call ``run(*args)``; its wall-clock time (ms)."""
        start = time.perf_counter()
        run(*args)
        return (time.perf_counter() - start) * 1e3


class ThreadCpuClock:
    """CPU time of this thread: what the pass cost the core, without time spent descheduled
    (CPU only, and meaningful with one torch thread)."""

    name = "thread_cpu"

    def time_pass(self, run: Callable[..., object], *args: object) -> float:
        """Call ``run(*args)``; this thread's CPU time (ms) during it."""
        start = time.thread_time()
        run(*args)
        return (time.thread_time() - start) * 1e3


class CudaEventClock:
    """Device time between two CUDA events around the pass, read after the end event has
    completed: the kernels' time on the GPU, not the time to enqueue them."""

    name = "cuda_events"

    def time_pass(self, run: Callable[..., object], *args: object) -> float:
        """Call ``run(*args)`` between two recorded events; the GPU time between them (ms)."""
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        run(*args)
        end.record()
        end.synchronize()
        return float(start.elapsed_time(end))


def clock_for(device: str | torch.device) -> PassClock:
    """The clock a device is timed with by default: CUDA events on a GPU, else the wall clock."""
    return CudaEventClock() if resolve_device(device).type == "cuda" else WallClock()


def timed_passes(run: Callable[..., object], inputs: Sequence[object], *, warmup: int,
                 repeats: int, clock: PassClock) -> tuple[float, ...]:
    """``warmup`` untimed calls of ``run(*inputs)``, then ``repeats`` timed by ``clock`` (ms),
    each through the test mode's perturbation: the one timing loop every backend shares."""
    for _ in range(warmup):
        run(*inputs)
    return tuple(perturb(clock.time_pass(run, *inputs)) for _ in range(repeats))


def measure_latency(module: nn.Module, input_shape: Sequence[int] | Sequence[Sequence[int]], *,
                    device: str | torch.device = "cpu", repeats: int = 50, warmup: int = 10,
                    threads: int | None = 1, clock: PassClock | None = None) -> LatencyResult:
    """Time ``module`` on random inputs of ``input_shape`` (batch first; a list of shapes for a
    module with several inputs, such as a cell) with ``clock`` (default: the device's,
    :func:`clock_for`); returns the timings in milliseconds."""
    check_int("repeats", repeats)
    check_int("warmup", warmup, 0)
    if threads is not None:
        check_int("threads", threads)
    shapes = as_shapes(input_shape)
    resolved = resolve_device(device)
    clock = clock_for(resolved) if clock is None else clock
    if resolved.type == "cuda" and isinstance(clock, ThreadCpuClock):
        raise ValueError(f"clock={clock.name!r} times this CPU thread and cannot time "
                         f"device={device!r}; leave clock=None for CUDA events")
    was_training = module.training
    module = module.to(resolved).eval()
    inputs = [torch.randn(shape, device=resolved) for shape in shapes]
    try:
        with cpu_threads(threads if resolved.type == "cpu" else None), torch.inference_mode():
            times = timed_passes(module, inputs, warmup=warmup, repeats=repeats, clock=clock)
    finally:
        module.train(was_training)
    return LatencyResult(
        times_ms=times, device=str(resolved), device_name=device_name(resolved),
        threads=threads if resolved.type == "cpu" else None, batch_size=shapes[0][0],
        input_shapes=shapes, warmup=warmup)


def time_primitive(name: str, C: int, stride: int, input_size: int, *, batch_size: int = 1,
                   device: str | torch.device = "cpu", repeats: int = 50, warmup: int = 10,
                   threads: int | None = 1) -> LatencyResult:
    """Time one primitive (as built for an inference cell) on a (batch, C, size, size) input."""
    check_int("C", C)
    check_int("input_size", input_size)
    check_int("batch_size", batch_size)
    op = make_op(name, C, stride, affine=True)
    return measure_latency(op, (batch_size, C, input_size, input_size), device=device,
                           repeats=repeats, warmup=warmup, threads=threads)
