"""Command line: label sampled blocks with their expected latency on this machine.

    python -m lenna_core.cli.label --out data/latency_dataset.csv --rows 3000 --core 1
    python -m lenna_core.cli.label --out data/latency_noise_floor.csv --rows 300 \\
        --run-tag repeat --scale-from data/latency_dataset.csv --core 1

The second command re-labels the same blocks with independent gates and timings (the noise
floor). Interrupt either at any time; the same command resumes where it stopped.

Timing on this kind of machine drifts in phases: the same cell's median moves by 20% or more
over a second, on an idle machine too. A reference cell timed right after every sampled cell
sees the same phase, so each reset records the *ratio* of the two, and the label is the mean
ratio times the reference cell's latency, calibrated once per dataset. (On this CPU that cut
the disagreement between two independent labellings of the same blocks from 19% to 5%.)

More precise labels, for the blocks chapter 4 holds out (run it again with
``--run-tag precise_repeat`` into ``latency_dataset_precise_repeat.csv`` for their noise
floor):

    python -m lenna_core.cli.label --out data/latency_dataset_precise.csv --rows 3000 \
        --held-out-of data/latency_dataset.csv --target-rel-error 0.01 --timings-per-reset 3 \
        --control-table data/op_latency_table.csv --run-tag precise \
        --scale-from data/latency_dataset.csv --core 0

Three pass pairs per reset average the timing jitter of one pass, and the op table's
prediction for each drawn cell (a control variate) removes most of the spread that comes from
which ops the gates drew; a label then needs far fewer resets for the same standard error.
A row that fails is recorded as failed and the run goes on; ``--retry-failed`` labels such
rows again.

On a farm of identical devices, each labels a disjoint share of the rows into a file of its
own, all scaled by one calibration (a dataset labelled on one of them, copied to the others),
and ``lenna merge`` combines the files once every shard's command has finished:

    lenna label --out calib.csv --rows 1                       # on one device: calibrates
    lenna label --out shard0.csv --rows 3000 --shard 0/4 --scale-from calib.csv   # device 0
    ...                                                        # devices 1-3: --shard 1/4 ...
    lenna merge --out data/farm.csv shard0.csv shard1.csv shard2.csv shard3.csv

A shard's command, run again, resumes that shard (and refuses another shard's file).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

from lenna_core.latency.dataset import (
    SamplingSpec,
    drop_failed_rows,
    held_out_split,
    label_dataset,
    read_dataset,
    read_metadata,
    refuse_rows_without_metadata,
)
from lenna_core.latency.labeller import (
    DEFAULT_RULE,
    describe_rule,
    make_labeler,
    reference_ms_from,
)
from lenna_core.latency.lookup_table import OpLatencyTable
from lenna_core.latency.onnx_reference import OnnxReferenceClock
from lenna_core.latency.onnx_runtime import OnnxRuntimeCpu, runtime_record
from lenna_core.latency.profiler import load_average, resolve_device
from lenna_core.latency.reference_clock import ReferenceClock
from lenna_core.latency.shards import parse_shard

#: Load from other work (1-minute load average less this run's threads) worth a warning:
#: ONNX Runtime's labels came out 7% higher with other work on the sibling core.
BUSY_LOAD = 0.5


def busy_machine_note(load_1min: float, own_threads: int, when: str) -> str | None:
    """A warning when the 1-minute load average ``load_1min`` says that other work than this
    run's ``own_threads`` shares the machine ``when`` ("before labelling", ...); None if not."""
    others = load_1min - own_threads
    if not others >= BUSY_LOAD:  # NaN where the platform has no load average
        return None
    return (f"warning: the machine was busy {when} (1-minute load average {load_1min:.2f}, "
            f"{others:.2f} of it other work): labels move with load on the other cores (ONNX "
            "Runtime's came out 7% higher); label on an otherwise idle machine, one labelling "
            "at a time")


def _warn_if_busy(own_threads: int, when: str) -> None:
    note = busy_machine_note(load_average()[0], own_threads, when)
    if note:
        print(note, file=sys.stderr)


