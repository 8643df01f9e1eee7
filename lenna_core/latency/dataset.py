"""Latency datasets: sampled blocks labelled with their expected latency, written resumably.

Each row is one block: a :class:`~lenna_core.latency.blocks.CellContext` taken from a randomly drawn
DARTS network, and one draw of architecture probabilities (edges x primitives). That single
draw is both stored as the row's features and handed to the gate sampler that produces the
label, so features and label cannot disagree (the defect of the original LENNA data).

Rows are appended to a CSV one complete line at a time (write, flush, fsync). A run that is
interrupted, even by ``kill -9``, and started again drops a trailing partial line, skips the
row ids already present, and goes on: no row is lost or duplicated. Settings live in a JSON
metadata file next to the CSV; resuming with different settings is refused. A farm of devices
labels one dataset in shards, one file each (``shard=``, :mod:`lenna_core.latency.shards`),
each resumable the same way, combined by :mod:`lenna_core.latency.shard_merge`.
"""

from __future__ import annotations

import json
import math
import os
import time
import traceback
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy import stats
from tqdm import tqdm

from lenna_core.latency.block_checks import probability_columns
from lenna_core.latency.blocks import CellBank, CellContext, network_cell_contexts
from lenna_core.latency.dataset_files import (
    ALPHA_KINDS,
    CONTEXT_COLUMNS,
    LABEL_COLUMNS,
    SCHEMA_VERSION,
    dataset_columns,
    drop_failed_rows,
    format_row,
    metadata_path,
    read_dataset,
    read_metadata,
    record_rows_file,
    refuse_rows_without_metadata,
    repair_tail,
    write_json_atomically,
)
from lenna_core.latency.profiler import (
    cpu_threads,
    load_average,
    machine_fingerprint,
    resolve_device,
)
from lenna_core.latency.shards import Shard, check_shard, describe_shard, shard_rows
from lenna_core.space.search_space import DARTS_SPACE, SearchSpace
from lenna_core.validation import is_integer

# The file side (columns, reading, metadata) lives in lenna_core.latency.dataset_files; its public
# names are this module's too, where the chapters and earlier code import them from.
__all__ = [
    "ALPHA_KINDS", "CONTEXT_COLUMNS", "GenerationSettings", "LABEL_COLUMNS", "Labeler",
    "SCHEMA_VERSION", "SamplingSpec", "dataset_columns", "describe_dataset", "drop_failed_rows",
    "gate_seed", "held_out_split", "label_dataset", "paired_labels", "probability_columns",
    "read_dataset", "read_metadata", "read_relabellings", "refuse_rows_without_metadata",
    "relabelled", "sample_block", "sample_probabilities", "timing_drift",
]


@dataclass(frozen=True)
class SamplingSpec:
    """How blocks are drawn: a random network, then one of its cells, then probabilities."""

    channels: tuple[int, ...] = (4, 8, 12, 16, 24, 32)
    layers: tuple[int, ...] = (5, 8, 14, 20)
    image_sizes: tuple[int, ...] = (8, 16, 32)
    batch_size: int = 1
    reduction_share: float = 0.4
    alpha_kinds: dict[str, float] = field(default_factory=lambda: {
        "near_uniform": 0.2, "uniform": 0.3, "peaked": 0.3, "onehot": 0.2})

    def __post_init__(self) -> None:
        for name in ("channels", "layers", "image_sizes"):
            values = tuple(getattr(self, name))
            if not values or any(not is_integer(v) or v < 1 for v in values):
                raise ValueError(f"{name}={values!r}: must list positive integers")
            object.__setattr__(self, name, values)
        if not 0.0 <= self.reduction_share <= 1.0:
            raise ValueError(f"reduction_share={self.reduction_share}: must lie in [0, 1]")
        unknown = set(self.alpha_kinds) - set(ALPHA_KINDS)
        if unknown or not self.alpha_kinds or min(self.alpha_kinds.values()) < 0:
            raise ValueError(f"alpha_kinds={self.alpha_kinds}: non-negative weights for "
                             f"kinds among {ALPHA_KINDS}")


