"""Command line: combine the shard files a farm of devices labelled into one dataset.

    lenna merge --out data/farm.csv shard0.csv shard1.csv shard2.csv shard3.csv
    python -m lenna_core.cli.merge --out data/farm.csv shard*.csv

Each device labelled its share with ``lenna label --shard I/N`` (``lenna label --help``). The
merge refuses, naming the file and what differs, shards that are not one dataset's: a shard
missing or given twice, a shard whose labelling has not finished, or shards that differ in
schema, seed, sampling spec, rule (the reference latency included), run tag or device
(:mod:`lenna_core.latency.shard_merge`). The result is an ordinary dataset with its
``.meta.json``; merging again after a shard was resumed replaces an earlier merge.
"""

from __future__ import annotations

import argparse

from lenna_core.latency.shard_merge import merge_shards


def build_parser() -> argparse.ArgumentParser:
    """The ``lenna merge`` command line."""
    parser = argparse.ArgumentParser(
        prog="lenna merge", description=__doc__.splitlines()[0],
        epilog="Latencies stay in the shards' milliseconds; the shards must share one "
               "calibration (label them with the same --scale-from).")
    parser.add_argument("--out", required=True, metavar="CSV",
                        help="the merged dataset to write (its .meta.json goes beside it); "
                             "it may replace an earlier merge, never another dataset")
    parser.add_argument("shards", nargs="+", metavar="SHARD_CSV",
                        help="every shard file of the dataset (each with its .meta.json)")
    return parser


def main(argv: list[str] | None = None) -> None:
    """Parse the command line, check the shards against each other and merge them."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        merged = merge_shards(args.shards, args.out)
    except (OSError, ValueError) as err:
        parser.error(str(err))
    print(f"merged {merged['rows']} rows ({merged['failed']} failed) from {merged['shards']} "
          f"shards, labelled on {merged['device']}, into {args.out}")


if __name__ == "__main__":
    main()
