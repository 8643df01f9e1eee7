"""Command line: measure an op latency table on this machine, in torch eager or ONNX Runtime.

    lenna table --out data/devices/here/op_latency_table.csv --contexts-of data/op_latency_table.csv
    lenna table --out data/devices/onnxruntime-xeon-6-167/op_latency_table.csv \\
        --contexts-of data/op_latency_table.csv data/mlp_latency.table.csv \\
        --runtime onnxruntime --rounds 2 --core 1

    lenna table --out data/devices/onnxruntime-xeon-6-167/cell_op_table.csv \\
        --contexts-of data/devices/onnxruntime-xeon-6-167/pool.csv \\
        data/devices/onnxruntime-xeon-6-167/precise.csv --runtime onnxruntime --probe-cells \\
        --scale-from data/devices/onnxruntime-xeon-6-167/pool.csv --core 1

Every op and fixed cost that the blocks of the given files' contexts need is timed alone
(:meth:`~lenna_core.latency.lookup_table.OpLatencyTable.measure`); a file is an op table
(its contexts) or a labelled dataset (its blocks' contexts). With ``--rounds 2`` every key is
timed twice, in opposite orders, and keeps its lower median. With ``--probe-cells`` the costs
come from whole cells timed as the labeller times blocks, in the milliseconds of the
``--scale-from`` dataset's labels (:mod:`~lenna_core.latency.cell_table`).
"""

from __future__ import annotations

import argparse
import os
import time

from lenna_core.latency.cell_table import measure_cell_table
from lenna_core.latency.dataset import read_dataset
from lenna_core.latency.encoder import contexts_from_frame
from lenna_core.latency.labeller import reference_ms_from
from lenna_core.latency.lookup_table import OpLatencyTable
from lenna_core.latency.onnx_reference import OnnxReferenceClock
from lenna_core.latency.onnx_runtime import OnnxRuntimeCpu, runtime_record
from lenna_core.latency.reference_clock import ReferenceClock


def contexts_of(path: str) -> list:
    """The block contexts of an op table (``.csv`` with a ``.csv.meta.json`` naming a table)
    or of a labelled dataset."""
    try:
        return OpLatencyTable.from_csv(path).contexts()
    except (KeyError, ValueError):  # not a table: read it as a dataset
        frame = read_dataset(path)
        return contexts_from_frame(frame[frame["status"] == "ok"])


def main(argv: list[str] | None = None) -> None:
    """Parse the command line, measure the table and write it."""
    parser = argparse.ArgumentParser(
        prog="lenna table", description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        epilog="Latencies are written in milliseconds of this machine, with the machine, the "
               "runtime and the settings in <out>.meta.json.")
    parser.add_argument("--out", required=True, metavar="CSV", help="table file to write")
    parser.add_argument("--contexts-of", nargs="+", required=True, metavar="CSV",
                        help="op tables or datasets whose block contexts the table must cover")
    parser.add_argument("--runtime", choices=("torch", "onnxruntime"), default="torch",
                        help="what runs the ops: torch eager or ONNX Runtime's CPU provider")
    parser.add_argument("--threads", type=int, default=1, metavar="N",
                        help="threads while timing (a positive integer)")
    parser.add_argument("--rounds", type=int, default=2, metavar="N",
                        help="passes over every key; each keeps its lowest median (with "
                             "--probe-cells: the mean over every pass's cells)")
    parser.add_argument("--probe-cells", action="store_true",
                        help="derive the op costs from whole cells timed against the reference "
                             "cell, as labels are (instead of each op alone)")
    parser.add_argument("--scale-from", default=None, metavar="CSV",
                        help="with --probe-cells: the dataset whose reference-cell calibration "
                             "scales the table (default: calibrate here)")
    parser.add_argument("--cells", type=int, default=4, metavar="N",
                        help="with --probe-cells: fresh cells timed per probe")
    parser.add_argument("--pairs", type=int, default=5, metavar="N",
                        help="with --probe-cells: pass pairs per cell")
    parser.add_argument("--core", type=int, default=None, metavar="CORE",
                        help="pin this process to one core (a core this process may use)")
    args = parser.parse_args(argv)
    if min(args.threads, args.rounds, args.cells, args.pairs) < 1:
        parser.error(f"--threads={args.threads}, --rounds={args.rounds}, --cells={args.cells}, "
                     f"--pairs={args.pairs}: each must be a positive integer")
    if args.scale_from is not None and not args.probe_cells:
        parser.error("--scale-from scales probe cells: add --probe-cells, or leave it out")
    if args.core is not None:
        allowed = sorted(os.sched_getaffinity(0))
        if args.core not in allowed:
            parser.error(f"--core={args.core}: this process may run on cores {allowed}")
        os.sched_setaffinity(0, {args.core})
    contexts: list = []
    for path in args.contexts_of:
        try:
            contexts += contexts_of(path)
        except (OSError, ValueError) as err:
            parser.error(f"--contexts-of {path}: {err}")
    runtime = OnnxRuntimeCpu(args.threads) if args.runtime == "onnxruntime" else None
    started = time.perf_counter()
    if args.probe_cells:
        table = _probe_table(parser, args, contexts, runtime)
    else:
        table = OpLatencyTable.measure(dict.fromkeys(contexts), threads=args.threads,
                                       rounds=args.rounds, runtime=runtime)
    table.to_csv(args.out)
    print(f"{len(table.ops)} ops and {len(table.fixed)} fixed costs in "
          f"{time.perf_counter() - started:.0f} s -> {args.out}")


def _probe_table(parser: argparse.ArgumentParser, args: argparse.Namespace, contexts: list,
                 runtime: OnnxRuntimeCpu | None) -> OpLatencyTable:
    """The table from probe cells, in the milliseconds of ``--scale-from``'s labels."""
    if runtime is None:
        clock = ReferenceClock(threads=args.threads)
    else:
        clock = OnnxReferenceClock(runtime=runtime)
    if args.scale_from is None:
        return measure_cell_table(contexts, clock, clock.calibrate(), cells=args.cells,
                                  pairs=args.pairs, rounds=args.rounds)
    wanted = None if runtime is None else runtime_record(args.threads)
    try:
        reference_ms = reference_ms_from(args.scale_from, wanted, args.threads)
    except ValueError as err:
        parser.error(f"--scale-from={args.scale_from}: {err}")
    return measure_cell_table(contexts, clock, reference_ms, cells=args.cells, pairs=args.pairs,
                              rounds=args.rounds, reference_from=os.path.basename(args.scale_from))


if __name__ == "__main__":
    main()
