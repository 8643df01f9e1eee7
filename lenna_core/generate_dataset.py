"""Command line: label sampled blocks with their expected latency on this machine.

    python -m lenna_core.generate_dataset --out data/latency_dataset.csv --rows 3000 --core 1
    python -m lenna_core.generate_dataset --out data/latency_noise_floor.csv --rows 300 \\
        --run-tag repeat --core 1        # the same blocks, independent gates and timings

Interrupt it at any time; the same command resumes where it stopped.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import asdict

from .blocks import CellBank, CellContext
from .convergence import StandardErrorRule, label_block
from .dataset import SamplingSpec, generate_dataset

#: The stopping rule of the reference dataset (chosen in chapter 2).
DEFAULT_RULE = StandardErrorRule(target_rel_error=0.04, timings_per_reset=1, min_resets=8,
                                 max_resets=300, statistic="median", warmup_per_reset=0)


def make_labeler(rule: StandardErrorRule, device: str = "cpu", threads: int | None = 1):
    """A dataset labeler that labels one block with ``rule`` (see lenna_core.convergence)."""
    def labeler(context: CellContext, probs, generator, bank: CellBank) -> dict:
        bank.warm_up()
        result = label_block(context, probs, rule, generator=generator, device=device,
                             threads=threads, bank=bank)
        return {"latency_ms": result.label_ms, "label_rel_se": result.relative_standard_error,
                "resets": result.resets, "forward_passes": result.forward_passes}
    return labeler


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and generate (or resume) a dataset."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="CSV file to write or resume")
    parser.add_argument("--rows", type=int, required=True, help="row ids 0..rows-1")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--run-tag", default="main",
                        help="another tag gives independent gate draws for the same blocks")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--core", type=int, default=None, help="pin this process to one core")
    args = parser.parse_args(argv)
    if args.rows < 1:
        parser.error(f"--rows={args.rows}: must be at least 1")
    rule = DEFAULT_RULE
    started = time.perf_counter()
    result = generate_dataset(
        args.out, range(args.rows), make_labeler(rule, args.device, args.threads),
        {"name": type(rule).__name__, **asdict(rule)}, seed=args.seed, spec=SamplingSpec(),
        device=args.device, threads=args.threads, run_tag=args.run_tag, cpu_core=args.core)
    print(f"{result} in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
