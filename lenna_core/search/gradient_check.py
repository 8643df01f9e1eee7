"""Is an estimator's gradient in the block probabilities p the gradient of its estimate, and
does the MLP's gradient point where the op table's does?

The search follows ``d E[latency] / d alpha``, which autograd takes through the softmax into
the estimator's gradient in p. :func:`gradient_in_p` compares that gradient, entry by entry,
with central finite differences of the estimate itself, in float64 at seeded random p (p is
the estimator's input here, each entry moved alone, as the MLP reads it: no renormalisation).
:func:`gradient_agreement` compares the whole gradient of one estimator with another's at the
same p: against the lookup table, whose expectation is linear in p (its finite differences are
its op costs, exactly), it asks whether the MLP pulls the alphas towards the ops that cost less.
"""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import torch
from scipy import stats

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
    probs = _random_point(model, generator)
    estimate = _estimate_of(model)
    gradients = _gradients(estimate, probs)
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


def _random_point(model: LatencyEstimator, generator: torch.Generator) -> list[torch.Tensor]:
    """Seeded p of the normal and the reduction cell (softmax of standard normal alphas)."""
    shape = (model.space.num_edges, model.space.num_ops)
    return [torch.randn(shape, generator=generator, dtype=torch.float64).softmax(-1)
            for _ in range(2)]


def _estimate_of(model: LatencyEstimator):
    def estimate(normal: torch.Tensor, reduce: torch.Tensor) -> torch.Tensor:
        # The estimator's own sum over target blocks, without the row-sum check that a
        # finite-difference step (one entry moved) would fail.
        stacked = torch.stack([normal, reduce])[model.is_reduction.long()]
        return model.per_block(stacked).sum()
    return estimate


def _gradients(estimate, probs: list[torch.Tensor]) -> list[torch.Tensor]:
    leaves = [p.clone().requires_grad_(True) for p in probs]
    estimate(*leaves).backward()
    return [leaf.grad.detach() for leaf in leaves]


def gradient_agreement(estimator: LatencyEstimator, reference: LatencyEstimator, *,
                       seed: int = 0) -> dict[str, float]:
    """How ``estimator``'s whole gradient in p (both cells, every edge and op) agrees with
    ``reference``'s at the same seeded p: Spearman rank correlation and cosine similarity
    (neither depends on the two estimates' units), over the entries of ops on edges."""
    check_int("seed", seed, 0)
    if estimator.space != reference.space:
        raise ValueError("the two estimators search different spaces: their gradients in p "
                         "have different entries")
    grads = []
    for model in (copy.deepcopy(estimator).double(), copy.deepcopy(reference).double()):
        probs = _random_point(model, torch.Generator().manual_seed(seed))
        grads.append(torch.cat([g.flatten() for g in _gradients(_estimate_of(model), probs)]))
    a, b = (g.numpy() for g in grads)
    return {"spearman": float(stats.spearmanr(a, b).statistic),
            "cosine": float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b))),
            "entries": int(a.size)}


def worst_relative_difference(checks: dict[str, pd.DataFrame]) -> dict[str, float]:
    """The largest relative difference of each estimator's check."""
    return {name: float(np.max(table["relative_difference"])) for name, table in checks.items()}
