"""Timing the parts a lookup table is made of: each op alone, and each block's fixed cost.

An op is keyed by (primitive, C, spatial_in, stride, batch_size) and timed alone by the
profiler; a block's fixed cost is the latency of its cell with a ``Zero`` op on every edge,
less those zero ops timed alone (:mod:`lenna_core.latency.lookup_table` explains why). Latencies in
milliseconds, the median of the timed passes. With a ``runtime``
(:class:`~lenna_core.latency.onnx_runtime.OnnxRuntimeCpu`), every part is exported and timed in
its own ONNX Runtime session instead of torch eager.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
from torch import nn
from tqdm import tqdm

from lenna_core.latency.blocks import CellContext
from lenna_core.latency.profiler import LatencyResult, as_shapes, measure_latency
from lenna_core.space.cells import FixedCell
from lenna_core.space.operations import Zero, make_op
from lenna_core.space.search_space import DARTS_SPACE, SearchSpace

OP_KEY = ("primitive", "C", "spatial_in", "stride", "batch_size")
OpKey = tuple[str, int, int, int, int]


def edge_keys(context: CellContext, space: SearchSpace = DARTS_SPACE
              ) -> list[tuple[int, int, int, int]]:
    """(C, spatial_in, stride, batch_size) of the op on every edge of ``context``'s cell.

    Edges leaving the two inputs of a reduction cell stride 2 on the full-size input; every
    other edge of a reduction cell works on the halved size.
    """
    keys = []
    for src, _ in space.edges:
        stride = 2 if context.reduction and src < 2 else 1
        spatial = context.spatial // 2 if context.reduction and stride == 1 else context.spatial
        keys.append((context.C, spatial, stride, context.batch_size))
    return keys


def time_module(module: nn.Module, input_shape: Sequence, *, runtime: object | None = None,
                repeats: int = 30, warmup: int = 5, threads: int | None = 1,
                device: str = "cpu") -> LatencyResult:
    """Time ``module`` in torch eager, or exported into a session of ``runtime`` (ms)."""
    if runtime is None:
        return measure_latency(module, input_shape, repeats=repeats, warmup=warmup,
                               threads=threads, device=device)
    from lenna_core.latency.onnx_runtime import measure_onnx_latency

    if device != "cpu" or threads != runtime.threads:
        raise ValueError(f"device={device!r}, threads={threads!r} with an ONNX Runtime of "
                         f"{runtime.threads} threads: time it on 'cpu' with threads="
                         f"{runtime.threads}")
    session = runtime.session(module, as_shapes(input_shape))
    return measure_onnx_latency(session, repeats=repeats, warmup=warmup)


def measure_ops(keys: Sequence[OpKey], *, repeats: int = 30, warmup: int = 5,
                threads: int | None = 1, device: str = "cpu", progress: bool = True,
                runtime: object | None = None) -> pd.DataFrame:
    """Time each (primitive, C, spatial_in, stride, batch_size) alone, in torch eager or in
    ``runtime``; one row per key (ms)."""
    rows = []
    for name, C, spatial, stride, batch in tqdm(keys, desc="op latencies", unit="op",
                                                disable=not progress):
        op = make_op(name, C, stride, affine=True).eval()
        result = time_module(op, (batch, C, spatial, spatial), runtime=runtime,
                             repeats=repeats, warmup=warmup, threads=threads, device=device)
        rows.append({"primitive": name, "C": C, "spatial_in": spatial, "stride": stride,
                     "batch_size": batch, "latency_ms": result.median, "iqr_ms": result.iqr,
                     "repeats": result.repeats})
    return pd.DataFrame(rows, columns=[*OP_KEY, "latency_ms", "iqr_ms", "repeats"])


def primitive_sweep(primitives: Sequence[str], channels: Sequence[int], strides: Sequence[int],
                    spatial_sizes: Sequence[int], **timing) -> pd.DataFrame:
    """Every primitive at every (channels, stride, input size), batch 1; see :func:`measure_ops`."""
    keys = [(name, C, spatial, stride, 1) for name in primitives for C in channels
            for stride in strides for spatial in spatial_sizes]
    return measure_ops(keys, **timing)


def zero_cell(context: CellContext, space: SearchSpace = DARTS_SPACE) -> FixedCell:
    """The cell of ``context`` with a ``Zero`` op on every edge: only its fixed parts work."""
    strides = [2 if context.reduction and src < 2 else 1 for src, _ in space.edges]
    edges = [("none", src, dst) for src, dst in space.edges]
    return FixedCell(edges, space.concat, context.C_prev_prev, context.C_prev, context.C,
                     context.reduction, context.reduction_prev,
                     ops=[Zero(stride) for stride in strides])


def measure_fixed_cost(context: CellContext, space: SearchSpace = DARTS_SPACE, *,
                       zero_ops_ms: Sequence[float] | None = None, repeats: int = 30,
                       warmup: int = 5, threads: int | None = 1, device: str = "cpu",
                       runtime: object | None = None) -> dict:
    """The fixed cost of ``context`` (see the module docstring) and its parts, in ms.

    ``zero_ops_ms`` are the latencies of the Zero op on every edge, as the table holds them
    (so that the table predicts the all-``none`` cell exactly); None times them here.
    """
    timing = {"repeats": repeats, "warmup": warmup, "threads": threads, "device": device,
              "runtime": runtime}
    cell = zero_cell(context, space).eval()
    whole = time_module(cell, context.input_shapes, **timing)
    if zero_ops_ms is None:
        zero_ops_ms = [time_module(op, (batch, C, spatial, spatial), **timing).median
                       for (C, spatial, _, batch), op in zip(edge_keys(context, space),
                                                             cell.ops)]
    if len(zero_ops_ms) != space.num_edges:
        raise ValueError(f"zero_ops_ms lists {len(zero_ops_ms)} latencies for "
                         f"{space.num_edges} edges")
    zero_ops = float(sum(zero_ops_ms))
    preprocess = sum(time_module(module, shape, **timing).median for module, shape in
                     zip((cell.preprocess0, cell.preprocess1), context.input_shapes))
    return {"latency_ms": whole.median - zero_ops, "iqr_ms": whole.iqr,
            "repeats": whole.repeats, "zero_cell_ms": whole.median, "zero_ops_ms": zero_ops,
            "preprocess_ms": preprocess}
