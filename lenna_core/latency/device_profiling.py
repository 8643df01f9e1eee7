"""Profile this machine and adapt a latency model to it: label fresh blocks within a time
budget, measure its op table over their contexts, adapt, and save the result to a device
folder. ``lenna transfer`` (:mod:`lenna_core.cli.transfer`) is its command line."""


from __future__ import annotations

import math
import time
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from lenna_core.latency.blocks import CellContext
from lenna_core.latency.dataset import label_dataset, read_dataset, read_metadata
from lenna_core.latency.device_folder import write_manifest
from lenna_core.latency.device_identity import device_identity
from lenna_core.latency.encoder import contexts_from_frame
from lenna_core.latency.labeller import DEFAULT_RULE, describe_rule, make_labeler
from lenna_core.latency.lookup_table import OpLatencyTable
from lenna_core.latency.mlp_model import MLPLatency
from lenna_core.latency.reference_clock import ReferenceClock
from lenna_core.latency.transfer import METHODS, AdaptedLatency, adapt
from lenna_core.validation import check_int

PILOT_BLOCKS = 5


def profile_device(path: str | Path, *, blocks: int | None = None, budget_s: float = 120.0,
                   seed: int = 1, device: str = "cpu", threads: int = 1,
                   core: int | None = None) -> tuple[pd.DataFrame, float]:
    """Label blocks on this machine into ``path`` (resumable) until ``blocks`` are labelled
    or about ``budget_s`` seconds are spent; returns the labelled rows and the seconds."""
    check_int("blocks", blocks, optional=True, hint=" (None: as many as the budget allows)")
    if not budget_s > 0:
        raise ValueError(f"budget_s={budget_s!r}: must be a positive number of seconds")
    path = Path(path)
    started = time.perf_counter()
    clock = ReferenceClock(device=device, threads=threads)
    meta_path = Path(str(path) + ".meta.json")
    reference_ms = (read_metadata(path)["settings"]["rule"]["reference_ms"]
                    if meta_path.exists() else clock.calibrate())
    labeler = make_labeler(DEFAULT_RULE, clock, reference_ms, device=device, threads=threads)

    def label(rows: range) -> None:
        label_dataset(path, rows, labeler, describe_rule(DEFAULT_RULE, reference_ms), seed=seed,
                      device=device, threads=threads, run_tag="transfer", cpu_core=core,
                      progress=False)

    deadline = started + budget_s
    pilot = PILOT_BLOCKS if blocks is None else min(PILOT_BLOCKS, blocks)
    pilot_started = time.perf_counter()
    label(range(pilot))
    # Wall time per block, file writes included (a resumed pilot costs nothing: use 0.2 s).
    per_block = max((time.perf_counter() - pilot_started) / pilot, 0.2)
    affordable = pilot + max(0, math.floor((deadline - time.perf_counter()) / per_block))
    if blocks is not None and blocks > affordable:
        raise ValueError(f"blocks={blocks}: labelling takes about {per_block:.2f} s per block "
                         f"here, so {blocks} blocks need about {blocks * per_block:.0f} s, more "
                         f"than budget_s={budget_s:g}; raise the budget or ask for at most "
                         f"{affordable} blocks (the {pilot} labelled so far are kept in {path})")
    done, target = pilot, blocks if blocks is not None else math.inf
    while done < target and time.perf_counter() < deadline:
        # Chunks sized to the time left (20 blocks at most), so the budget holds to about a
        # block; rows a resumed file already holds cost nothing and keep the last estimate.
        left = deadline - time.perf_counter()
        chunk = int(min(target - done, max(1, left / per_block), 20))
        chunk_started = time.perf_counter()
        label(range(done, done + chunk))
        per_block = max((time.perf_counter() - chunk_started) / chunk, per_block / 4, 1e-3)
        done += chunk
    frame = read_dataset(path)
    return frame[frame["status"] == "ok"].reset_index(drop=True), time.perf_counter() - started


def measure_op_table(frame: pd.DataFrame, *, device: str = "cpu", threads: int = 1,
                     rounds: int = 2, also: Sequence[CellContext] = ()
                     ) -> tuple[OpLatencyTable, float]:
    """The op table of this machine over the contexts of the blocks in ``frame`` and ``also``
    (every op and fixed cost once per round, each key's lowest median); returns it and the
    seconds."""
    started = time.perf_counter()
    contexts = sorted({*contexts_from_frame(frame), *also}, key=str)
    table = OpLatencyTable.measure(contexts, rounds=rounds, device=device, threads=threads,
                                   progress=False)
    return table, time.perf_counter() - started


