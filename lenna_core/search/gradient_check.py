"""Is an estimator's gradient in the block probabilities p the gradient of its estimate?

The search follows ``d E[latency] / d alpha``, which autograd takes through the softmax into
the estimator's gradient in p. This compares that gradient, entry by entry, with central
finite differences of the estimate itself, in float64 at seeded random p (p is the
estimator's input here, each entry moved alone, as the MLP reads it: no renormalisation).
"""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import torch

from lenna_core.search.estimators import LatencyEstimator
from lenna_core.validation import check_int


def gradient_in_p(estimator: LatencyEstimator, *, seed: int = 0, entries: int = 24,
                  eps: float = 1e-5) -> pd.DataFrame:
    """Autograd against central differences for ``entries`` seeded (cell, edge, op) entries
    of p; ``relative_difference`` is over the largest gradient entry of the two cells."""
    check_int("seed", seed, 0)
    check_int("entries", entries)
    if not 0 < eps < 1e-2:
        raise ValueError(f"eps={eps!r}: a step in (0, 0.01) keeps p near the point checked")
    model = copy.deepcopy(estimator).double()
    generator = torch.Generator().manual_seed(seed)
    shape = (model.space.num_edges, model.space.num_ops)
    probs = [torch.randn(shape, generator=generator, dtype=torch.float64).softmax(-1)
             for _ in range(2)]

    def estimate(normal: torch.Tensor, reduce: torch.Tensor) -> torch.Tensor:
        # The estimator's own sum over target blocks, without the row-sum check that a
        # finite-difference step (one entry moved) would fail.
        stacked = torch.stack([normal, reduce])[model.is_reduction.long()]
        return model.per_block(stacked).sum()

    leaves = [p.clone().requires_grad_(True) for p in probs]
    estimate(*leaves).backward()
    gradients = [leaf.grad.detach() for leaf in leaves]
    scale = max(float(g.abs().max()) for g in gradients) or 1.0
    picks = torch.randint(0, 2 * shape[0] * shape[1], (entries,), generator=generator)
    rows = []
    with torch.no_grad():
        for pick in picks.tolist():
            cell, rest = divmod(pick, shape[0] * shape[1])
            edge, op = divmod(rest, shape[1])
            moved = []
            for sign in (1.0, -1.0):
                p = [q.clone() for q in probs]
                p[cell][edge, op] += sign * eps
                moved.append(float(estimate(*p)))
            numeric = (moved[0] - moved[1]) / (2 * eps)
            automatic = float(gradients[cell][edge, op])
            rows.append({"cell": ("normal", "reduce")[cell], "edge": edge,
                         "op": model.space.primitives[op], "autograd": automatic,
                         "finite_difference": numeric,
                         "relative_difference": abs(automatic - numeric) / scale})
    return pd.DataFrame(rows)


def worst_relative_difference(checks: dict[str, pd.DataFrame]) -> dict[str, float]:
    """The largest relative difference of each estimator's check."""
    return {name: float(np.max(table["relative_difference"])) for name, table in checks.items()}
