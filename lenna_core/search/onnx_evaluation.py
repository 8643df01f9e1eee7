"""Derived networks timed in ONNX Runtime, in the units of a dataset labelled there.

A :class:`~lenna_core.search.evaluation.LatencyMeter` with ONNX Runtime's reference clock
times what the torch meter times (the target network of each genotype, one pass against one
reference-cell pass), but each network runs as an exported session: its latency is its median
ratio to the reference cell's session times that cell's latency when the ONNX Runtime dataset
was labelled, so measurements and that dataset's model share their milliseconds.
"""

from __future__ import annotations

from collections.abc import Mapping

from lenna_core.latency.onnx_reference import OnnxReferenceClock
from lenna_core.latency.onnx_runtime import BACKEND, OnnxRuntimeCpu
from lenna_core.latency.profiler import PassClock
from lenna_core.search.evaluation import LatencyMeter


def onnx_meter(settings: Mapping, *, passes: int = 30, warmup: int = 5,
               clock: PassClock | None = None) -> LatencyMeter:
    """A meter timing in ONNX Runtime as the dataset whose ``settings`` (its metadata's
    ``settings``, :func:`~lenna_core.latency.dataset_files.read_metadata`) was labelled: the
    same intra-op threads and graph optimisation, and its reference cell's ``reference_ms``.
    ``clock``: the pass clock (default: the wall clock). Refuses a dataset labelled in torch
    eager, whose milliseconds are another runtime's."""
    runtime = settings.get("runtime") or {}
    if runtime.get("runtime") != BACKEND:
        raise ValueError(f"the dataset was labelled in {runtime.get('runtime') or 'torch eager'}"
                         f", not {BACKEND}: give the metadata of a dataset labelled with "
                         "lenna label --runtime onnxruntime")
    device = OnnxRuntimeCpu(threads=runtime["intra_op_threads"],
                            optimization=runtime.get("graph_optimization", "all"))
    return LatencyMeter(settings["rule"]["reference_ms"], passes=passes, warmup=warmup,
                        clock=OnnxReferenceClock(runtime=device, clock=clock))
