"""A block (cell) in its network context, and timing the single-path cells sampled from it.

LENNA's unit of latency is one block: a cell with given input channels and spatial size,
whose edges carry architecture probabilities. :class:`CellContext` fixes everything about
the block except the probabilities; :func:`time_sampled_cell` is one binary-gate reset:
sample one op per edge, build that cell, time it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from .cells import FixedCell
from .profiler import LatencyResult, measure_latency
from .search_space import DARTS_SPACE, SearchSpace
from .single_path import sample_active, single_path_cell


@dataclass(frozen=True)
class CellContext:
    """Where a cell sits: its channels, whether it and its predecessor reduce, input size, batch.

    ``spatial`` is the side of the previous cell's output (input ``s1``); after a reduction
    the cell before that (``s0``) is twice as large.
    """

    reduction: bool
    reduction_prev: bool
    C_prev_prev: int
    C_prev: int
    C: int
    spatial: int
    batch_size: int = 1

    def __post_init__(self) -> None:
        for name in ("C_prev_prev", "C_prev", "C", "spatial", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}={value!r}: must be a positive integer")
        if self.reduction and self.spatial % 2:
            raise ValueError(f"spatial={self.spatial}: a reduction cell needs an even input size")
        if (self.reduction or self.reduction_prev) and self.C % 2:
            raise ValueError(f"C={self.C}: reducing skip connections need an even channel count")

    @classmethod
    def in_network(cls, C: int, reduction: bool, reduction_prev: bool, spatial: int,
                   batch_size: int = 1, multiplier: int = 4) -> CellContext:
        """The context of a cell with ``C`` channels per node deep inside a DARTS network
        (its inputs are previous cells' outputs, ``multiplier`` nodes concatenated)."""
        if reduction:  # the previous cells worked at half the channels
            return cls(True, reduction_prev, multiplier * C // 2, multiplier * C // 2, C,
                       spatial, batch_size)
        C_prev_prev = multiplier * C // 2 if reduction_prev else multiplier * C
        return cls(False, reduction_prev, C_prev_prev, multiplier * C, C, spatial, batch_size)

    @property
    def input_shapes(self) -> tuple[tuple[int, int, int, int], ...]:
        """Shapes of the two inputs (s0, s1)."""
        side0 = 2 * self.spatial if self.reduction_prev else self.spatial
        return ((self.batch_size, self.C_prev_prev, side0, side0),
                (self.batch_size, self.C_prev, self.spatial, self.spatial))

    def to_dict(self) -> dict:
        """The context as a flat dict (columns of a dataset row)."""
        return asdict(self)

    def build(self, active: list[int], space: SearchSpace = DARTS_SPACE) -> FixedCell:
        """The single-path cell with op ``active[e]`` on edge ``e``."""
        return single_path_cell(active, self.C_prev_prev, self.C_prev, self.C, self.reduction,
                                self.reduction_prev, space)


def time_sampled_cell(context: CellContext, probs: torch.Tensor,
                      space: SearchSpace = DARTS_SPACE, *,
                      generator: torch.Generator | None = None, repeats: int = 10,
                      warmup: int = 2, device: str = "cpu",
                      threads: int | None = 1) -> tuple[list[int], LatencyResult]:
    """One binary-gate reset: draw one op per edge from ``probs``, build and time that cell."""
    active = sample_active(probs, space, generator)
    cell = context.build(active, space)
    return active, measure_latency(cell, context.input_shapes, device=device, repeats=repeats,
                                   warmup=warmup, threads=threads)
