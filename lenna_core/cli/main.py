"""The ``lenna`` command: one entry point for the command-line work of the book.

    lenna --help
    lenna label --out data/my_device.csv --rows 3000 --core 1   # label a dataset
    lenna transfer --out-dir data/devices/here --budget-s 120    # adapt a model to this machine
    lenna table --out here.csv --contexts-of data/op_latency_table.csv  # an op table, measured
    lenna fit --device-folder data/devices/my_device              # fit a device folder's models
    lenna search --out runs/my_search --lam 0.5                   # one latency-aware search
    lenna label --out shard0.csv --rows 3000 --shard 0/4 ...     # one device of a farm
    lenna merge --out data/farm.csv shard0.csv shard1.csv ...    # the farm's shards, as one

Each subcommand is also a module (``python -m lenna_core.cli.label``,
``python -m lenna_core.cli.transfer``, ``python -m lenna_core.cli.fit``,
``python -m lenna_core.cli.table``, ``python -m lenna_core.cli.merge``,
``torchrun ... -m lenna_core.cli.search``) and documents its options with ``--help``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from lenna_core.cli import fit, label, merge, search, table, transfer

SUBCOMMANDS: dict[str, tuple[Callable[[list[str]], None], str]] = {
    "label": (label.main, "label sampled blocks with their expected latency on "
                          "this machine (a dataset; resumable)"),
    "transfer": (transfer.main, "profile this machine for a few minutes and adapt a "
                                "latency model to it"),
    "table": (table.main, "measure an op latency table on this machine (torch eager or "
                          "ONNX Runtime)"),
    "fit": (fit.main, "fit and score chapter 4's latency models on a device folder's "
                      "labelled blocks; save its model there"),
    "search": (search.main, "run or resume one latency-aware search (under torchrun: "
                            "on every rank)"),
    "merge": (merge.main, "combine the shard files a farm of devices labelled "
                          "(lenna label --shard I/N) into one dataset, once checked"),
}


def _usage() -> str:
    lines = ["usage: lenna SUBCOMMAND [options]", "", "subcommands:"]
    lines += [f"  {name:<10} {summary}" for name, (_, summary) in SUBCOMMANDS.items()]
    lines += ["", "lenna SUBCOMMAND --help documents each subcommand's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Dispatch ``lenna SUBCOMMAND ...`` to the subcommand's own parser."""
    args = sys.argv[1:] if argv is None else list(argv)
    if not args or args[0] in ("-h", "--help"):
        print(_usage())
        return
    if args[0] not in SUBCOMMANDS:
        print(f"lenna: unknown subcommand {args[0]!r}\n\n{_usage()}", file=sys.stderr)
        raise SystemExit(2)
    SUBCOMMANDS[args[0]][0](args[1:])


if __name__ == "__main__":
    main()
