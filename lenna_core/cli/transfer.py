"""Command line: profile this machine for a few minutes and adapt a latency model to it.

    lenna transfer --model data/mlp_latency --out-dir data/devices/here --budget-s 120
    python -m lenna_core.cli.transfer --model data/mlp_latency --out-dir /tmp/here --blocks 40

It labels fresh blocks (drawn like the reference dataset's, with their own seed) on this
machine with the reference labeller, in this machine's own milliseconds (its reference cell
calibrated here), until ``--blocks`` are labelled or ``--budget-s`` is spent; measures this
machine's op table over the blocks' contexts (seconds); then adapts the model with
:func:`lenna_core.latency.transfer.adapt` and saves it (all in
:mod:`lenna_core.latency.device_profiling`), with the blocks and the table, in the output
folder. Interrupt it at any time: the same command resumes the labelling.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from lenna_core.latency.device_identity import describe_device
from lenna_core.latency.device_profiling import transfer_to_this_device
from lenna_core.latency.transfer import METHODS


def main(argv: list[str] | None = None) -> None:
    """Parse the command line, profile this machine and adapt the model to it."""
    parser = argparse.ArgumentParser(
        prog="lenna transfer", description="Profile this machine for a few minutes and adapt "
        "a latency model to it (saves the adapted model and the labelled blocks).")
    parser.add_argument("--model", default="data/mlp_latency",
                        help="the source model's path prefix (default: %(default)s)")
    parser.add_argument("--out-dir", required=True,
                        help="folder for blocks.csv, the adapted mlp_latency.* and manifest.json")
    parser.add_argument("--blocks", type=int, default=None,
                        help="blocks to label (default: as many as --budget-s allows)")
    parser.add_argument("--budget-s", type=float, default=120.0,
                        help="seconds of profiling at most, reference-cell calibration "
                             "included (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=1,
                        help="seed of the block draws and the fits (default: %(default)s)")
    parser.add_argument("--methods", default=",".join(METHODS),
                        help="candidate methods, comma-separated (default: all)")
    parser.add_argument("--device", default="cpu", help="'cpu' or 'cuda' (default: cpu)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: 1)")
    parser.add_argument("--core", type=int, default=None, help="pin the timing to this core")
    args = parser.parse_args(argv)
    try:
        adapted = transfer_to_this_device(
            args.model, args.out_dir, blocks=args.blocks, budget_s=args.budget_s,
            seed=args.seed, methods=tuple(args.methods.split(",")), device=args.device,
            threads=args.threads, core=args.core)
    except ValueError as err:
        parser.error(str(err))
    record = adapted.provenance
    print(pd.DataFrame(record["cross_validation"]).to_string(index=False))
    print(f"chose {adapted.method} from {record['k']} blocks labelled in "
          f"{record['profiling_seconds']} s on {describe_device(record['device'])}; saved "
          f"{Path(args.out_dir) / 'mlp_latency'}")


if __name__ == "__main__":
    main()
