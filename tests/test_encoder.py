"""The encoder: documented layout, numpy and torch paths agree, gradients flow, bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone

from lenna_core.latency.blocks import CellContext
from lenna_core.latency.dataset import SamplingSpec, probability_columns, sample_block
from lenna_core.latency.encoder import (
    BlockEncoder,
    context_vector,
    edge_macs,
    encode,
    feature_names,
    op_macs,
)


def frame(rows: int = 6, seed: int = 0) -> pd.DataFrame:
    records = []
    for row_id in range(rows):
        context, probs, _ = sample_block(row_id, seed, SamplingSpec())
        record = {k: v for k, v in context.to_dict().items()}
        record.update(zip(probability_columns(), probs.ravel()))
        records.append(record)
    return pd.DataFrame(records)


def test_layout_and_names():
    X = frame()
    enc = BlockEncoder().fit(X)
    out = enc.transform(X)
    names = list(enc.get_feature_names_out())
    assert out.shape == (6, len(names)) and names == feature_names()
    assert names[:3] == ["is_normal", "is_reduction", "reduction_prev"]
    assert len(names) == 8 + 14 * 8 + 8 + 2
    # Probability block equals the input columns; counts are their column sums per op.
    probs = X[probability_columns()].to_numpy().reshape(6, 14, 8)
    np.testing.assert_allclose(out[:, 8:8 + 112], probs.reshape(6, -1))
    np.testing.assert_allclose(out[:, 120:128], probs.sum(axis=1))
    np.testing.assert_array_equal(out[:, 0] + out[:, 1], 1.0)


def test_deterministic_and_clonable():
    X = frame()
    a = BlockEncoder().fit_transform(X)
    b = clone(BlockEncoder()).fit_transform(X)
    np.testing.assert_array_equal(a, b)


def test_macs_by_hand():
    assert op_macs("sep_conv_3x3", 4, 8, 1) == 2 * (9 * 4 + 16) * 64
    assert op_macs("dil_conv_5x5", 4, 8, 1) == (25 * 4 + 16) * 64
    assert op_macs("skip_connect", 4, 8, 1) == 0 and op_macs("skip_connect", 4, 8, 2) == 16 * 64
    assert op_macs("none", 4, 8, 2) == 0 and op_macs("max_pool_3x3", 4, 8, 1) == 9 * 4 * 64
    context = CellContext.in_network(4, True, False, 16, batch_size=2)
    table = edge_macs(context)
    assert table.shape == (14, 8) and table[0, 4] == 2 * op_macs("sep_conv_3x3", 4, 8, 2)


def test_torch_path_is_differentiable_and_matches_numpy():
    X = frame(1)
    ref = BlockEncoder().fit_transform(X)
    context = CellContext(**{k: (bool(v) if k.startswith("reduction") else int(v))
                             for k, v in X.iloc[0][["reduction", "reduction_prev", "C_prev_prev",
                                                     "C_prev", "C", "spatial",
                                                     "batch_size"]].items()})
    probs = torch.tensor(X[probability_columns()].to_numpy().reshape(1, 14, 8),
                         requires_grad=True)
    out = encode(torch.tensor(context_vector(context))[None], probs,
                 torch.tensor(edge_macs(context))[None])
    np.testing.assert_allclose(out.detach().numpy(), ref, rtol=1e-12)
    out[0, -1].backward()  # expected MACs depend on the probabilities
    assert probs.grad is not None and probs.grad.abs().sum() > 0


def test_bad_input():
    X = frame(2)
    enc = BlockEncoder().fit(X)
    broken = X.copy()
    broken[probability_columns()[0]] += 0.5
    with pytest.raises(ValueError, match="sum to 1"):
        enc.transform(broken)
    with pytest.raises(ValueError, match="lacks"):
        enc.transform(X.drop(columns=["C"]))
    with pytest.raises(ValueError, match="DataFrame"):
        enc.fit(np.zeros((2, 130)))
