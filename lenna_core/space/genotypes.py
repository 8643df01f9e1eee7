"""Genotypes: a searched cell as data, with validation and a JSON round-trip.

A cell has two input nodes (0 and 1: the outputs of the two previous cells) and ``steps``
intermediate nodes (2 .. steps+1). In a genotype every intermediate node has two incoming
edges, listed as ``(op, input_node)`` pairs in node order: entries ``2k`` and ``2k+1`` feed
node ``k+2``. The cell's output concatenates the nodes in ``*_concat``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from lenna_core.space.operations import check_primitive
from lenna_core.validation import is_integer

Edge = tuple[str, int]


@dataclass(frozen=True)
class Genotype:
    """A normal and a reduction cell, each as (op, input) pairs plus the nodes to concatenate."""

    normal: tuple[Edge, ...]
    normal_concat: tuple[int, ...]
    reduce: tuple[Edge, ...]
    reduce_concat: tuple[int, ...]

    def __post_init__(self) -> None:
        # Normalise lists (from JSON or hand-written code) to tuples so genotypes hash and compare.
        for name in ("normal", "reduce"):
            object.__setattr__(self, name, _as_edges(getattr(self, name), name))
        for name in ("normal_concat", "reduce_concat"):
            object.__setattr__(self, name, _as_indices(getattr(self, name), name))
        self.validate()

    @property
    def steps(self) -> int:
        """Number of intermediate nodes per cell."""
        return len(self.normal) // 2

    def validate(self) -> None:
        """Raise a ValueError naming the first inconsistency, if any."""
        for name in ("normal", "reduce"):
            edges = getattr(self, name)
            if not edges or len(edges) % 2:
                raise ValueError(f"genotype.{name} must list two (op, input) edges per "
                                 f"intermediate node; got {len(edges)} edges")
            for position, (op, index) in enumerate(edges):
                try:
                    check_primitive(op)
                except ValueError as err:
                    raise ValueError(f"genotype.{name}[{position}]: {err}") from None
                node = position // 2 + 2
                if not 0 <= index < node:
                    raise ValueError(
                        f"genotype.{name}[{position}] = ({op!r}, {index}): node {node} may only "
                        f"take inputs 0..{node - 1}")
            concat = getattr(self, f"{name}_concat")
            last = len(edges) // 2 + 1
            if not concat or any(not 0 <= i <= last for i in concat):
                raise ValueError(f"genotype.{name}_concat = {list(concat)}: nodes must lie in "
                                 f"0..{last} and the list must not be empty")
        if len(self.normal) != len(self.reduce):
            raise ValueError(f"genotype.normal has {len(self.normal) // 2} nodes but "
                             f"genotype.reduce has {len(self.reduce) // 2}; they must match")

    def to_dict(self) -> dict:
        """A JSON-ready dict: edges as [op, input] lists."""
        return {
            "normal": [list(e) for e in self.normal],
            "normal_concat": list(self.normal_concat),
            "reduce": [list(e) for e in self.reduce],
            "reduce_concat": list(self.reduce_concat),
        }

    def to_json(self) -> str:
        """Serialise to a JSON string."""
        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, data: dict) -> Genotype:
        """Build from the dict that :meth:`to_dict` writes, validating it."""
        keys = {"normal", "normal_concat", "reduce", "reduce_concat"}
        if not isinstance(data, dict) or set(data) != keys:
            got = sorted(data) if isinstance(data, dict) else type(data).__name__
            raise ValueError(f"genotype JSON must be an object with exactly the keys "
                             f"{sorted(keys)}; got {got}")
        return cls(**data)

    @classmethod
    def from_json(cls, text: str) -> Genotype:
        """Parse a JSON string written by :meth:`to_json`."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"malformed genotype JSON: {err}") from err
        return cls.from_dict(data)


def _as_edges(value: object, name: str) -> tuple[Edge, ...]:
    """Check that ``value`` is a sequence of (op name, integer input) pairs."""
    edges = []
    for position, edge in enumerate(value if isinstance(value, (list, tuple)) else [value]):
        if (not isinstance(edge, (list, tuple)) or len(edge) != 2 or not isinstance(edge[0], str)
                or isinstance(edge[1], bool) or not isinstance(edge[1], int)):
            raise ValueError(f"genotype.{name}[{position}] = {edge!r}: each edge must be an "
                             "(op name, input node index) pair")
        edges.append((edge[0], edge[1]))
    return tuple(edges)


def _as_indices(value: object, name: str) -> tuple[int, ...]:
    """Check that ``value`` is a sequence of integer node indices."""
    if not isinstance(value, (list, tuple, range)) or not all(
            is_integer(i) for i in value):
        raise ValueError(f"genotype.{name} = {value!r}: must be a list of node indices")
    return tuple(value)


DARTS_V1 = Genotype(
    normal=[("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("skip_connect", 0), ("sep_conv_3x3", 1),
            ("skip_connect", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("skip_connect", 2)],
    normal_concat=[2, 3, 4, 5],
    reduce=[("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2), ("max_pool_3x3", 0),
            ("max_pool_3x3", 0), ("skip_connect", 2), ("skip_connect", 2), ("avg_pool_3x3", 0)],
    reduce_concat=[2, 3, 4, 5],
)
"""DARTS (first order), as published by Liu et al. (ICLR 2019)."""

DARTS_V2 = Genotype(
    normal=[("sep_conv_3x3", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("sep_conv_3x3", 1),
            ("sep_conv_3x3", 1), ("skip_connect", 0), ("skip_connect", 0), ("dil_conv_3x3", 2)],
    normal_concat=[2, 3, 4, 5],
    reduce=[("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2), ("max_pool_3x3", 1),
            ("max_pool_3x3", 0), ("skip_connect", 2), ("skip_connect", 2), ("max_pool_3x3", 1)],
    reduce_concat=[2, 3, 4, 5],
)
"""DARTS (second order), as published by Liu et al. (ICLR 2019)."""

DARTS = DARTS_V2

#: Published genotypes by name, so callers look them up without ``eval``.
NAMED_GENOTYPES: dict[str, Genotype] = {"DARTS_V1": DARTS_V1, "DARTS_V2": DARTS_V2}
