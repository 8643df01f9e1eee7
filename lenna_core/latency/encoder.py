"""Block -> feature vector, identical in numpy (for fitting) and torch (for the search loss).

Feature layout, in order (``BlockEncoder.get_feature_names_out`` names every column):

1. ``is_normal``, ``is_reduction``: block type, one-hot; ``reduction_prev``: 0/1.
2. ``log2_C_prev_prev``, ``log2_C_prev``, ``log2_C``, ``log2_spatial``, ``log2_batch``.
3. ``p_<edge>_<op>``: the architecture probabilities, edge-major (edges x ops).
4. ``count_<op>``: expected number of edges using each op (the column sums of 3).
5. ``log2_fixed_mflops``: multiply-adds of the two preprocessing convolutions (per batch).
6. ``log2_expected_mflops``: expected multiply-adds of the edges under the probabilities.

Multiply-adds are counted on each primitive's built module (convolutions, and pooling as one
operation per window element: :func:`lenna_core.space.operations.op_macs`), in millions, for the
whole batch; logarithms keep the scale of a 4-channel block and a 128-channel block
comparable.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from lenna_core.latency.block_checks import check_blocks
from lenna_core.latency.blocks import CellContext
from lenna_core.space.operations import op_macs
from lenna_core.space.search_space import DARTS_SPACE, SearchSpace

CONTEXT_FEATURES = ("is_normal", "is_reduction", "reduction_prev", "log2_C_prev_prev",
                    "log2_C_prev", "log2_C", "log2_spatial", "log2_batch")


def edge_macs(context: CellContext, space: SearchSpace = DARTS_SPACE) -> np.ndarray:
    """(edges x ops) multiply-adds of every candidate on every edge, for the whole batch."""
    out = context.spatial // 2 if context.reduction else context.spatial
    table = np.array([[op_macs(name, context.C, out, 2 if context.reduction and src < 2 else 1)
                       for name in space.primitives] for src, _ in space.edges])
    return table * context.batch_size


def fixed_macs(context: CellContext) -> float:
    """Multiply-adds of the two preprocessing 1x1 convolutions, for the whole batch."""
    hw = context.spatial * context.spatial
    # After a reduction, s0 is twice as large and FactorizedReduce halves it.
    pre0 = context.C_prev_prev * context.C * hw
    pre1 = context.C_prev * context.C * hw
    return float(pre0 + pre1) * context.batch_size


def _log2(x: float) -> float:
    return float(np.log2(max(x, 1.0)))


def context_vector(context: CellContext) -> np.ndarray:
    """The context features (group 1, 2 and 5 of the layout) of one block."""
    return np.array([
        float(not context.reduction), float(context.reduction), float(context.reduction_prev),
        _log2(context.C_prev_prev), _log2(context.C_prev), _log2(context.C),
        _log2(context.spatial), _log2(context.batch_size), _log2(fixed_macs(context) / 1e6)])


def encode(context_features: torch.Tensor, probs: torch.Tensor,
           macs: torch.Tensor) -> torch.Tensor:
    """Features of a batch of blocks: differentiable in ``probs``.

    ``context_features`` (N, 9) from :func:`context_vector`, ``probs`` (N, edges, ops),
    ``macs`` (N, edges, ops) from :func:`edge_macs`; returns (N, n_features).
    """
    expected = (probs * macs).sum(dim=(1, 2)) / 1e6
    return torch.cat([
        context_features[:, :8], probs.flatten(1), probs.sum(dim=1),
        context_features[:, 8:9], torch.log2(expected.clamp_min(1.0)).unsqueeze(1)], dim=1)


def feature_names(space: SearchSpace = DARTS_SPACE) -> list[str]:
    """Names of the encoded features, in layout order."""
    return [*CONTEXT_FEATURES,
            *[f"p_{e:02d}_{op}" for e in range(space.num_edges) for op in space.primitives],
            *[f"count_{op}" for op in space.primitives], "log2_fixed_mflops",
            "log2_expected_mflops"]


def contexts_from_frame(frame: pd.DataFrame) -> list[CellContext]:
    """The CellContext of every row of a dataset frame."""
    cols = ["reduction", "reduction_prev", "C_prev_prev", "C_prev", "C", "spatial", "batch_size"]
    return [CellContext(bool(r[0]), bool(r[1]), *map(int, r[2:]))
            for r in frame[cols].itertuples(index=False)]


class BlockEncoder(TransformerMixin, BaseEstimator):
    """scikit-learn transformer: a dataset frame (context and ``p_*`` columns) -> features."""

    def __init__(self, space: SearchSpace = DARTS_SPACE, atol: float = 1e-4) -> None:
        self.space = space
        self.atol = atol

    def fit(self, X: pd.DataFrame, y=None) -> BlockEncoder:
        """Check the columns; nothing is learned (the encoding is fixed)."""
        self._probability_columns(X)
        self.feature_names_out_ = np.array(feature_names(self.space), dtype=object)
        self.n_features_out_ = len(self.feature_names_out_)
        return self

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        """Encode every row; raises ValueError on missing columns or invalid probabilities."""
        check_is_fitted(self, "feature_names_out_")
        columns = self._probability_columns(X)
        check_blocks(X, self.space, "X", atol=self.atol)
        probs = X[columns].to_numpy(dtype=float).reshape(
            len(X), self.space.num_edges, self.space.num_ops)
        contexts = contexts_from_frame(X)
        ctx = torch.tensor(np.stack([context_vector(c) for c in contexts]))
        macs = torch.tensor(np.stack([edge_macs(c, self.space) for c in contexts]))
        return encode(ctx, torch.tensor(probs), macs).numpy()

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        """Names of the output columns."""
        check_is_fitted(self, "feature_names_out_")
        return self.feature_names_out_

    def _probability_columns(self, X: pd.DataFrame) -> list[str]:
        if not isinstance(X, pd.DataFrame):
            raise ValueError("BlockEncoder needs a pandas DataFrame with the dataset's columns")
        columns = [f"p_{e:02d}_{op}" for e in range(self.space.num_edges)
                   for op in self.space.primitives]
        needed = [*columns, "reduction", "reduction_prev", "C_prev_prev", "C_prev", "C",
                  "spatial", "batch_size"]
        missing = [c for c in needed if c not in X.columns]
        if missing:
            raise ValueError(f"X lacks {len(missing)} columns the encoder needs, e.g. "
                             f"{missing[:3]}; pass a frame read with lenna_core.latency.dataset")
        return columns
