"""Per-op latency lookup table and the ProxylessNAS-style expected latency of a block.

A block's latency is modelled as a fixed cost plus one term per edge:

    E[latency] = fixed(context) + sum over edges e of sum_j p_ej * L(op_j on edge e)

``L`` is measured once per (primitive, C, spatial_in, stride, batch_size): the op alone, as
the profiler times it. ``fixed`` is everything in a cell that is not an edge op: the two
preprocessing modules, the sums at the nodes, the final concatenation and the Python of the
cell's forward. It is measured as the latency of the cell whose every edge is a ``Zero``
op, minus the latencies of those zero ops timed alone; so the all-``none`` cell is predicted
exactly as measured, and any other error is a failure of additivity between ops.

Every latency is in milliseconds; the table keeps the median of the timed passes.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted
from tqdm import tqdm

from lenna_core.latency.block_checks import check_blocks, probability_columns
from lenna_core.latency.blocks import CellContext
from lenna_core.latency.encoder import contexts_from_frame
from lenna_core.latency.file_checks import (
    check_schema_version,
    file_sha256,
    read_json,
    verify_digest,
    with_digest,
)
from lenna_core.latency.op_timing import (
    OP_KEY,
    edge_keys,
    measure_fixed_cost,
    measure_ops,
)
from lenna_core.latency.profiler import (
    machine_fingerprint,
    resolve_device,
)
from lenna_core.space.search_space import DARTS_SPACE, SearchSpace
from lenna_core.validation import check_int

SCHEMA_VERSION = 1
CONTEXT_KEY = ("reduction", "reduction_prev", "C_prev_prev", "C_prev", "C", "spatial",
               "batch_size")
#: Columns of the CSV: op rows fill the op key, fixed-cost rows the context key.
TABLE_COLUMNS = ("kind", "primitive", "reduction", "reduction_prev", "C_prev_prev", "C_prev",
                 "C", "spatial", "spatial_in", "stride", "batch_size", "latency_ms", "iqr_ms",
                 "repeats", "zero_cell_ms", "zero_ops_ms", "preprocess_ms")
FIXED_COST_RULE = ("fixed(context) = median latency of the cell with a Zero op on every edge "
                   "minus the sum of the median latencies of those Zero ops timed alone")

class MissingLatencyError(KeyError, ValueError):
    """A latency the table does not hold; the message says which and how to measure it."""

    def __str__(self) -> str:  # KeyError would print the message in quotes
        return str(self.args[0]) if self.args else ""


def _context_key(context: CellContext) -> tuple:
    return tuple(getattr(context, name) for name in CONTEXT_KEY)


def _measure_hint() -> str:
    return ("measure it with OpLatencyTable.measure([context, ...]) (or rebuild the table "
            "with the chapter 1 parameter remeasure_table=True) and merge it into this table")


def table_meta(statistic: str, fixed_cost: str, settings: dict, device: str,
               runtime: object | None = None) -> dict:
    """A measured op table's metadata: its units, statistic, fixed-cost rule and settings, the
    machine (``runtime``'s record where an inference runtime timed it), the cores and when."""
    return {"schema_version": SCHEMA_VERSION, "units": {"latency": "ms"},
            "statistic": statistic, "fixed_cost": fixed_cost, "settings": settings,
            "machine": machine_fingerprint(device) if runtime is None else runtime.fingerprint(),
            "cpu_affinity": (sorted(os.sched_getaffinity(0))
                             if hasattr(os, "sched_getaffinity") else None),
            "measured": datetime.now(UTC).isoformat(timespec="seconds")}


class OpLatencyTable:
    """Measured op latencies and per-context fixed costs (ms), with how they were measured.

    Build one with :meth:`measure`, or read one with :meth:`from_csv`. ``ops`` has the
    columns of :data:`OP_KEY` plus ``latency_ms``; ``fixed`` those of :data:`CONTEXT_KEY`
    plus ``latency_ms`` (the fixed cost) and its components.
    """

    def __init__(self, ops: pd.DataFrame, fixed: pd.DataFrame, space: SearchSpace = DARTS_SPACE,
                 meta: dict | None = None) -> None:
        self.space = space
        self.meta = dict(meta or {})
        self.ops = ops.reset_index(drop=True)
        self.fixed = fixed.reset_index(drop=True)
        for name, frame, key in (("ops", self.ops, OP_KEY), ("fixed", self.fixed, CONTEXT_KEY)):
            missing = [c for c in (*key, "latency_ms") if c not in frame.columns]
            if missing:
                raise ValueError(f"{name} lacks the columns {missing}")
            if frame.duplicated(list(key)).any():
                raise ValueError(f"{name} holds the same key twice; merge measurements first")
            values = frame["latency_ms"].to_numpy(dtype=float)
            if not np.isfinite(values).all():
                raise ValueError(f"{name}: every latency_ms must be finite")
        if (self.ops["latency_ms"] <= 0).any():
            raise ValueError("ops: every op latency must be positive (ms)")
        self._op = {(str(r[0]), *map(int, r[1:5])): float(r[5]) for r in
                    self.ops[[*OP_KEY, "latency_ms"]].itertuples(index=False)}
        self._fixed = {(bool(r[0]), bool(r[1]), *map(int, r[2:7])): float(r[7]) for r in
                       self.fixed[[*CONTEXT_KEY, "latency_ms"]].itertuples(index=False)}

    def __repr__(self) -> str:
        return (f"OpLatencyTable({len(self.ops)} op latencies, {len(self.fixed)} contexts, "
                f"device={self.meta.get('settings', {}).get('device', '?')!r})")

    # ------------------------------------------------------------------ lookups

    def op_ms(self, primitive: str, C: int, spatial_in: int, stride: int,
              batch_size: int = 1) -> float:
        """Latency (ms) of ``primitive`` on a (batch_size, C, spatial_in, spatial_in) input."""
        key = (primitive, int(C), int(spatial_in), int(stride), int(batch_size))
        try:
            return self._op[key]
        except KeyError:
            raise MissingLatencyError(
                f"no latency for op {dict(zip(OP_KEY, key))}; {_measure_hint()}") from None

    def fixed_ms(self, context: CellContext) -> float:
        """Fixed cost (ms) of a cell in ``context``: everything but its edge ops."""
        try:
            return self._fixed[_context_key(context)]
        except KeyError:
            raise MissingLatencyError(
                f"no fixed cost for context {context}; {_measure_hint()}") from None

    def edge_matrix(self, context: CellContext) -> np.ndarray:
        """(edges x ops) latencies (ms) of every candidate on every edge of ``context``."""
        return np.array([[self.op_ms(name, *key) for name in self.space.primitives]
                         for key in edge_keys(context, self.space)])

    def missing(self, contexts: Iterable[CellContext]) -> list[tuple]:
        """Keys (op keys and contexts) that blocks in ``contexts`` need and the table lacks."""
        absent: dict[tuple, None] = {}
        for context in dict.fromkeys(contexts):
            if _context_key(context) not in self._fixed:
                absent[("fixed", context)] = None
            for key in dict.fromkeys(edge_keys(context, self.space)):
                for name in self.space.primitives:
                    if (name, *key) not in self._op:
                        absent[(name, *key)] = None
        return list(absent)

    def block_arrays(self, contexts: Sequence[CellContext], needed_by: str,
                     advice: str = "measure them with OpLatencyTable.measure(contexts) and "
                                   "merge") -> tuple[np.ndarray, np.ndarray]:
        """(blocks, edges, ops) op latencies and (blocks,) fixed costs (ms) of ``contexts``.

        Raises MissingLatencyError naming what ``needed_by`` needs and the table lacks.
        """
        absent = self.missing(contexts)
        if absent:
            raise MissingLatencyError(f"the lookup table lacks {len(absent)} entries "
                                      f"{needed_by} needs, e.g. {absent[:3]}; {advice}")
        return (np.stack([self.edge_matrix(c) for c in contexts]),
                np.array([self.fixed_ms(c) for c in contexts]))

    def block_ms(self, context: CellContext, probs: np.ndarray | torch.Tensor) -> float:
        """Expected latency (ms): fixed cost + sum_e sum_j p_ej L(op_j on edge e)."""
        probs = torch.as_tensor(probs, dtype=torch.float64)
        return float(self.expected_latency_torch(context, probs))

    def expected_latency_torch(self, context: CellContext, probs: torch.Tensor) -> torch.Tensor:
        """The same expectation as a torch scalar, differentiable in ``probs`` (edges x ops)."""
        self.space.check_probabilities(probs)
        latency = torch.as_tensor(self.edge_matrix(context), dtype=probs.dtype,
                                  device=probs.device)
        return (probs * latency).sum() + self.fixed_ms(context)

    # ------------------------------------------------------------------ measuring

    @classmethod
    def measure(cls, contexts: Iterable[CellContext], space: SearchSpace = DARTS_SPACE, *,
                repeats: int = 30, warmup: int = 5, threads: int | None = 1,
                device: str = "cpu", rounds: int = 1, progress: bool = True,
                runtime: object | None = None) -> OpLatencyTable:
        """Time every op and fixed cost that blocks in ``contexts`` need (tqdm progress), in
        torch eager or, with ``runtime`` (an
        :class:`~lenna_core.latency.onnx_runtime.OnnxRuntimeCpu`), in ONNX Runtime.

        With ``rounds`` > 1, everything is timed that many times, one full pass over the
        keys after another (alternately reversed), and each key keeps its lowest median:
        a measurement that another process disturbed is replaced by an undisturbed one.
        """
        contexts = list(dict.fromkeys(contexts))
        if not contexts:
            raise ValueError("contexts is empty: give the CellContexts the table must cover")
        check_int("rounds", rounds)
        resolve_device(device)
        # `none` (Zero) is always timed: the fixed cost is defined by subtracting it.
        names = dict.fromkeys(("none", *space.primitives))
        keys = list(dict.fromkeys((name, *key) for context in contexts
                                  for key in edge_keys(context, space) for name in names))
        settings = {"repeats": repeats, "warmup": warmup, "threads": threads, "device": device}
        timed = [measure_ops(keys[::-1] if r % 2 else keys, progress=progress, runtime=runtime,
                             **settings)
                 for r in range(rounds)]
        ops = _lowest(pd.concat(timed, ignore_index=True), list(OP_KEY), "latency_ms")
        zero = {tuple(r[1:5]): r[5] for r in ops[[*OP_KEY, "latency_ms"]].itertuples(index=False)
                if r[0] == "none"}
        rows = []
        for r in range(rounds):
            for context in tqdm(contexts[::-1] if r % 2 else contexts, desc="fixed costs",
                                unit="context", disable=not progress):
                zero_ops = [zero[key] for key in edge_keys(context, space)]
                rows.append({**context.to_dict(), **measure_fixed_cost(
                    context, space, zero_ops_ms=zero_ops, runtime=runtime, **settings)})
        fixed = _lowest(pd.DataFrame(rows), list(CONTEXT_KEY), "zero_cell_ms")
        statistic = "median" if rounds == 1 else f"lowest of {rounds} medians"
        meta = table_meta(statistic, FIXED_COST_RULE,
                          {**settings, "rounds": rounds, "space": space.to_dict()},
                          device, runtime)
        return cls(ops, fixed, space, meta)

    def contexts(self) -> list[CellContext]:
        """The block contexts whose fixed costs the table holds."""
        return [CellContext(**{k: (bool(v) if k.startswith("reduction") else int(v))
                               for k, v in zip(CONTEXT_KEY, row)})
                for row in self.fixed[list(CONTEXT_KEY)].itertuples(index=False)]

    def merge(self, other: OpLatencyTable) -> OpLatencyTable:
        """This table with ``other``'s rows added (``other`` wins where both hold a key)."""
        if other.space != self.space:
            raise ValueError("the tables were measured for different search spaces")
        ops = pd.concat([self.ops, other.ops]).drop_duplicates(list(OP_KEY), keep="last")
        fixed = pd.concat([self.fixed, other.fixed]).drop_duplicates(list(CONTEXT_KEY),
                                                                       keep="last")
        return OpLatencyTable(ops, fixed, self.space, self.meta)

    # ------------------------------------------------------------------ files

    def to_csv(self, path: str | os.PathLike) -> None:
        """Write the table to ``path`` and its metadata to ``path + '.meta.json'``."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        frame = pd.concat([self.ops.assign(kind="op"), self.fixed.assign(kind="fixed")],
                          ignore_index=True)
        frame = frame.reindex(columns=list(TABLE_COLUMNS))
        frame.to_csv(path, index=False, float_format="%.6g", lineterminator="\n")
        meta = {**self.meta, "schema_version": SCHEMA_VERSION, "units": {"latency": "ms"},
                "space": self.space.to_dict(), "columns": list(TABLE_COLUMNS),
                "table_sha256": file_sha256(path)}
        _meta_path(path).write_text(json.dumps(with_digest(meta), indent=2, sort_keys=True)
                                    + "\n")

    @classmethod
    def from_csv(cls, path: str | os.PathLike) -> OpLatencyTable:
        """Read a table written by :meth:`to_csv`, checking its metadata."""
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"{path} does not exist; measure a table with "
                                    "OpLatencyTable.measure(contexts) and save it with to_csv")
        if not _meta_path(path).exists():
            raise ValueError(f"{path} has no metadata file {_meta_path(path).name}; it was not "
                             "written by OpLatencyTable.to_csv")
        meta_path = _meta_path(path)
        remedy = "restore the table from version control or measure it again"
        meta = read_json(meta_path, remedy)
        check_schema_version(meta, meta_path, SCHEMA_VERSION, remedy="Measure it again.")
        verify_digest(meta, meta_path, remedy)
        if meta.get("units", {}).get("latency") != "ms":
            raise ValueError(f"{path}: latencies must be in ms, the metadata says "
                             f"{meta.get('units')}")
        content = path.read_bytes()  # one read: the checksum and the table are of the same bytes
        if meta.get("table_sha256") not in (None, hashlib.sha256(content).hexdigest()):
            raise ValueError(f"{path} changed after it was written (its checksum differs from "
                             f"the one in {meta_path.name}): {remedy}")
        try:
            frame = pd.read_csv(io.BytesIO(content))
            if list(frame.columns) != list(TABLE_COLUMNS):
                raise ValueError(f"the columns are not those of schema {SCHEMA_VERSION}")
            ops = frame[frame["kind"] == "op"][[*OP_KEY, "latency_ms", "iqr_ms", "repeats"]]
            ops = ops.astype({c: int for c in OP_KEY[1:]} | {"repeats": int})
            fixed = frame[frame["kind"] == "fixed"][
                [*CONTEXT_KEY, "latency_ms", "iqr_ms", "repeats", "zero_cell_ms",
                 "zero_ops_ms", "preprocess_ms"]]
            fixed = fixed.astype({c: int for c in CONTEXT_KEY[2:]} | {"repeats": int})
            fixed = fixed.astype({"reduction": bool, "reduction_prev": bool})
            space = SearchSpace(**meta["space"])
        except (ValueError, TypeError, KeyError, pd.errors.ParserError) as err:
            raise ValueError(f"{path} cannot be read as an op latency table ({err}): "
                             f"{remedy}") from None
        # A fixed cost is a difference of two medians and may be slightly negative; an op's
        # latency may not.
        latency = frame["latency_ms"].to_numpy(dtype=float)
        bad = ~np.isfinite(latency) | ((frame["kind"] == "op").to_numpy() & (latency < 0))
        if bad.any():
            raise ValueError(f"{path}, line {int(bad.argmax()) + 2}: latency_ms="
                             f"{latency[bad.argmax()].item()!r} must be a finite number of "
                             f"milliseconds (>= 0 for an op): {remedy}")
        return cls(ops, fixed, space, meta)


def linear_expectation(probs: torch.Tensor, matrices: torch.Tensor, fixed: torch.Tensor,
                       scale: float = 1.0, offset: float = 0.0) -> torch.Tensor:
    """``scale * (sum_e sum_j p_ej M_ej + fixed) + offset`` per block (blocks,), differentiable.

    ``probs`` and ``matrices`` are (blocks, edges, ops), ``fixed`` is (blocks,): the lookup
    table's expectation (and, with multiply-adds as ``matrices``, the FLOPs proxy's).
    """
    raw = (probs * matrices.to(probs.dtype)).sum(dim=(1, 2))
    return scale * (raw + fixed.to(probs.dtype)) + offset


def _lowest(frame: pd.DataFrame, key: list[str], by: str) -> pd.DataFrame:
    """Per ``key``, the row with the lowest ``by``, in the order the keys first appear."""
    order = frame.drop_duplicates(key)[key].reset_index(drop=True)
    best = frame.sort_values(by, kind="stable").drop_duplicates(key)
    return order.merge(best, on=key, how="left")


def _meta_path(path: Path) -> Path:
    return path.with_name(path.name + ".meta.json")


# ---------------------------------------------------------------------------- the estimator


def frame_probabilities(X: pd.DataFrame, space: SearchSpace, atol: float = 1e-4) -> np.ndarray:
    """The (rows, edges, ops) probabilities of a dataset frame, every block checked first."""
    check_blocks(X, space, "X", atol=atol)
    return X[probability_columns(space)].to_numpy(dtype=float).reshape(
        len(X), space.num_edges, space.num_ops)


class LookupTableModel(RegressorMixin, BaseEstimator):
    """Expected block latency from an :class:`OpLatencyTable` (scikit-learn regressor).

    ``calibrate=False`` is the pure ProxylessNAS sum; with ``calibrate=True``, :meth:`fit`
    also finds ``scale_`` and ``offset_`` in ``y = scale_ * sum + offset_`` by least squares.
    """

    def __init__(self, table: OpLatencyTable | None = None, calibrate: bool = False) -> None:
        self.table = table
        self.calibrate = calibrate

    def _check_table(self) -> OpLatencyTable:
        if not isinstance(self.table, OpLatencyTable):
            raise ValueError("table must be an OpLatencyTable: read one with "
                             "OpLatencyTable.from_csv(path) or measure one with "
                             "OpLatencyTable.measure(contexts)")
        return self.table

    def table_sum(self, X: pd.DataFrame) -> np.ndarray:
        """The uncalibrated expected latency (ms) of every row of the dataset frame ``X``."""
        table = self._check_table()
        probs = frame_probabilities(X, table.space)
        contexts = contexts_from_frame(X)
        absent = table.missing(contexts)
        if absent:
            raise MissingLatencyError(
                f"the table lacks {len(absent)} entries these rows need, e.g. {absent[:3]}; "
                f"{_measure_hint()}")
        cache: dict[CellContext, tuple[np.ndarray, float]] = {}
        out = np.empty(len(X))
        for i, context in enumerate(contexts):
            if context not in cache:
                cache[context] = (table.edge_matrix(context), table.fixed_ms(context))
            matrix, fixed = cache[context]
            out[i] = float((probs[i] * matrix).sum()) + fixed
        return out

    def fit(self, X: pd.DataFrame, y=None) -> LookupTableModel:
        """Check that the table covers every row; with ``calibrate``, fit scale and offset."""
        sums = self.table_sum(X)
        if self.calibrate:
            if y is None:
                raise ValueError("calibrate=True needs the measured latencies y (ms)")
            y = np.asarray(y, dtype=float)
            if y.shape != sums.shape or not np.isfinite(y).all():
                raise ValueError(f"y must be {len(sums)} finite latencies (ms); got shape "
                                 f"{y.shape}")
            design = np.column_stack([sums, np.ones_like(sums)])
            (self.scale_, self.offset_), *_ = np.linalg.lstsq(design, y, rcond=None)
            self.scale_, self.offset_ = float(self.scale_), float(self.offset_)
        else:
            self.scale_, self.offset_ = 1.0, 0.0
        self.space_ = self.table.space
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Expected latency (ms) of every row of the dataset frame ``X``."""
        check_is_fitted(self, "scale_")
        return self.scale_ * self.table_sum(X) + self.offset_

    def expected_latency_torch(self, context: CellContext, probs: torch.Tensor) -> torch.Tensor:
        """The fitted prediction for one block as a torch scalar, differentiable in ``probs``."""
        try:
            check_is_fitted(self, "scale_")
        except NotFittedError as err:
            raise NotFittedError("fit the model first, or use table.expected_latency_torch for "
                                 "the uncalibrated sum") from err
        return self.scale_ * self.table.expected_latency_torch(context, probs) + self.offset_
