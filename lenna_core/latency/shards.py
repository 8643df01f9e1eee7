"""Shards of a dataset, for a farm of devices: shard ``i`` of ``n`` labels the rows whose id
leaves remainder ``i`` when divided by ``n``.

The share is a function of the row id alone, so the shards are disjoint and together hold every
row, whatever the list of row ids (``--rows`` or ``--held-out-of``), and a shard's file can be
checked row by row. A block is a function of (seed, row id)
(:func:`~lenna_core.latency.dataset.sample_block`), so each device labels exactly the blocks one
process would have labelled under those ids; :mod:`lenna_core.latency.shard_merge` combines
the files.
"""

from __future__ import annotations

from collections.abc import Iterable

from lenna_core.validation import is_integer

#: ``(index, count)``: shard ``index`` of ``count``.
Shard = tuple[int, int]


def check_shard(shard: object) -> Shard:
    """``shard`` as ``(index, count)`` if it is one (0 <= index < count); a ValueError
    naming it otherwise."""
    if (not isinstance(shard, tuple | list) or len(shard) != 2
            or not all(is_integer(v) for v in shard) or not 0 <= shard[0] < shard[1]):
        raise ValueError(f"shard={shard!r}: give (index, count) with 0 <= index < count, "
                         "e.g. (0, 4) for the first of four shards")
    return int(shard[0]), int(shard[1])


def parse_shard(text: str) -> Shard:
    """``'i/n'`` (the command line's ``--shard``) as ``(i, n)``."""
    index, sep, count = str(text).partition("/")
    if not sep or not index.strip().isdigit() or not count.strip().isdigit():
        raise ValueError(f"{text!r} is not I/N: give the shard's index and the number of "
                         "shards, e.g. 0/4 for the first of four (indices 0..N-1)")
    return check_shard((int(index), int(count)))


def in_shard(row_id: int, shard: Shard) -> bool:
    """Whether shard ``(index, count)`` labels the row ``row_id``."""
    return row_id % shard[1] == shard[0]


def shard_rows(row_ids: Iterable[int], shard: Shard | None) -> list[int]:
    """The ids of ``row_ids`` that ``shard`` labels (all of them when ``shard`` is None)."""
    ids = [int(i) for i in row_ids]
    if shard is None:
        return ids
    shard = check_shard(shard)
    return [i for i in ids if in_shard(i, shard)]


def describe_shard(shard: Shard) -> dict:
    """The shard as the metadata records it."""
    return {"index": shard[0], "count": shard[1]}