def sample_probabilities(kind: str, space: SearchSpace, rng: np.random.Generator) -> np.ndarray:
    """One (edges x ops) probability matrix of the given kind, as float64."""
    shape = (space.num_edges, space.num_ops)
    if kind == "near_uniform":  # where a DARTS search starts: alphas ~ small Gaussian noise
        logits = rng.normal(0.0, 0.3, shape)
    elif kind == "uniform":  # uniform on each edge's simplex
        return rng.dirichlet(np.ones(space.num_ops), space.num_edges)
    elif kind == "peaked":  # sharper, with a random temperature per block
        logits = rng.normal(0.0, 1.0, shape) / math.exp(rng.uniform(math.log(0.1), 0.0))
    elif kind == "derived":  # a derived DARTS cell: two inputs per node, `none` elsewhere
        return _derived_cell(space, rng)
    elif kind == "onehot":  # where a search ends: a discrete cell
        probs = np.zeros(shape)
        probs[np.arange(space.num_edges), rng.integers(space.num_ops, size=space.num_edges)] = 1
        return probs
    else:
        raise ValueError(f"kind={kind!r}: allowed kinds are {ALPHA_KINDS}")
    logits -= logits.max(axis=1, keepdims=True)
    probs = np.exp(logits)
    return probs / probs.sum(axis=1, keepdims=True)


def _derived_cell(space: SearchSpace, rng: np.random.Generator) -> np.ndarray:
    """One-hot rows shaped like a derived cell: per node, two distinct inputs with a random
    op other than ``none``; every other edge ``none``."""
    if "none" not in space.primitives:
        raise ValueError("kind='derived' needs 'none' among the primitives (dropped edges)")
    none = space.primitives.index("none")
    ops = [k for k, name in enumerate(space.primitives) if name != "none"]
    probs = np.zeros((space.num_edges, space.num_ops))
    start = 0
    for node in range(2, space.steps + 2):
        kept = set(rng.choice(node, size=2, replace=False).tolist())
        for src in range(node):
            probs[start + src, int(rng.choice(ops)) if src in kept else none] = 1.0
        start += node
    return probs


def sample_block(row_id: int, seed: int, spec: SamplingSpec,
                 space: SearchSpace = DARTS_SPACE) -> tuple[CellContext, np.ndarray, str]:
    """The block of row ``row_id``: a function of (seed, row_id) alone, so reruns agree."""
    rng = np.random.default_rng([seed, row_id])
    C = int(rng.choice(spec.channels))
    layers = int(rng.choice(spec.layers))
    image_size = int(rng.choice(spec.image_sizes))
    contexts = network_cell_contexts(C, layers, image_size, spec.batch_size, space)
    want_reduction = rng.random() < spec.reduction_share
    pool = [c for c in contexts if c.reduction == want_reduction] or contexts
    context = pool[int(rng.integers(len(pool)))]
    kinds = list(spec.alpha_kinds)
    weights = np.array([spec.alpha_kinds[k] for k in kinds], dtype=float)
    kind = kinds[int(rng.choice(len(kinds), p=weights / weights.sum()))]
    return context, sample_probabilities(kind, space, rng), kind


def gate_seed(seed: int, row_id: int, run_tag: str) -> int:
    """Seed of the gate sampler for one row and run (independent runs use different tags)."""
    return int(np.random.SeedSequence([seed, row_id, zlib.crc32(run_tag.encode())])
               .generate_state(1)[0])


Labeler = Callable[[CellContext, torch.Tensor, torch.Generator, CellBank], dict]


# ---------------------------------------------------------------------------- generation