def check_run_options(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuse bad --device, --threads, --core and --scale-from values before anything runs,
    naming the option (``parser.error`` exits with status 2)."""
    if args.runtime == "onnxruntime" and args.device != "cpu":
        parser.error(f"--device={args.device} with --runtime onnxruntime: ONNX Runtime is timed "
                     "on the CPU here; leave --device at 'cpu'")
    try:
        resolve_device(args.device, "--device")
    except ValueError as err:
        parser.error(str(err))
    if args.threads < 1:
        parser.error(f"--threads={args.threads}: must be a positive integer")
    if args.batch_size < 1:
        parser.error(f"--batch-size={args.batch_size}: must be a positive integer")
    if args.core is not None:
        allowed = sorted(os.sched_getaffinity(0))
        if args.core not in allowed:
            parser.error(f"--core={args.core}: this process may run on cores {allowed}")
    try:
        refuse_rows_without_metadata(args.out)
    except ValueError as err:
        parser.error(f"--out={args.out}: {err}")
    if args.scale_from is not None:
        meta = Path(args.scale_from + ".meta.json")
        if not Path(args.scale_from).exists() or not meta.exists():
            parser.error(f"--scale-from={args.scale_from}: no such dataset (it and {meta.name} "
                         "must exist); without --scale-from the run calibrates itself")


def build_parser() -> argparse.ArgumentParser:
    """The ``lenna label`` command line, every option documented with its unit."""
    parser = argparse.ArgumentParser(
        prog="lenna label", description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        epilog="Latencies are written in milliseconds (ms) of this machine, with the device, "
               "settings and seeds in <out>.meta.json. Interrupt at any time; the same "
               "command resumes.")
    parser.add_argument("--out", required=True, metavar="CSV",
                        help="dataset file to write or resume (its .meta.json goes beside it)")
    parser.add_argument("--rows", type=int, required=True, metavar="N",
                        help="label the blocks with row ids 0..N-1 (a positive integer)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the block draws (which blocks row ids stand for)")
    parser.add_argument("--run-tag", default="main",
                        help="another tag gives independent gate draws for the same blocks")
    parser.add_argument("--scale-from", default=None, metavar="CSV",
                        help="reuse this dataset's calibrated reference latency (ms); the file "
                             "and its .meta.json must exist")
    parser.add_argument("--device", default="cpu", help="'cpu', 'cuda' or 'cuda:N'")
    parser.add_argument("--runtime", choices=("torch", "onnxruntime"), default="torch",
                        help="what runs the cells: torch eager, or ONNX Runtime's CPU provider "
                             "(cells composed from ops exported once per context; CPU only)")
    parser.add_argument("--threads", type=int, default=1, metavar="N",
                        help="torch threads while timing (a positive integer)")
    parser.add_argument("--batch-size", type=int, default=1, metavar="N",
                        help="images per forward pass of every block (a positive integer; "
                             "HELP counts another batch size as another device)")
    parser.add_argument("--core", type=int, default=None, metavar="CORE",
                        help="pin this process to one core (a core this process may use)")
    parser.add_argument("--alpha-kinds", default=None,
                        help="weights of the probability kinds, e.g. 'derived=1' "
                             "(default: SamplingSpec's mix)")
    parser.add_argument("--target-rel-error", type=float, default=DEFAULT_RULE.target_rel_error,
                        metavar="FRACTION",
                        help="stop a row when its label's relative standard error is this low "
                             "(0.04 = 4%%)")
    parser.add_argument("--timings-per-reset", type=int,
                        default=DEFAULT_RULE.timings_per_reset,
                        help="sampled/reference pass pairs per gate reset (their median ratio)")
    parser.add_argument("--control-table", default=None, metavar="CSV",
                        help="op latency table (chapter 1) whose prediction for each drawn cell "
                             "corrects the label (a control variate: fewer resets)")
    parser.add_argument("--retry-failed", action="store_true",
                        help="label again the rows an earlier run of --out failed on (they "
                             "are removed from the file first)")
    parser.add_argument("--held-out-of", default=None, metavar="CSV",
                        help="label only the rows chapter 4 holds out of this dataset "
                             "(its seeded split, --test-fraction; instead of 0..rows-1)")
    parser.add_argument("--test-fraction", type=float, default=0.2, metavar="FRACTION",
                        help="with --held-out-of: the share of that dataset chapter 4 holds "
                             "out (its test split)")
    parser.add_argument("--shard", default=None, metavar="I/N",
                        help="label only shard I of N (0 <= I < N): the rows whose id leaves "
                             "remainder I when divided by N; each device of a farm runs one "
                             "into its own --out, and `lenna merge` combines them")
    return parser


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and generate (or resume) a dataset."""
    parser = build_parser()
    args = parser.parse_args(argv)
    check_run_options(parser, args)
    try:
        rule = replace(DEFAULT_RULE, target_rel_error=args.target_rel_error,
                       timings_per_reset=args.timings_per_reset)
    except ValueError as err:
        parser.error(str(err))
    control = OpLatencyTable.from_csv(args.control_table) if args.control_table else None
    spec = SamplingSpec(batch_size=args.batch_size)
    if args.alpha_kinds:
        try:
            kinds = {k: float(v) for k, v in (item.split("=") for item in
                                              args.alpha_kinds.split(","))}
            spec = SamplingSpec(alpha_kinds=kinds, batch_size=args.batch_size)
        except ValueError as err:
            parser.error(f"--alpha-kinds={args.alpha_kinds!r}: {err}")
    if args.rows < 1:
        parser.error(f"--rows={args.rows}: must be at least 1")
    try:
        shard = parse_shard(args.shard) if args.shard is not None else None
    except ValueError as err:
        parser.error(f"--shard={args.shard}: {err}")
    row_ids = range(args.rows)
    if args.held_out_of:
        try:
            _, held_out = held_out_split(read_dataset(args.held_out_of), args.test_fraction,
                                         args.seed)
        except (OSError, ValueError) as err:
            parser.error(f"--held-out-of={args.held_out_of}: {err}")
        row_ids = sorted(int(i) for i in held_out["row_id"] if i < args.rows)
    if args.retry_failed and Path(args.out).exists():
        try:
            dropped = drop_failed_rows(args.out)
        except (OSError, ValueError) as err:
            parser.error(f"--retry-failed: {err}")
        print(f"labelling again {len(dropped)} rows that failed before: {dropped[:10]}")
    if args.core is not None:
        os.sched_setaffinity(0, {args.core})
    if args.runtime == "onnxruntime":
        runtime = OnnxRuntimeCpu(threads=args.threads)
        clock: ReferenceClock = OnnxReferenceClock(runtime=runtime)
        runtime_fields = runtime_record(args.threads)
    else:
        clock, runtime_fields = ReferenceClock(device=args.device, threads=args.threads), None
    own_meta = Path(args.out + ".meta.json")
    if args.scale_from:
        try:
            reference_ms = reference_ms_from(args.scale_from, runtime_fields, args.threads)
        except ValueError as err:
            parser.error(f"--scale-from={args.scale_from}: {err}")
    elif own_meta.exists():  # a resumed run keeps its calibration
        try:
            reference_ms = read_metadata(args.out)["settings"]["rule"]["reference_ms"]
        except (OSError, ValueError, KeyError, TypeError) as err:
            parser.error(f"--out={args.out}: {err}")
    else:
        reference_ms = clock.calibrate()
    described = describe_rule(rule, reference_ms,
                              Path(args.control_table).name if control is not None else None)
    _warn_if_busy(0, "before labelling")
    started = time.perf_counter()
    result = label_dataset(
        args.out, row_ids,
        make_labeler(rule, clock, reference_ms, device=args.device, threads=args.threads,
                     control=control),
        described, seed=args.seed, spec=spec, device=args.device, threads=args.threads,
        run_tag=args.run_tag, cpu_core=args.core, shard=shard, runtime=runtime_fields)
    print(f"{result} in {time.perf_counter() - started:.0f} s")
    _warn_if_busy(args.threads, "while labelling")


if __name__ == "__main__":
    main()
