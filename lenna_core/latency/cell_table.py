"""An op table measured inside cells, timed the way the dataset labeller times blocks.

:meth:`OpLatencyTable.measure <lenna_core.latency.lookup_table.OpLatencyTable.measure>` times each
op alone, in a tight loop. That is a poor prior for a runtime that fuses ops with their
neighbours and whose labels are timed between passes of the reference cell: in ONNX Runtime an
op alone pays a session's overhead (a skip connection costs 4.5 us there, next to nothing
inside a cell), and a cell timed between reference passes starts with colder caches than in a
tight loop (on xeon-6-167 it took 1.15-1.29x as long, the median over 148 contexts by op).

Here each context's *probe cells* are timed instead: the cell with ``none`` on every edge, and
per candidate op the cell with that op on every edge (in a reduction cell, on the stride-2
edges and on the stride-1 edges apart, the other edges ``none``). Each is timed as a label is:
fresh single-path cells from the reference clock, pass pairs against the reference cell, the
mean of the per-cell median ratios times ``reference_ms`` (:mod:`~lenna_core.latency.labeller`).
The op costs then follow from differences:

    cost(op on an edge) = (probe(op) - probe(none)) / edges it covers, shifted so that the
    cheapest op of the part costs ``FLOOR_MS``; per op key the median over the contexts;
    fixed(context) = mean over its probes of (probe - the table's sum for that probe)

so the table prices each context's probes as measured, up to the spread between contexts of
the shared op costs.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd
from tqdm import tqdm

from lenna_core.latency.blocks import CellBank, CellContext
from lenna_core.latency.lookup_table import CONTEXT_KEY, OpLatencyTable, table_meta
from lenna_core.latency.op_timing import OP_KEY, edge_keys
from lenna_core.latency.profiler import cpu_threads
from lenna_core.latency.reference_clock import ReferenceClock
from lenna_core.space.search_space import DARTS_SPACE, SearchSpace
from lenna_core.validation import check_int

#: What an op costs at least (ms): the table's ops must be positive; 0.1 us is below any
#: timing's resolution.
FLOOR_MS = 1e-4
PROBE_COLUMNS = (*CONTEXT_KEY, "primitive", "part", "edges", "latency_ms", "spread", "passes")
CELL_FIXED_COST_RULE = ("fixed(context) = mean over the context's probe cells of (probe latency "
                        "- the table's sum of its ops); op costs are the probes' differences "
                        "per edge, the median over contexts")
CELL_STATISTIC = ("probe cells timed as labels: mean over fresh cells of the median ratio to "
                  "the reference cell, times reference_ms")


def probe_parts(context: CellContext, space: SearchSpace = DARTS_SPACE) -> dict[str, np.ndarray]:
    """The edge masks probed apart: every edge of a normal cell ("all"); a reduction cell's
    stride-2 edges ("stride2") and stride-1 edges ("stride1")."""
    stride2 = np.array([context.reduction and src < 2 for src, _ in space.edges])
    if not context.reduction:
        return {"all": np.ones(space.num_edges, dtype=bool)}
    return {"stride2": stride2, "stride1": ~stride2}


def probe_cells(context: CellContext, space: SearchSpace = DARTS_SPACE
                ) -> dict[tuple[str, str], list[int]]:
    """Each probe of ``context`` as (primitive, part) -> the op index on every edge."""
    if "none" not in space.primitives:
        raise ValueError(f"the space's primitives {list(space.primitives)} lack 'none': probe "
                         "cells are differences from the cell of zeros; time each op alone "
                         "(OpLatencyTable.measure) instead")
    none = space.primitives.index("none")
    cells = {("none", "all"): [none] * space.num_edges}
    for part, mask in probe_parts(context, space).items():
        for k, name in enumerate(space.primitives):
            if k != none:
                cells[(name, part)] = [k if on else none for on in mask]
    return cells


def time_probes(contexts: Iterable[CellContext], clock: ReferenceClock, reference_ms: float, *,
                cells: int = 4, pairs: int = 5, rounds: int = 1,
                space: SearchSpace = DARTS_SPACE, progress: bool = True) -> pd.DataFrame:
    """Every probe cell of every context, timed as the labeller times a block (ms; tqdm
    progress): ``cells`` fresh single-path cells, ``pairs`` pass pairs against the reference
    cell each, in each of ``rounds`` passes over the contexts (alternately reversed, so that a
    slow phase of the machine does not fall on the same contexts twice). ``latency_ms`` is the
    mean over all the cells, ``spread`` the relative spread of their median ratios
    (max/min - 1), ``passes`` the timed passes of the probe."""
    contexts = list(dict.fromkeys(contexts))
    if not contexts:
        raise ValueError("contexts is empty: give the CellContexts the table must cover")
    check_int("cells", cells)
    check_int("pairs", pairs)
    check_int("rounds", rounds)
    if not (np.isfinite(reference_ms) and reference_ms > 0):
        raise ValueError(f"reference_ms={reference_ms!r}: must be the reference cell's positive "
                         "latency (ms), from the dataset the table is for or clock.calibrate()")
    ratios: dict[tuple, list[float]] = {}
    order = [contexts[::-1] if r % 2 else contexts for r in range(rounds)]
    with cpu_threads(clock.threads if clock.device == "cpu" else None):
        for context in tqdm([c for pass_ in order for c in pass_], desc="probe cells",
                            unit="context", disable=not progress):
            bank = CellBank(context, space).to(clock.device)
            clock.start_block(bank)
            for probe, active in probe_cells(context, space).items():
                ratios.setdefault((context, *probe), []).extend(
                    float(np.median([clock.time_against(cell, context.input_shapes)[1]
                                     for _ in range(pairs)]))
                    for cell in (clock.sampled(bank, active) for _ in range(cells)))
    rows = []
    for (context, name, part), values in ratios.items():
        parts = probe_parts(context, space)
        rows.append({**{key: getattr(context, key) for key in CONTEXT_KEY},
                     "primitive": name, "part": part,
                     "edges": int(parts[part].sum()) if part in parts else space.num_edges,
                     "latency_ms": float(np.mean(values)) * reference_ms,
                     "spread": max(values) / min(values) - 1.0,
                     "passes": len(values) * pairs})
    return pd.DataFrame(rows, columns=list(PROBE_COLUMNS))


def _context_of(row: tuple) -> CellContext:
    values = dict(zip(CONTEXT_KEY, row))
    return CellContext(**{k: (bool(v) if k.startswith("reduction") else int(v))
                          for k, v in values.items()})


def table_from_probes(probes: pd.DataFrame, space: SearchSpace = DARTS_SPACE
                      ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(ops, fixed) frames of an op table from timed probe cells (see the module docstring).

    An op's ``iqr_ms`` is the spread of its cost over the contexts (their interquartile
    range), a context's the spread of its probes' residuals; ``repeats`` are the fewest timed
    passes behind a probe."""
    missing = [c for c in PROBE_COLUMNS if c not in probes.columns]
    if missing:
        raise ValueError(f"probes lacks the columns {missing}: time them with time_probes")
    costs: list[tuple] = []
    per_context: dict[CellContext, dict] = {}
    for key, group in probes.groupby(list(CONTEXT_KEY), sort=False):
        context = _context_of(key)
        measured = {(r.primitive, r.part): r.latency_ms for r in group.itertuples()}
        expected = set(probe_cells(context, space))
        if set(measured) != expected:
            raise ValueError(f"probes of {context} hold {sorted(measured)}, not the probe cells "
                             f"{sorted(expected)}: time every context with time_probes")
        base = measured[("none", "all")]
        for part, mask in probe_parts(context, space).items():
            edges = int(mask.sum())
            per_edge = {name: 0.0 if name == "none" else (measured[(name, part)] - base) / edges
                        for name in space.primitives}
            cheapest = min(per_edge.values())  # a skip can cost less than a zero in a cell
            for (C, spatial, stride, batch), on in zip(edge_keys(context, space), mask):
                if on:
                    costs += [(name, C, spatial, stride, batch, cost - cheapest + FLOOR_MS)
                              for name, cost in per_edge.items()]
        per_context[context] = measured
    passes = int(probes["passes"].min())
    per_key = pd.DataFrame(costs, columns=[*OP_KEY, "latency_ms"]).groupby(
        list(OP_KEY), sort=False)["latency_ms"]
    ops = pd.DataFrame({"latency_ms": per_key.median(),
                        "iqr_ms": per_key.quantile(0.75) - per_key.quantile(0.25)}
                       ).reset_index().assign(repeats=passes)
    op_ms = {tuple(r[:5]): r[5] for r in ops.itertuples(index=False)}
    fixed = []
    for context, measured in per_context.items():
        matrix = np.array([[op_ms[(name, *key)] for name in space.primitives]
                           for key in edge_keys(context, space)])
        residuals = [measured[probe] - matrix[np.arange(space.num_edges), active].sum()
                     for probe, active in probe_cells(context, space).items()]
        fixed.append({**context.to_dict(), "latency_ms": float(np.mean(residuals)),
                      "iqr_ms": float(np.subtract(*np.percentile(residuals, [75, 25]))),
                      "repeats": passes, "zero_cell_ms": measured[("none", "all")]})
    fixed_frame = pd.DataFrame(fixed)[[*CONTEXT_KEY, "latency_ms", "iqr_ms", "repeats",
                                       "zero_cell_ms"]]
    return ops, fixed_frame


def measure_cell_table(contexts: Iterable[CellContext], clock: ReferenceClock,
                       reference_ms: float, *, cells: int = 4, pairs: int = 5, rounds: int = 1,
                       space: SearchSpace = DARTS_SPACE, progress: bool = True,
                       reference_from: str | None = None) -> OpLatencyTable:
    """An op table from the probe cells of ``contexts`` timed on ``clock`` (see the module
    docstring), in the milliseconds of labels scaled by ``reference_ms``; ``reference_from``
    names the dataset that calibrated it, for the record."""
    probes = time_probes(contexts, clock, reference_ms, cells=cells, pairs=pairs,
                         rounds=rounds, space=space, progress=progress)
    ops, fixed = table_from_probes(probes, space)
    settings = {"method": "probe cells", "cells": cells, "pairs": pairs, "rounds": rounds,
                "reference_ms": reference_ms, "reference_from": reference_from,
                "threads": clock.threads, "device": str(clock.device), "space": space.to_dict(),
                "largest_probe_spread": float(probes["spread"].max())}
    meta = table_meta(CELL_STATISTIC, CELL_FIXED_COST_RULE, settings, str(clock.device),
                      getattr(clock, "runtime", None))
    return OpLatencyTable(ops, fixed, space, meta)
