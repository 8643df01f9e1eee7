"""Single-path cells: one op per edge, drawn with binary gates; what the profiler times."""

from __future__ import annotations

import torch

from lenna_core.space.cells import CellEdge, FixedCell
from lenna_core.space.search_space import DARTS_SPACE, SearchSpace


def single_path_cell(active: list[int], C_prev_prev: int, C_prev: int, C: int, reduction: bool,
                     reduction_prev: bool = False, space: SearchSpace = DARTS_SPACE) -> FixedCell:
    """Build the cell that keeps, on every edge of ``space``, the op with index ``active[e]``."""
    return FixedCell(single_path_edges(active, space), space.concat, C_prev_prev, C_prev, C,
                     reduction, reduction_prev)


def single_path_edges(active: list[int], space: SearchSpace = DARTS_SPACE) -> list[CellEdge]:
    """The (op, source, target) edges of the single-path cell that keeps op ``active[e]``."""
    if len(active) != space.num_edges:
        raise ValueError(f"active lists {len(active)} ops; the space has {space.num_edges} edges")
    for e, k in enumerate(active):
        if not 0 <= k < space.num_ops:
            raise ValueError(f"active[{e}]={k}: op indices must lie in 0..{space.num_ops - 1}")
    return [(space.primitives[k], src, dst) for k, (src, dst) in zip(active, space.edges)]


def sample_active(probs: torch.Tensor, space: SearchSpace = DARTS_SPACE,
                  generator: torch.Generator | None = None) -> list[int]:
    """Draw one op index per edge from the rows of ``probs`` (edges x ops)."""
    space.check_probabilities(probs)
    draws = torch.multinomial(probs.detach().double().cpu(), 1, generator=generator)
    return draws.squeeze(1).tolist()


def sample_single_path_cell(probs: torch.Tensor, C_prev_prev: int, C_prev: int, C: int,
                            reduction: bool, reduction_prev: bool = False,
                            space: SearchSpace = DARTS_SPACE,
                            generator: torch.Generator | None = None,
                            ) -> tuple[FixedCell, list[int]]:
    """Sample one op per edge from ``probs`` and build that cell; returns (cell, op indices)."""
    active = sample_active(probs, space, generator)
    cell = single_path_cell(active, C_prev_prev, C_prev, C, reduction, reduction_prev, space)
    return cell, active
