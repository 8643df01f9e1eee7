"""The cell search space: which primitives, how many intermediate nodes, and derivation."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lenna_core.space.genotypes import Edge, Genotype
from lenna_core.space.operations import PRIMITIVES, check_primitive
from lenna_core.validation import check_int


@dataclass(frozen=True)
class SearchSpace:
    """A DARTS cell space: candidate ``primitives`` on every edge, ``steps`` intermediate nodes.

    Node ``j`` (2 .. steps+1) has a mixed edge from every earlier node, so a cell has
    ``2 + 3 + ... + (steps+1)`` edges (14 for DARTS's 4 steps, 20 for LENNA's 5).
    The cell's output concatenates the last ``multiplier`` nodes (default: all intermediate).
    """

    primitives: tuple[str, ...] = PRIMITIVES
    steps: int = 4
    multiplier: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "primitives", tuple(self.primitives))
        if not self.primitives:
            raise ValueError("primitives must name at least one operation")
        for name in self.primitives:
            check_primitive(name)
        if len(set(self.primitives)) != len(self.primitives):
            raise ValueError(f"primitives must not repeat; got {list(self.primitives)}")
        if (isinstance(self.steps, bool) or not isinstance(self.steps, int)
                or not 1 <= self.steps <= 16):
            raise ValueError(f"steps={self.steps!r}: must be an integer in 1..16")
        if self.multiplier is None:
            object.__setattr__(self, "multiplier", self.steps)
        if not 1 <= self.multiplier <= self.steps:
            raise ValueError(f"multiplier={self.multiplier}: must lie in 1..steps={self.steps}")

    @property
    def num_ops(self) -> int:
        """Number of candidate operations per edge."""
        return len(self.primitives)

    @property
    def edges(self) -> list[tuple[int, int]]:
        """All mixed edges as (source node, target node), in the order alphas index them."""
        return [(src, dst) for dst in range(2, self.steps + 2) for src in range(dst)]

    @property
    def num_edges(self) -> int:
        """Number of mixed edges in one cell."""
        return len(self.edges)

    @property
    def concat(self) -> tuple[int, ...]:
        """The nodes whose outputs the cell concatenates."""
        return tuple(range(self.steps + 2 - self.multiplier, self.steps + 2))

    def check_probabilities(self, probs: torch.Tensor, name: str = "probs",
                            atol: float = 1e-4) -> None:
        """Raise a ValueError unless ``probs`` is an (edges x ops) row-stochastic matrix."""
        shape = (self.num_edges, self.num_ops)
        if tuple(probs.shape) != shape:
            raise ValueError(f"{name} has shape {tuple(probs.shape)}; this space needs {shape} "
                             f"({self.num_edges} edges x {self.num_ops} primitives)")
        if not torch.isfinite(probs).all() or (probs < 0).any():
            raise ValueError(f"{name} must be finite and non-negative")
        sums = probs.sum(dim=-1)
        if not torch.allclose(sums, torch.ones_like(sums), atol=atol):
            worst = (sums - 1).abs().max().item()
            raise ValueError(f"each row of {name} must sum to 1 (within {atol}); "
                             f"the worst row is off by {worst:.3g}")

    def derive_cell(self, weights: torch.Tensor, max_skip: int | None = None
                    ) -> tuple[Edge, ...]:
        """Discretise one cell the DARTS way: per node, the two strongest incoming edges.

        An edge's strength is its largest weight over the non-``none`` operations, and the
        op kept on it is the one with that weight. With ``max_skip``, at most that many
        ``skip_connect`` edges are kept (against DARTS's collapse to skips): as in P-DARTS,
        the weakest kept skip is struck out and the cell derived again, until it fits.
        """
        shape = (self.num_edges, self.num_ops)
        if tuple(weights.shape) != shape:
            raise ValueError(f"weights has shape {tuple(weights.shape)}; this space needs {shape} "
                             f"({self.num_edges} edges x {self.num_ops} primitives)")
        check_int("max_skip", max_skip, 0, optional=True)
        weights = weights.detach().float().cpu().clone()
        gene = self._derive(weights)
        if max_skip is None or "skip_connect" not in self.primitives:
            return gene
        skip = self.primitives.index("skip_connect")
        while sum(op == "skip_connect" for op, _ in gene) > max_skip:
            kept = [self._edge_index(i, src) for i, (op, src) in enumerate(gene)
                    if op == "skip_connect"]
            weakest = min(kept, key=lambda e: weights[e, skip].item())
            weights[weakest, skip] = -1.0  # below any probability: never chosen again
            gene = self._derive(weights)
        return gene

    def _edge_index(self, position: int, src: int) -> int:
        """Row of the alpha matrix for the ``position``-th entry of a derived cell."""
        node = 2 + position // 2
        return sum(range(2, node)) + src

    def _derive(self, weights: torch.Tensor) -> tuple[Edge, ...]:
        candidates = [k for k, name in enumerate(self.primitives) if name != "none"]
        if not candidates:
            raise ValueError("a space whose only primitive is 'none' cannot derive a cell")
        gene: list[Edge] = []
        start = 0
        for node in range(2, self.steps + 2):
            rows = weights[start:start + node, candidates]
            best_weight, best_op = rows.max(dim=1)
            # Strongest first, as DARTS lists them; the stable sort breaks ties by lower index.
            order = sorted(range(node), key=lambda src: -best_weight[src].item())[:2]
            gene.extend((self.primitives[candidates[best_op[src]]], src) for src in order)
            start += node
        return tuple(gene)

    def derive_genotype(self, weights_normal: torch.Tensor, weights_reduce: torch.Tensor,
                        max_skip: int | None = None) -> Genotype:
        """Derive a Genotype from the normal and reduction cells' op weights (probabilities)."""
        return Genotype(normal=self.derive_cell(weights_normal, max_skip),
                        normal_concat=self.concat,
                        reduce=self.derive_cell(weights_reduce, max_skip),
                        reduce_concat=self.concat)

    def to_dict(self) -> dict:
        """A JSON-ready description of the space."""
        return {"primitives": list(self.primitives), "steps": self.steps,
                "multiplier": self.multiplier}


DARTS_SPACE = SearchSpace()
"""The DARTS CNN space: 8 primitives, 4 intermediate nodes, 14 edges."""
