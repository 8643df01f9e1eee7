"""Command line: label sampled blocks with their expected latency on this machine.

    python -m lenna_core.generate_dataset --out data/latency_dataset.csv --rows 3000 --core 1
    python -m lenna_core.generate_dataset --out data/latency_noise_floor.csv --rows 300 \\
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

    python -m lenna_core.generate_dataset --out data/latency_dataset_precise.csv --rows 3000 \
        --held-out-of data/latency_dataset.csv --target-rel-error 0.01 --timings-per-reset 3 \
        --control-table data/op_latency_table.csv --run-tag precise \
        --scale-from data/latency_dataset.csv --core 0

Three pass pairs per reset average the timing jitter of one pass, and the op table's
prediction for each drawn cell (a control variate) removes most of the spread that comes from
which ops the gates drew; a label then needs far fewer resets for the same standard error.
A row that fails is recorded as failed and the run goes on; ``--retry-failed`` labels such
rows again.
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch

from .blocks import CellBank, CellContext
from .convergence import StandardErrorRule, control_variate_mean, relative_standard_error
from .dataset import (
    Labeler,
    SamplingSpec,
    drop_failed_rows,
    generate_dataset,
    held_out_split,
    read_dataset,
    read_metadata,
    refuse_rows_without_metadata,
)
from .lookup_table import OpLatencyTable
from .profiler import cpu_threads, measure_latency, resolve_device
from .search_space import DARTS_SPACE, SearchSpace
from .single_path import sample_active

#: The stopping rule of the reference dataset, applied to the per-reset ratios (chapter 2
#: compares stopping rules on plain timings; chapter 3 explains the ratio).
DEFAULT_RULE = StandardErrorRule(target_rel_error=0.04, timings_per_reset=1, min_resets=8,
                                 max_resets=300, statistic="median", warmup_per_reset=0)

#: The reference cell: a normal cell with 16 channels per node on 16x16 inputs,
#: sep_conv_3x3 on every edge, batch size 1.
REFERENCE_CONTEXT = CellContext.in_network(16, False, False, 16)
REFERENCE_OP = "sep_conv_3x3"


class ReferenceClock:
    """Times the reference cell, one pass at a time, between the measured cells."""

    def __init__(self, space: SearchSpace = DARTS_SPACE, device: str = "cpu",
                 threads: int | None = 1) -> None:
        bank = CellBank(REFERENCE_CONTEXT, space).to(device)
        with cpu_threads(threads if device == "cpu" else None):
            bank.warm_up()
        self.cell = bank.select([space.primitives.index(REFERENCE_OP)] * space.num_edges)
        self.device, self.threads = device, threads

    def tick(self) -> float:
        """One timed pass of the reference cell (ms)."""
        return measure_latency(self.cell, REFERENCE_CONTEXT.input_shapes, device=self.device,
                               repeats=1, warmup=0, threads=self.threads).times_ms[0]

    def calibrate(self, passes: int = 1000) -> float:
        """The reference cell's latency (ms): the median of many passes."""
        return measure_latency(self.cell, REFERENCE_CONTEXT.input_shapes, device=self.device,
                               repeats=passes, warmup=20, threads=self.threads).median


def make_labeler(rule: StandardErrorRule, clock: ReferenceClock, reference_ms: float,
                 space: SearchSpace = DARTS_SPACE, device: str = "cpu",
                 threads: int | None = 1, control: OpLatencyTable | None = None) -> Labeler:
    """A dataset labeler: per reset, the sampled cell's time over the reference cell's.

    Per reset, ``rule.timings_per_reset`` passes of the sampled cell alternate with passes of
    the reference cell and the reset's value is the ``rule.statistic`` of their ratios. With a
    ``control`` table, the label is corrected by the table's prediction for each drawn cell
    (:func:`~lenna_core.convergence.control_variate_mean`), and the stopping rule judges the
    corrected values: the same expectation, from fewer resets.
    """
    statistic = getattr(np, rule.statistic)

    def labeler(context: CellContext, probs: torch.Tensor, generator: torch.Generator,
                bank: CellBank) -> dict:
        # Everything between the timed passes runs on the timing's threads too: with more
        # threads than the cores a pinned process may use, idle OpenMP workers spin on the
        # core the next pass is timed on (the warm-up alone then took 5.6 s per block).
        with cpu_threads(threads if device == "cpu" else None):
            return _label(context, probs, generator, bank)

    def _stops(values: list[float]) -> bool:
        # Adjusted values can average below zero over the first few resets (a wild slope):
        # no estimate yet, so go on, up to max_resets.
        if len(values) >= rule.max_resets:
            return True
        return bool(values) and float(np.mean(values)) > 0 and rule.should_stop(values)

    def _label(context: CellContext, probs: torch.Tensor, generator: torch.Generator,
               bank: CellBank) -> dict:
        bank.warm_up()
        if control is not None:
            op_ms, fixed_ms = control.block_arrays([context], "the control variate")
            op_ms, fixed_ms = op_ms[0], float(fixed_ms[0])
            expected = fixed_ms + float((probs.numpy() * op_ms).sum())
        ratios: list[float] = []
        predicted: list[float] = []
        adjusted: list[float] = ratios
        while not _stops(adjusted):
            active = sample_active(probs, space, generator)
            cell = bank.select(active)
            for _ in range(rule.warmup_per_reset):
                measure_latency(cell, context.input_shapes, device=device, repeats=1,
                                warmup=0, threads=threads)
            per_pass = [measure_latency(cell, context.input_shapes, device=device, repeats=1,
                                        warmup=0, threads=threads).times_ms[0] / clock.tick()
                        for _ in range(rule.timings_per_reset)]
            ratios.append(float(statistic(per_pass)))
            if control is not None:
                predicted.append(fixed_ms + float(op_ms[np.arange(len(active)), active].sum()))
                adjusted = list(control_variate_mean(ratios, predicted, expected)[1])
        mean = float(np.mean(adjusted))
        if mean <= 0:  # only an adjusted mean stopped by max_resets can get here
            raise ValueError(f"the control-variate label is {mean:.3g} after {len(ratios)} "
                             "resets: raise max_resets or label without --control-table")
        return {"latency_ms": mean * reference_ms,
                "label_rel_se": relative_standard_error(adjusted), "resets": len(ratios),
                "forward_passes": len(ratios) * (2 * rule.timings_per_reset
                                                 + rule.warmup_per_reset)}
    return labeler