def adapt_and_save(source: MLPLatency, source_name: str, calibration: pd.DataFrame,
                   blocks: pd.DataFrame, out_dir: str | Path, *, seed: int, seconds: float,
                   methods: tuple[str, ...] = METHODS, device: str = "cpu", threads: int = 1,
                   notes: str = "", **manifest: object) -> tuple[AdaptedLatency, float]:
    """Measure this machine's op table over ``blocks``' contexts and those of the source's
    table, adapt ``source`` on the ``calibration`` blocks (labelled in ``seconds``) and save
    the table, the adapted model and a manifest in ``out_dir``; returns the model and the
    table's seconds."""
    out = Path(out_dir)
    here = device_identity(device, threads, batch_size=1)
    # Every context the source's own table prices too, so that the adapted model prices
    # every block the source could (a search's target network among them), not only the
    # contexts a short profile happened to draw.
    source_table = getattr(getattr(source, "prior_", None), "table", None)
    table, table_seconds = measure_op_table(
        blocks, device=device, threads=threads,
        also=source_table.contexts() if source_table is not None else ())
    table.to_csv(out / "op_latency_table.csv")
    adapted = adapt(source, calibration, calibration["latency_ms"], methods=methods, seed=seed,
                    device=here, source_name=source_name,
                    profiling_seconds=round(seconds + table_seconds, 1), table=table)
    adapted.save(out / "mlp_latency")
    write_manifest(out, {"blocks": "blocks.csv"}, here, models={"adapted": "mlp_latency"},
                   notes=notes, method=adapted.method, tables={"op_table": "op_latency_table.csv"},
                   op_table_seconds=round(table_seconds, 1), **manifest)
    return adapted, table_seconds


def load_adapted(out_dir: str | Path) -> tuple[AdaptedLatency, float]:
    """The model :func:`adapt_and_save` wrote to ``out_dir`` (checked against this machine)
    and the reference cell's ms its blocks' labels are scaled by."""
    out = Path(out_dir)
    missing = [name for name in ("manifest.json", "mlp_latency.transfer.json", "blocks.csv")
               if not (out / name).exists()]
    if missing:
        raise ValueError(f"out_dir={str(out)!r} holds no adapted model ({', '.join(missing)} "
                         "missing): profile this machine first (chapter 5, or lenna transfer "
                         f"--out-dir {out})")
    reference_ms = read_metadata(out / "blocks.csv")["settings"]["rule"]["reference_ms"]
    return AdaptedLatency.load(out / "mlp_latency"), float(reference_ms)


def transfer_to_this_device(model_path: str | Path, out_dir: str | Path, *,
                            blocks: int | None = None, budget_s: float = 120.0, seed: int = 1,
                            methods: tuple[str, ...] = METHODS, device: str = "cpu",
                            threads: int = 1, core: int | None = None) -> AdaptedLatency:
    """Profile this machine (:func:`profile_device`, then its op table over the blocks'
    contexts) and adapt ``model_path`` to it; saves ``blocks.csv``,
    ``op_latency_table.csv``, ``mlp_latency.*`` and ``manifest.json`` in ``out_dir``."""
    out = Path(out_dir)
    source = MLPLatency.load(model_path, check_device_here=False)
    frame, seconds = profile_device(out / "blocks.csv", blocks=blocks, budget_s=budget_s,
                                    seed=seed, device=device, threads=threads, core=core)
    failed = len(read_dataset(out / "blocks.csv")) - len(frame)
    if len(frame) < 3:
        raise ValueError(f"only {len(frame)} blocks labelled ({failed} failed; see the status "
                         f"column of {out / 'blocks.csv'}): a transfer needs at least 3; raise "
                         "the budget or fix what made the rows fail, then run again")
    adapted, _ = adapt_and_save(source, str(model_path), frame, frame, out, seed=seed,
                                seconds=seconds, methods=methods, device=device,
                                threads=threads, notes=f"lenna transfer from {model_path}",
                                blocks_labelled=len(frame), blocks_failed=failed)
    return adapted
