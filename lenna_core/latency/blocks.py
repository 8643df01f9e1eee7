"""A block (cell) in its network context, and timing the single-path cells sampled from it.

LENNA's unit of latency is one block: a cell with given input channels and spatial size,
whose edges carry architecture probabilities. :class:`CellContext` fixes everything about
the block except the probabilities; :func:`time_sampled_cell` is one binary-gate reset:
sample one op per edge, build that cell, time it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from lenna_core.latency.profiler import LatencyResult, measure_latency
from lenna_core.space.cells import CellBase, FixedCell
from lenna_core.space.operations import make_op
from lenna_core.space.search_space import DARTS_SPACE, SearchSpace
from lenna_core.space.single_path import sample_active, single_path_cell, single_path_edges
from lenna_core.validation import check_int


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
            check_int(name, value)
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


class CellBank(nn.Module):
    """Every candidate op on every edge of one context, built once (inference mode, affine).

    :meth:`select` assembles a single-path cell from these modules without building anything,
    so timing many gate resets of one block does not pay the construction cost each time.
    """

    def __init__(self, context: CellContext, space: SearchSpace = DARTS_SPACE) -> None:
        super().__init__()
        self.context, self.space = context, space
        shared = CellBase(context.C_prev_prev, context.C_prev, context.C, context.reduction,
                          context.reduction_prev, affine=True)
        self.preprocess = nn.ModuleList([shared.preprocess0, shared.preprocess1])
        self.ops = nn.ModuleList(
            nn.ModuleList(make_op(name, context.C, 2 if context.reduction and src < 2 else 1,
                                  affine=True) for name in space.primitives)
            for src, _ in space.edges)
        self.eval()

    @torch.inference_mode()
    def warm_up(self) -> None:
        """Run every op of every edge once, so no timed reset pays a first call's costs."""
        device = next(self.parameters()).device
        inputs = [torch.randn(shape, device=device) for shape in self.context.input_shapes]
        for k in range(self.space.num_ops):
            self.select([k] * self.space.num_edges)(*inputs)

    def select(self, active: list[int]) -> FixedCell:
        """The single-path cell with op ``active[e]`` on edge ``e``, sharing this bank's modules."""
        reference = single_path_edges(active, self.space)
        return FixedCell(reference, self.space.concat, self.context.C_prev_prev,
                         self.context.C_prev, self.context.C, self.context.reduction,
                         self.context.reduction_prev,
                         ops=[self.ops[e][k] for e, k in enumerate(active)],
                         preprocess=(self.preprocess[0], self.preprocess[1])).eval()


def time_sampled_cell(context: CellContext, probs: torch.Tensor,
                      space: SearchSpace = DARTS_SPACE, *,
                      generator: torch.Generator | None = None, repeats: int = 10,
                      warmup: int = 2, device: str = "cpu",
                      threads: int | None = 1,
                      bank: CellBank | None = None) -> tuple[list[int], LatencyResult]:
    """One binary-gate reset: draw one op per edge from ``probs``, build and time that cell.

    With a ``bank`` built for the same context, the cell reuses its modules (much faster).
    """
    active = sample_active(probs, space, generator)
    if bank is not None and (bank.context != context or bank.space != space):
        raise ValueError("bank was built for another context or space")
    cell = context.build(active, space) if bank is None else bank.select(active)
    return active, measure_latency(cell, context.input_shapes, device=device, repeats=repeats,
                                   warmup=warmup, threads=threads)


class _ContextProbe(nn.Module):
    """Stands in for a cell in build_cell_stack, so contexts come from the real bookkeeping."""

    def __init__(self, concat: tuple[int, ...], *channels_and_flags) -> None:
        super().__init__()
        self.concat = concat
        self.C_prev_prev, self.C_prev, self.C, self.reduction, self.reduction_prev = \
            channels_and_flags

    @property
    def multiplier(self) -> int:
        return len(self.concat)


def network_cell_contexts(C: int, layers: int, image_size: int, batch_size: int = 1,
                          space: SearchSpace = DARTS_SPACE,
                          stem_multiplier: int = 3) -> list[CellContext]:
    """The context of every cell of a CIFAR-style DARTS network (stem keeps the input size)."""
    from lenna_core.space.cells import build_cell_stack

    C_stem = stem_multiplier * C
    cells, _, _ = build_cell_stack(layers, C, C_stem, C_stem, False,
                                   lambda *args: _ContextProbe(space.concat, *args))
    contexts, spatial = [], image_size
    for probe in cells:
        contexts.append(CellContext(probe.reduction, probe.reduction_prev, probe.C_prev_prev,
                                    probe.C_prev, probe.C, spatial, batch_size))
        if probe.reduction:
            spatial //= 2
    return contexts