def describe_rule(rule: StandardErrorRule, reference_ms: float,
                  control_table: str | None = None) -> dict:
    """The labeller's record in a dataset's metadata: the rule, the reference cell and its
    calibrated latency (ms), and the control table's file name if one corrects the labels."""
    described = {"name": type(rule).__name__, **asdict(rule),
                 "per_reset_value": "time of the sampled cell / time of the reference cell",
                 "label": "mean per-reset ratio x reference_ms",
                 "reference_cell": f"{REFERENCE_OP} on every edge of "
                                   f"{REFERENCE_CONTEXT.to_dict()}",
                 "reference_ms": reference_ms}
    if control_table is not None:
        described["control_variate"] = (f"op latency table {control_table}: its sum over the "
                                         "drawn ops, least-squares slope per row")
    return described


def check_run_options(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuse bad --device, --threads, --core and --scale-from values before anything runs,
    naming the option (``parser.error`` exits with status 2)."""
    try:
        resolve_device(args.device)
    except ValueError as err:
        parser.error(f"--device={args.device!r}: {str(err).split(': ', 1)[-1]}")
    if args.threads < 1:
        parser.error(f"--threads={args.threads}: must be a positive integer")
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


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and generate (or resume) a dataset."""
    parser = argparse.ArgumentParser(prog="lenna label", description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="CSV file to write or resume")
    parser.add_argument("--rows", type=int, required=True, help="row ids 0..rows-1")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--run-tag", default="main",
                        help="another tag gives independent gate draws for the same blocks")
    parser.add_argument("--scale-from", default=None,
                        help="reuse this dataset's calibrated reference latency (ms); the file "
                             "and its .meta.json must exist")
    parser.add_argument("--device", default="cpu", help="'cpu', 'cuda' or 'cuda:N'")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads while timing (a positive integer)")
    parser.add_argument("--core", type=int, default=None,
                        help="pin this process to one core (a core this process may use)")
    parser.add_argument("--alpha-kinds", default=None,
                        help="weights of the probability kinds, e.g. 'derived=1' "
                             "(default: SamplingSpec's mix)")
    parser.add_argument("--target-rel-error", type=float, default=DEFAULT_RULE.target_rel_error,
                        help="stop a row when its label's relative standard error is this low")
    parser.add_argument("--timings-per-reset", type=int,
                        default=DEFAULT_RULE.timings_per_reset,
                        help="sampled/reference pass pairs per gate reset (their median ratio)")
    parser.add_argument("--control-table", default=None,
                        help="op latency table (chapter 1) whose prediction for each drawn cell "
                             "corrects the label (a control variate: fewer resets)")
    parser.add_argument("--retry-failed", action="store_true",
                        help="label again the rows an earlier run of --out failed on (they "
                             "are removed from the file first)")
    parser.add_argument("--held-out-of", default=None,
                        help="label only the rows chapter 4 holds out of this dataset "
                             "(its seeded split, --test-fraction; instead of 0..rows-1)")
    parser.add_argument("--test-fraction", type=float, default=0.2)
    args = parser.parse_args(argv)
    check_run_options(parser, args)
    try:
        rule = replace(DEFAULT_RULE, target_rel_error=args.target_rel_error,
                       timings_per_reset=args.timings_per_reset)
    except ValueError as err:
        parser.error(str(err))
    control = OpLatencyTable.from_csv(args.control_table) if args.control_table else None
    spec = SamplingSpec()
    if args.alpha_kinds:
        try:
            kinds = {k: float(v) for k, v in (item.split("=") for item in
                                              args.alpha_kinds.split(","))}
            spec = SamplingSpec(alpha_kinds=kinds)
        except ValueError as err:
            parser.error(f"--alpha-kinds={args.alpha_kinds!r}: {err}")
    if args.rows < 1:
        parser.error(f"--rows={args.rows}: must be at least 1")
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
    clock = ReferenceClock(device=args.device, threads=args.threads)
    source = Path(args.scale_from or args.out)
    if args.scale_from or Path(str(source) + ".meta.json").exists():
        try:
            reference_ms = read_metadata(source)["settings"]["rule"]["reference_ms"]
        except (OSError, ValueError, KeyError, TypeError) as err:
            parser.error(f"--scale-from={args.scale_from}: {err}" if args.scale_from
                         else str(err))
    else:
        reference_ms = clock.calibrate()
    described = describe_rule(rule, reference_ms,
                              Path(args.control_table).name if control is not None else None)
    started = time.perf_counter()
    result = generate_dataset(
        args.out, row_ids,
        make_labeler(rule, clock, reference_ms, device=args.device, threads=args.threads,
                     control=control),
        described, seed=args.seed, spec=spec, device=args.device, threads=args.threads,
        run_tag=args.run_tag, cpu_core=args.core)
    print(f"{result} in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