@dataclass(frozen=True)
class GenerationSettings:
    """Everything that must not change between the sessions that write one dataset."""

    seed: int
    spec: SamplingSpec
    space: SearchSpace
    rule: dict
    device: str
    threads: int | None
    run_tag: str
    shard: Shard | None = None
    runtime: dict | None = None

    def to_dict(self) -> dict:
        settings = {"seed": self.seed, "spec": asdict(self.spec),
                    "space": self.space.to_dict(), "rule": self.rule, "device": self.device,
                    "threads": self.threads, "run_tag": self.run_tag}
        if self.shard is not None:  # an unsharded dataset's settings stay as they were
            settings["shard"] = describe_shard(self.shard)
        if self.runtime is not None:  # nor a torch-eager one's by the runtime
            settings["runtime"] = self.runtime
        return settings


def _start_session(path: Path, settings: GenerationSettings, cpu_core: int | None) -> dict:
    meta_path = metadata_path(path)
    expected = settings.to_dict()
    fingerprint = {**machine_fingerprint(settings.device), **(settings.runtime or {})}
    refuse_rows_without_metadata(path)
    if meta_path.exists():
        meta = read_metadata(path)
        if meta.get("schema_version") != SCHEMA_VERSION:
            raise ValueError(f"{path} was written with schema version "
                             f"{meta.get('schema_version')}, this code writes {SCHEMA_VERSION}: "
                             "write to a new file instead (--out)")
        # Both ways: a shard's file resumed without --shard, or the reverse, differs too.
        changed = sorted(k for k in set(expected) | set(meta["settings"])
                         if json.dumps(meta["settings"].get(k), sort_keys=True)
                         != json.dumps(expected.get(k), sort_keys=True))
        if changed:
            raise ValueError(f"{path} was generated with other settings ({', '.join(changed)}); "
                             "resume with the same settings or write to a new file (--out)")
        if meta["machine"]["device_name"] != fingerprint["device_name"]:
            raise ValueError(f"{path} was measured on {meta['machine']['device_name']!r}, this "
                             f"machine is {fingerprint['device_name']!r}; latencies of two "
                             "devices must not share a dataset: write to a new file (--out)")
        if meta["machine"].get("timing_perturbation") != fingerprint["timing_perturbation"]:
            raise ValueError(f"{path}: its rows were timed with timing_perturbation="
                             f"{meta['machine'].get('timing_perturbation')}, this session with "
                             f"{fingerprint['timing_perturbation']}; perturbed and real timings "
                             "must not share a dataset: set or unset LENNA_PERTURB_TIMINGS as "
                             "before, or write to a new file (--out)")
    else:
        meta = {"schema_version": SCHEMA_VERSION, "units": {"latency": "ms"},
                "settings": expected, "machine": fingerprint, "sessions": [],
                "description": "expected latency of single-path cells under binary gates"}
    meta["sessions"].append({
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu_core": cpu_core, "load_average_before": fingerprint["load_average_1_5_15"]})
    write_json_atomically(meta_path, meta)
    return meta


def _finish_session(path: Path, meta: dict, written: int, failed: int) -> None:
    load = load_average()
    meta["sessions"][-1].update(
        finished=datetime.now(UTC).isoformat(timespec="seconds"),
        rows_written=written, rows_failed=failed,
        load_average_after=[round(x, 2) for x in load])
    record_rows_file(path, meta)
    write_json_atomically(metadata_path(path), meta)


def label_dataset(path: str | os.PathLike, row_ids: Iterable[int], labeler: Labeler,
                  rule: dict, *, seed: int = 0, spec: SamplingSpec | None = None,
                  space: SearchSpace = DARTS_SPACE, device: str = "cpu",
                  threads: int | None = 1, run_tag: str = "main",
                  cpu_core: int | None = None, progress: bool = True,
                  shard: Shard | None = None, runtime: dict | None = None) -> dict:
    """Label the blocks ``row_ids`` and append them to ``path``, resuming where it stopped.

    ``labeler(context, probs, generator, bank)`` returns the label columns (see
    :data:`LABEL_COLUMNS`; ``seconds`` is filled in here); ``rule`` describes it in the
    metadata. ``shard=(i, n)`` labels only the ids of ``row_ids`` that shard ``i`` of ``n``
    holds (:func:`~lenna_core.latency.shards.in_shard`) and records the shard in the metadata,
    so its file resumes as that shard alone. ``runtime`` is what an inference runtime adds to
    the machine record (:func:`~lenna_core.latency.onnx_runtime.runtime_record`) when the
    labeler times its cells there. Returns counts of rows written, skipped (already
    present) and failed.
    """
    path = Path(path)
    spec = spec or SamplingSpec()
    resolve_device(device)
    if threads is not None and threads < 1:
        raise ValueError(f"threads={threads}: must be a positive integer or None")
    shard = None if shard is None else check_shard(shard)
    row_ids = shard_rows(row_ids, shard)
    settings = GenerationSettings(seed, spec, space, rule, device, threads, run_tag, shard,
                                  runtime)
    path.parent.mkdir(parents=True, exist_ok=True)
    if cpu_core is not None:
        os.sched_setaffinity(0, {cpu_core})
    meta = _start_session(path, settings, cpu_core)
    columns = dataset_columns(space)
    done: set[int] = set()
    if path.exists() and path.stat().st_size > 0:
        if repair_tail(path):
            print(f"dropped a partial last line of {path} (an interrupted write)")
        done = set(read_dataset(path, space)["row_id"].astype(int))
    else:
        path.write_text(format_row(columns))
    todo = [int(i) for i in row_ids if int(i) not in done]
    written = failed = 0
    # The whole loop on the timing's threads: see make_labeler in lenna_core.latency.labeller.
    with cpu_threads(threads if resolve_device(device).type == "cpu" else None), \
            open(path, "a", newline="") as out, \
            tqdm(todo, desc=f"labelling {path.name}", unit="block", disable=not progress) as bar:
        for row_id in bar:
            context, probs, kind = sample_block(row_id, seed, spec, space)
            started = time.perf_counter()
            record = {"row_id": row_id, "alpha_kind": kind,
                      **{k: int(v) if isinstance(v, bool) else v  # booleans stored as 0/1
                         for k, v in context.to_dict().items()}}
            record.update(zip(probability_columns(space), probs.ravel().tolist()))
            try:
                generator = torch.Generator().manual_seed(gate_seed(seed, row_id, run_tag))
                bank = CellBank(context, space).to(device)
                # The one draw `probs` is what the gates sample from: no second draw exists.
                label = labeler(context, torch.from_numpy(probs), generator, bank)
                record.update(label, status="ok", error="")
            except (RuntimeError, ValueError, MemoryError) as err:
                failed += 1
                reason = "".join(traceback.format_exception_only(err)).strip().splitlines()[0]
                record.update(status="failed", error=reason[:300])
            record["seconds"] = round(time.perf_counter() - started, 4)
            out.write(format_row([record.get(c, "") for c in columns]))
            out.flush()
            os.fsync(out.fileno())
            written += 1
    _finish_session(path, meta, written, failed)
    return {"written": written, "skipped": len(done), "failed": failed}


# ---------------------------------------------------------------------------- reading back


def paired_labels(first: pd.DataFrame, second: pd.DataFrame) -> pd.DataFrame:
    """Rows labelled successfully in both datasets, with both labels side by side."""
    ok = ["row_id", "latency_ms"]
    a = first.loc[first["status"] == "ok", ok + ["reduction", "alpha_kind"]]
    b = second.loc[second["status"] == "ok", ok]
    return a.merge(b, on="row_id", suffixes=("_first", "_second"))


def held_out_split(frame: pd.DataFrame, test_fraction: float = 0.2,
                   seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The seeded (train, test) split of a dataset's labelled rows that chapter 4 scores on."""
    from sklearn.model_selection import train_test_split

    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction={test_fraction}: must lie strictly between 0 and 1")
    ok = frame[frame["status"] == "ok"].reset_index(drop=True)
    return train_test_split(ok, test_size=test_fraction, random_state=seed)


def read_relabellings(paths: Sequence[str | os.PathLike],
                      dataset_path: str | os.PathLike) -> list[pd.DataFrame]:
    """Read other labellings of a dataset's blocks, checking that each labelled the same
    blocks (seed, sampling, device) in the same milliseconds (``--scale-from`` the dataset)."""
    reference = read_metadata(dataset_path)["settings"]
    frames = []
    for path in paths:
        settings = read_metadata(path)["settings"]
        for key in ("seed", "spec", "device", "space"):
            if settings.get(key) != reference.get(key):
                raise ValueError(f"{path} has {key}={settings.get(key)!r} but {dataset_path} "
                                 f"{reference.get(key)!r}: it labelled other blocks")
        if settings["rule"]["reference_ms"] != reference["rule"]["reference_ms"]:
            raise ValueError(f"{path} is scaled by another reference-cell calibration than "
                             f"{dataset_path}: label it with --scale-from {dataset_path}")
        frames.append(read_dataset(path))
    return frames


def relabelled(frame: pd.DataFrame, labellings: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """``frame``'s rows, ``latency_ms`` replaced by the geometric mean of other labellings.

    Each labelling's own label is kept as ``latency_ms_1``, ``latency_ms_2``, ... (the noise
    floor between them); the columns that described the old label (its standard error,
    resets, time) are dropped. A row of ``frame`` that a labelling lacks or failed on is an
    error: a label averaged over fewer labellings would be noisier than the rest.
    """
    if not labellings:
        raise ValueError("labellings is empty: pass at least one labelled dataset")
    old_label = ["latency_ms", "label_rel_se", "resets", "forward_passes", "seconds", "error"]
    out = frame.drop(columns=[c for c in old_label if c in frame]).reset_index(drop=True)
    columns = []
    for k, labelling in enumerate(labellings, start=1):
        labels = labelling.loc[labelling["status"] == "ok"].set_index("row_id")["latency_ms"]
        missing = sorted(set(out["row_id"]) - set(labels.index))
        if missing:
            raise ValueError(f"labelling {k} has no label for {len(missing)} of the "
                             f"{len(out)} rows (row_id {missing[:5]}...): label them with "
                             "the same command (it resumes), or drop those rows first")
        columns.append(f"latency_ms_{k}")
        out[columns[-1]] = labels.loc[out["row_id"]].to_numpy(dtype=float)
    out["latency_ms"] = stats.gmean(out[columns].to_numpy(), axis=1)
    return out.copy()


def describe_dataset(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows and latency (ms) by cell type and kind of probabilities."""
    ok = frame[frame["status"] == "ok"].assign(
        cell=lambda d: np.where(d["reduction"], "reduction", "normal"))
    return (ok.groupby(["cell", "alpha_kind"])["latency_ms"]
            .agg(rows="size", median_ms="median", min_ms="min", max_ms="max").round(3))


def timing_drift(row: pd.Series, space: SearchSpace | None = None, *, windows: int = 6,
                 passes: int = 50, threads: int | None = 1) -> pd.DataFrame:
    """Time the most likely single-path cell of a dataset row in consecutive windows.

    Returns, per window of ``passes`` timings, the median and the 10% quantile (ms): how much
    the timing conditions drift over a few seconds on this machine.
    """
    from lenna_core.latency.encoder import contexts_from_frame
    from lenna_core.latency.profiler import measure_latency

    space = space or DARTS_SPACE
    context = contexts_from_frame(row.to_frame().T)[0]
    probs = row[probability_columns(space)].to_numpy(dtype=float).reshape(
        space.num_edges, space.num_ops)
    bank = CellBank(context, space)
    bank.warm_up()
    cell = bank.select(probs.argmax(axis=1).tolist())
    result = measure_latency(cell, context.input_shapes, repeats=windows * passes, warmup=5,
                             threads=threads)
    times = np.array(result.times_ms).reshape(windows, passes)
    return pd.DataFrame({"window": range(windows), "median_ms": np.median(times, axis=1),
                         "p10_ms": np.quantile(times, 0.1, axis=1)}).round(3)
