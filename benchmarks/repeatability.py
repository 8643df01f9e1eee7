"""Is a latency repeatable across processes? The same single-path cells, timed in two processes.

Two worker processes each pin themselves to one CPU core (``--core``), fix torch's threads,
build the same cells (same seed: same sampled ops, same weights, same inputs) and warm each
up, then time forward passes when the parent asks. The workers take turns, ``--chunk``
passes at a time, until each has ``--repeats`` timings per cell. A chunk as large as
``--repeats`` is the plain protocol, one process after the other ("sequential"); a small
chunk interleaves them, so that slow changes of the machine's speed (other processes,
the host) reach both alike ("interleaved"). ``--chunks 500,5`` (the default) runs both.

Reported per process and cell: median, minimum and interquartile range (ms), and the
relative difference of the two processes' medians, ``|m1 - m2| / mean(m1, m2)``.
``--clock cpu`` times with the thread's CPU time instead of the wall clock (it leaves out
time the thread was not running, i.e. other processes on the core).

    .venv/bin/python benchmarks/repeatability.py                  # both protocols, core 1
    .venv/bin/python benchmarks/repeatability.py --core 0 --chunks 5 --json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

CELLS = ("normal", "reduction")
CLOCKS = {"wall": time.perf_counter, "cpu": time.thread_time}


def build_cells(args: argparse.Namespace) -> dict:
    """The cells both processes time: ops drawn from uniform probabilities with ``--seed``."""
    import torch

    from lenna_core.latency.blocks import CellContext
    from lenna_core.space.search_space import DARTS_SPACE
    from lenna_core.space.single_path import sample_active

    cells = {}
    for kind in args.cells.split(","):
        context = CellContext.in_network(args.C, kind == "reduction", False, args.spatial,
                                         args.batch)
        generator = torch.Generator().manual_seed(args.seed)
        probs = torch.full((DARTS_SPACE.num_edges, DARTS_SPACE.num_ops),
                           1 / DARTS_SPACE.num_ops)
        active = sample_active(probs, DARTS_SPACE, generator)
        torch.manual_seed(args.seed)
        cell = context.build(active).eval()
        inputs = [torch.randn(shape, generator=generator) for shape in context.input_shapes]
        cells[kind] = (cell, inputs, active)
    return cells


def worker(args: argparse.Namespace) -> None:
    """Serve requests on stdin: a line ``kind n`` asks for ``n`` timed passes of that cell
    (answered as a JSON list of milliseconds)."""
    import torch

    from lenna_core.latency.timing_perturbation import (
        perturb,  # the test mode, when it is switched on
    )

    os.sched_setaffinity(0, {args.core})
    torch.set_num_threads(args.threads)
    clock = CLOCKS[args.clock]
    cells = build_cells(args)
    with torch.inference_mode():
        for cell, inputs, _ in cells.values():
            for _ in range(args.warmup):
                cell(*inputs)
        print(json.dumps({"pid": os.getpid(), "affinity": sorted(os.sched_getaffinity(0)),
                          "threads": torch.get_num_threads(),
                          "active": {k: v[2] for k, v in cells.items()}}), flush=True)
        for line in sys.stdin:
            kind, n = line.split()
            cell, inputs, _ = cells[kind]
            times = []
            for _ in range(int(n)):
                start = clock()
                cell(*inputs)
                times.append(perturb((clock() - start) * 1e3))
            print(json.dumps(times), flush=True)


def _stats(times: list[float]) -> dict:
    q1, median, q3 = np.percentile(times, [25, 50, 75])
    return {"median_ms": float(median), "min_ms": float(np.min(times)),
            "iqr_ms": float(q3 - q1), "repeats": len(times)}


def _ask(process: subprocess.Popen, kind: str, n: int) -> list[float]:
    process.stdin.write(f"{kind} {n}\n")
    process.stdin.flush()
    return json.loads(process.stdout.readline())


def measure(workers: list[subprocess.Popen], hello: list[dict], kind: str, chunk: int,
            repeats: int) -> dict:
    """Time one cell in the two workers taking turns ``chunk`` passes at a time."""
    times: list[list[float]] = [[], []]
    start = time.perf_counter()
    while len(times[1]) < repeats:
        n = min(chunk, repeats - len(times[1]))
        for process, record in zip(workers, times):
            record.extend(_ask(process, kind, n))
    stats = [_stats(t) | {"pid": h["pid"], "affinity": h["affinity"], "threads": h["threads"]}
             for t, h in zip(times, hello)]
    m1, m2 = stats[0]["median_ms"], stats[1]["median_ms"]
    return {"cell": kind, "protocol": "sequential" if chunk >= repeats else "interleaved",
            "chunk": min(chunk, repeats), "processes": stats,
            "seconds": time.perf_counter() - start,
            "relative_difference": abs(m1 - m2) / ((m1 + m2) / 2)}


def run(args: argparse.Namespace) -> list[dict]:
    """Start the two workers, run every protocol on every cell, stop the workers."""
    command = [sys.executable, os.path.abspath(__file__), "--worker"]
    for name in ("core", "threads", "warmup", "C", "spatial", "batch", "seed", "cells",
                 "clock"):
        command += [f"--{name}", str(getattr(args, name))]
    workers = [subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                text=True) for _ in range(2)]
    try:
        hello = [json.loads(w.stdout.readline()) for w in workers]
        if hello[0]["active"] != hello[1]["active"]:
            raise RuntimeError("the two processes built different cells")
        return [measure(workers, hello, kind, chunk, args.repeats)
                for chunk in args.chunk_list for kind in args.cells.split(",")]
    finally:
        for w in workers:
            w.stdin.close()
            w.wait(timeout=60)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--core", type=int, default=1, help="CPU core both processes run on")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--warmup", type=int, default=20, help="untimed passes per cell")
    parser.add_argument("--repeats", type=int, default=500, help="timed passes per process")
    parser.add_argument("--chunks", default="500,5",
                        help="passes per turn, one protocol per comma-separated value")
    parser.add_argument("--C", type=int, default=16, help="channels per node")
    parser.add_argument("--spatial", type=int, default=32, help="input side (pixels)")
    parser.add_argument("--batch", type=int, default=1, help="batch size")
    parser.add_argument("--seed", type=int, default=0, help="seed of the ops and weights")
    parser.add_argument("--cells", default=",".join(CELLS), help="comma-separated cell kinds")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall",
                        help="wall clock or the thread's CPU time")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for name in ("threads", "repeats", "C", "spatial", "batch"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1")
    if args.warmup < 0 or args.seed < 0:
        parser.error("--warmup and --seed must be >= 0")
    if args.core not in os.sched_getaffinity(0):
        parser.error(f"--core {args.core}: this process may run on cores "
                     f"{sorted(os.sched_getaffinity(0))} only")
    kinds = args.cells.split(",")
    if not kinds or any(k not in CELLS for k in kinds):
        parser.error(f"--cells must list kinds from {CELLS}")
    try:
        args.chunk_list = [int(c) for c in args.chunks.split(",")]
    except ValueError:
        parser.error("--chunks must list integers, e.g. 200,5")
    if any(c < 1 for c in args.chunk_list):
        parser.error("--chunks must be >= 1")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.worker:
        worker(args)
        return
    settings = {k: getattr(args, k) for k in ("core", "threads", "warmup", "repeats", "chunks",
                                              "C", "spatial", "batch", "seed", "clock")}
    load_before = os.getloadavg()[0]
    results = run(args)
    settings["load_average_1min"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    if args.json:
        print(json.dumps({"settings": settings, "results": results}))
        return
    print("settings:", ", ".join(f"{k}={v}" for k, v in settings.items()))
    for r in results:
        print(f"{r['cell']} cell, {r['protocol']} (chunk {r['chunk']}, {r['seconds']:.1f} s):")
        for i, p in enumerate(r["processes"], 1):
            print(f"  process {i} (pid {p['pid']}, cores {p['affinity']}, {p['threads']} "
                  f"thread): median {p['median_ms']:.3f} ms, min {p['min_ms']:.3f} ms, "
                  f"IQR {p['iqr_ms']:.3f} ms")
        print(f"  relative difference of the medians: {r['relative_difference']:.2%}")


if __name__ == "__main__":
    main()
