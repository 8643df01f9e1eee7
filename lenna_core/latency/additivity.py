"""Chapter 1's additivity experiment: is a cell's latency the sum of its ops' latencies?

Random single-path cells are timed whole and compared with their fixed cost plus their ops
timed alone, on the very modules the cells are built from, by two clocks: the profiler's
wall clock and the CPU time of the timing thread (a core shared with other processes shows
the difference). Latencies in milliseconds.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from lenna_core.latency.blocks import CellBank, CellContext
from lenna_core.latency.lookup_table import OpLatencyTable
from lenna_core.latency.op_timing import edge_keys, zero_cell
from lenna_core.latency.profiler import ThreadCpuClock, measure_latency, resolve_device
from lenna_core.space.search_space import DARTS_SPACE, SearchSpace


def _cpu_median_ms(module: torch.nn.Module, shapes, *, repeats: int, warmup: int,
                   threads: int | None, device: str) -> float:
    """Median CPU time of this thread (ms) over ``repeats`` passes (CPU only; NaN on CUDA)."""
    if resolve_device(device).type != "cpu":
        return float("nan")
    return measure_latency(module, shapes, repeats=repeats, warmup=warmup, threads=threads,
                           device=device, clock=ThreadCpuClock()).median


def _time_both(module: torch.nn.Module, shapes, timing: dict) -> tuple[float, float]:
    """(wall-clock median by the profiler, thread-CPU median) of ``module``, in ms."""
    return (measure_latency(module, shapes, **timing).median,
            _cpu_median_ms(module, shapes, **timing))


def additivity_experiment(contexts: Sequence[CellContext], cells_per_context: int,
                          space: SearchSpace = DARTS_SPACE, *,
                          table: OpLatencyTable | None = None, seed: int = 0,
                          repeats: int = 30, warmup: int = 5, threads: int | None = 1,
                          device: str = "cpu", progress: bool = True) -> pd.DataFrame:
    """Time random single-path cells and compare each with the sum of its ops timed alone.

    Per context, the ops of every edge and the fixed cost (as in :meth:`OpLatencyTable.
    measure`) are timed first, on the very modules the cells are built from; then
    ``cells_per_context`` cells with one uniformly drawn op per edge (drawn with ``seed``).
    Every module is timed two ways: the profiler's wall-clock median (``*_ms``) and the
    median CPU time of the thread (``*_cpu_ms``); on a core shared with other processes the
    wall clock also counts their time slices, the CPU clock does not. Each cell is also timed
    once straight after the previous cell ran (``first_pass_ms``), as the dataset labels are.

    Returns one row per cell: ``measured_ms`` and ``predicted_ms`` (fixed cost + the cell's
    ops), ``ratio`` (measured / predicted), the same for CPU time (``cpu_ratio``), and with
    a ``table``, ``table_ms``: that table's prediction for the cell. Latencies in ms.
    """
    if cells_per_context < 1:
        raise ValueError(f"cells_per_context={cells_per_context}: must be at least 1")
    rng = np.random.default_rng(seed)
    timing = {"repeats": repeats, "warmup": warmup, "threads": threads, "device": device}
    rows = []
    bar = tqdm(total=len(contexts) * cells_per_context, desc="single-path cells", unit="cell",
               disable=not progress)
    for context in contexts:
        keys = edge_keys(context, space)
        bank = CellBank(context, space).to(device)
        bank.warm_up()
        ops: dict[tuple, tuple[float, float]] = {}  # (op index, key) -> (wall, cpu)
        for e, key in enumerate(keys):
            shape = (key[3], key[0], key[1], key[1])
            for k in range(space.num_ops):
                if (k, key) not in ops:
                    ops[(k, key)] = _time_both(bank.ops[e][k], [shape], timing)
        zero = zero_cell(context, space).to(device)
        zeros = {key: _time_both(op, [(key[3], key[0], key[1], key[1])], timing)
                 for key, op in dict(zip(keys, zero.ops)).items()}
        zero_cell_ms = _time_both(zero, context.input_shapes, timing)
        fixed = [zero_cell_ms[i] - sum(zeros[key][i] for key in keys) for i in (0, 1)]
        for i in range(cells_per_context):
            active = rng.integers(space.num_ops, size=space.num_edges).tolist()
            cell = bank.select(active)
            first = measure_latency(cell, context.input_shapes, repeats=1, warmup=0,
                                    threads=threads, device=device)
            measured = _time_both(cell, context.input_shapes, timing)
            edges = [sum(ops[(k, key)][j] for k, key in zip(active, keys)) for j in (0, 1)]
            names = [space.primitives[k] for k in active]
            row = {**context.to_dict(), "cell": i, "ops": " ".join(names),
                   "conv_edges": sum("conv" in name for name in names),
                   "measured_ms": measured[0], "predicted_ms": edges[0] + fixed[0],
                   "edges_ms": edges[0], "fixed_ms": fixed[0],
                   "measured_cpu_ms": measured[1], "predicted_cpu_ms": edges[1] + fixed[1],
                   "first_pass_ms": first.times_ms[0]}
            if table is not None:
                row["table_ms"] = table.block_ms(context, np.eye(space.num_ops)[active])
            rows.append(row)
            bar.update()
    bar.close()
    frame = pd.DataFrame(rows)
    frame["ratio"] = frame["measured_ms"] / frame["predicted_ms"]
    frame["cpu_ratio"] = frame["measured_cpu_ms"] / frame["predicted_cpu_ms"]
    return frame
