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
"""

from __future__ import annotations

import argparse
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from .blocks import CellBank, CellContext, time_sampled_cell
from .convergence import StandardErrorRule, relative_standard_error
from .dataset import SamplingSpec, generate_dataset, read_metadata
from .profiler import measure_latency
from .search_space import DARTS_SPACE, SearchSpace

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
                 threads: int | None = 1):
    """A dataset labeler: per reset, the sampled cell's time over the reference cell's."""
    def labeler(context: CellContext, probs: torch.Tensor, generator: torch.Generator,
                bank: CellBank) -> dict:
        bank.warm_up()
        ratios: list[float] = []
        while not rule.should_stop(ratios):
            _, result = time_sampled_cell(context, probs, space, generator=generator, repeats=1,
                                          warmup=0, device=device, threads=threads, bank=bank)
            ratios.append(result.times_ms[0] / clock.tick())
        return {"latency_ms": float(np.mean(ratios)) * reference_ms,
                "label_rel_se": relative_standard_error(ratios), "resets": len(ratios),
                "forward_passes": 2 * len(ratios)}
    return labeler


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and generate (or resume) a dataset."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="CSV file to write or resume")
    parser.add_argument("--rows", type=int, required=True, help="row ids 0..rows-1")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--run-tag", default="main",
                        help="another tag gives independent gate draws for the same blocks")
    parser.add_argument("--scale-from", default=None,
                        help="reuse this dataset's calibrated reference latency")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--core", type=int, default=None, help="pin this process to one core")
    parser.add_argument("--alpha-kinds", default=None,
                        help="weights of the probability kinds, e.g. 'derived=1' "
                             "(default: SamplingSpec's mix)")
    args = parser.parse_args(argv)
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
    if args.core is not None:
        import os
        os.sched_setaffinity(0, {args.core})
    clock = ReferenceClock(device=args.device, threads=args.threads)
    source = Path(args.scale_from or args.out)
    if Path(str(source) + ".meta.json").exists():
        reference_ms = read_metadata(source)["settings"]["rule"]["reference_ms"]
    else:
        reference_ms = clock.calibrate()
    rule = {"name": type(DEFAULT_RULE).__name__, **asdict(DEFAULT_RULE),
            "per_reset_value": "time of the sampled cell / time of the reference cell",
            "label": "mean per-reset ratio x reference_ms",
            "reference_cell": f"{REFERENCE_OP} on every edge of "
                              f"{REFERENCE_CONTEXT.to_dict()}",
            "reference_ms": reference_ms}
    started = time.perf_counter()
    result = generate_dataset(
        args.out, range(args.rows),
        make_labeler(DEFAULT_RULE, clock, reference_ms, device=args.device,
                     threads=args.threads),
        rule, seed=args.seed, spec=spec, device=args.device, threads=args.threads,
        run_tag=args.run_tag, cpu_core=args.core)
    print(f"{result} in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
