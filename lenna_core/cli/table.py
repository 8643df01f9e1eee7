"""Command line: measure an op latency table on this machine, in torch eager or ONNX Runtime.

    lenna table --out data/devices/here/op_latency_table.csv --contexts-of data/op_latency_table.csv
    lenna table --out data/devices/onnxruntime-xeon-6-167/op_latency_table.csv \\
        --contexts-of data/op_latency_table.csv data/mlp_latency.table.csv \\
        --runtime onnxruntime --rounds 2 --core 1

Every op and fixed cost that the blocks of the given files' contexts need is timed alone
(:meth:`~lenna_core.latency.lookup_table.OpLatencyTable.measure`); a file is an op table
(its contexts) or a labelled dataset (its blocks' contexts). With ``--rounds 2`` every key is
timed twice, in opposite orders, and keeps its lower median.
"""

from __future__ import annotations

import argparse
import os
import time

from lenna_core.latency.dataset import read_dataset
from lenna_core.latency.encoder import contexts_from_frame
from lenna_core.latency.lookup_table import OpLatencyTable
from lenna_core.latency.onnx_runtime import OnnxRuntimeCpu


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
                        help="passes over every key; each keeps its lowest median")
    parser.add_argument("--core", type=int, default=None, metavar="CORE",
                        help="pin this process to one core (a core this process may use)")
    args = parser.parse_args(argv)
    if args.threads < 1 or args.rounds < 1:
        parser.error(f"--threads={args.threads}, --rounds={args.rounds}: both must be "
                     "positive integers")
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
    table = OpLatencyTable.measure(dict.fromkeys(contexts), threads=args.threads,
                                   rounds=args.rounds, runtime=runtime)
    table.to_csv(args.out)
    print(f"{len(table.ops)} ops and {len(table.fixed)} fixed costs in "
          f"{time.perf_counter() - started:.0f} s -> {args.out}")


if __name__ == "__main__":
    main()
