"""Cells with fixed operations and the stack builder that both network kinds share.

A :class:`FixedCell` is given its edges explicitly as ``(op, source, target)`` triples, so the
same class builds a derived cell (two edges per node, from a :class:`Genotype`) and a
single-path cell (every edge of the space, one sampled op each).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from lenna_core.space.genotypes import Genotype
from lenna_core.space.operations import FactorizedReduce, Identity, ReLUConvBN, make_op

CellEdge = tuple[str, int, int]


def drop_path(x: torch.Tensor, drop_prob: float) -> torch.Tensor:
    """Zero whole samples with probability ``drop_prob``, rescaling the rest (DARTS's drop-path)."""
    if drop_prob <= 0.0:
        return x
    keep = 1.0 - drop_prob
    mask = torch.empty(x.size(0), 1, 1, 1, device=x.device, dtype=x.dtype).bernoulli_(keep)
    return x / keep * mask


class CellBase(nn.Module):
    """The part every cell shares: bring both inputs to ``C`` channels and the same size."""

    def __init__(self, C_prev_prev: int, C_prev: int, C: int, reduction: bool,
                 reduction_prev: bool, affine: bool,
                 preprocess: tuple[nn.Module, nn.Module] | None = None) -> None:
        super().__init__()
        self.reduction = reduction
        self.reduction_prev = reduction_prev
        # shared with another cell (see lenna_core.latency.blocks.CellBank)
        if preprocess is not None:
            self.preprocess0, self.preprocess1 = preprocess
            return
        # After a reduction cell, the cell before it is twice as large: halve it here.
        self.preprocess0 = (FactorizedReduce(C_prev_prev, C, affine=affine) if reduction_prev
                            else ReLUConvBN(C_prev_prev, C, 1, 1, 0, affine=affine))
        self.preprocess1 = ReLUConvBN(C_prev, C, 1, 1, 0, affine=affine)

    @property
    def multiplier(self) -> int:
        """How many node outputs the cell concatenates (its output has multiplier * C channels)."""
        return len(self.concat)


class FixedCell(CellBase):
    """A cell with one fixed operation per listed edge; nodes sum their incoming edges."""

    def __init__(self, edges: Sequence[CellEdge], concat: Sequence[int], C_prev_prev: int,
                 C_prev: int, C: int, reduction: bool, reduction_prev: bool,
                 affine: bool = True, *, ops: Sequence[nn.Module] | None = None,
                 preprocess: tuple[nn.Module, nn.Module] | None = None) -> None:
        """``ops`` and ``preprocess`` reuse already built modules instead of building new ones."""
        super().__init__(C_prev_prev, C_prev, C, reduction, reduction_prev, affine, preprocess)
        self.edges = tuple((str(op), int(src), int(dst)) for op, src, dst in edges)
        self.concat = tuple(concat)
        self.num_nodes = max(dst for _, _, dst in self.edges) + 1
        for op, src, dst in self.edges:
            if not 0 <= src < dst:
                raise ValueError(f"edge ({op!r}, {src}, {dst}): the source must be an earlier node")
        missing = set(range(2, self.num_nodes)) - {dst for _, _, dst in self.edges}
        if missing:
            raise ValueError(f"nodes {sorted(missing)} have no incoming edge")
        if ops is not None:
            if len(ops) != len(self.edges):
                raise ValueError(f"{len(ops)} ops given for {len(self.edges)} edges")
            self.ops = nn.ModuleList(ops)
            return
        # Only edges leaving the two input nodes of a reduction cell stride.
        self.ops = nn.ModuleList(
            make_op(op, C, 2 if reduction and src < 2 else 1, affine) for op, src, _ in self.edges)

    @classmethod
    def from_genotype(cls, genotype: Genotype, C_prev_prev: int, C_prev: int, C: int,
                      reduction: bool, reduction_prev: bool, affine: bool = True) -> FixedCell:
        """Build the normal or reduction cell of ``genotype``."""
        gene = genotype.reduce if reduction else genotype.normal
        concat = genotype.reduce_concat if reduction else genotype.normal_concat
        edges = [(op, src, position // 2 + 2) for position, (op, src) in enumerate(gene)]
        return cls(edges, concat, C_prev_prev, C_prev, C, reduction, reduction_prev, affine)

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, drop_prob: float = 0.0) -> torch.Tensor:
        states: list[torch.Tensor | None] = [self.preprocess0(s0), self.preprocess1(s1)]
        states += [None] * (self.num_nodes - 2)
        for (_, src, dst), op in zip(self.edges, self.ops):
            h = op(states[src])
            if self.training and not isinstance(op, Identity):
                h = drop_path(h, drop_prob)
            states[dst] = h if states[dst] is None else states[dst] + h
        return torch.cat([states[i] for i in self.concat], dim=1)


CellFactory = Callable[[int, int, int, bool, bool], CellBase]


def reduction_layers(layers: int) -> tuple[int, ...]:
    """Indices of the reduction cells: at 1/3 and 2/3 of the depth, as in DARTS."""
    return tuple(sorted({layers // 3, 2 * layers // 3}))


def build_cell_stack(layers: int, C: int, C_stem_prev_prev: int, C_stem_prev: int,
                     stem_reduces: bool, make_cell: CellFactory) -> tuple[nn.ModuleList, int, int]:
    """Stack ``layers`` cells, doubling channels at each reduction.

    Returns the cells, the channel count of the last cell's output and the channel count at
    2/3 depth (where DARTS attaches its auxiliary head). ``make_cell`` receives
    ``(C_prev_prev, C_prev, C, reduction, reduction_prev)``.
    """
    if layers < 1:
        raise ValueError(f"layers={layers}: a network needs at least one cell")
    cells = nn.ModuleList()
    C_prev_prev, C_prev, C_curr = C_stem_prev_prev, C_stem_prev, C
    reduction_prev = stem_reduces
    C_auxiliary = C_prev
    for i in range(layers):
        reduction = i in reduction_layers(layers)
        if reduction:
            C_curr *= 2
        cell = make_cell(C_prev_prev, C_prev, C_curr, reduction, reduction_prev)
        cells.append(cell)
        reduction_prev = reduction
        C_prev_prev, C_prev = C_prev, cell.multiplier * C_curr
        if i == 2 * layers // 3:
            C_auxiliary = C_prev
    return cells, C_prev, C_auxiliary


def check_input(x: torch.Tensor, in_channels: int, reductions: int) -> None:
    """Raise a ValueError unless ``x`` is an NCHW batch that survives ``reductions`` halvings."""
    if x.dim() != 4 or x.size(1) != in_channels:
        raise ValueError(f"input of shape {tuple(x.shape)}: expected (batch, {in_channels}, H, W)")
    factor = 2 ** reductions
    for side in x.shape[2:]:
        if side < factor or side % factor:
            raise ValueError(
                f"input of {x.size(2)}x{x.size(3)} pixels is too small or odd for "
                f"{reductions} halvings: H and W must be positive multiples of {factor}")
