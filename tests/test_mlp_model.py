"""The MLP latency model: learns a known function, deterministic, differentiable, persistent."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from lenna_core.blocks import CellContext
from lenna_core.dataset import SamplingSpec, probability_columns, sample_block
from lenna_core.encoder import BlockEncoder
from lenna_core.mlp_model import MLPLatency
from lenna_core.search_space import SearchSpace


def synthetic(rows: int, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Blocks with a latency that is a smooth, known function of their features."""
    records = []
    for row_id in range(rows):
        context, probs, _ = sample_block(row_id, seed, SamplingSpec())
        record = dict(context.to_dict())
        record.update(zip(probability_columns(), probs.ravel()))
        records.append(record)
    X = pd.DataFrame(records)
    f = BlockEncoder().fit_transform(X)
    # Per-op costs (counts) plus a compute term: the shape real latencies have.
    y = 0.5 + f[:, 120:128] @ np.linspace(0.05, 0.4, 8) + 0.02 * 2 ** f[:, -1]
    return X, y


@pytest.fixture(scope="module")
def fitted():
    X, y = synthetic(400)
    model = MLPLatency(hidden=(64, 64), max_epochs=150, patience=30, random_state=0)
    return model.fit(X[:320], y[:320]), X, y


def test_learns_a_known_function(fitted):
    model, X, y = fitted
    relative = np.abs(model.predict(X[320:]) - y[320:]) / y[320:]
    assert np.median(relative) < 0.05, np.median(relative)


def test_training_is_deterministic(fitted):
    model, X, y = fitted
    again = clone(model).fit(X[:320], y[:320])
    np.testing.assert_array_equal(again.predict(X[320:]), model.predict(X[320:]))
    assert clone(model).get_params() == model.get_params()


def test_module_matches_predict_and_its_gradient_matches_finite_differences(fitted):
    model, X, _ = fitted
    row = X.iloc[[0]]
    context = CellContext(bool(row.reduction.iloc[0]), bool(row.reduction_prev.iloc[0]),
                          *(int(row[c].iloc[0]) for c in ("C_prev_prev", "C_prev", "C",
                                                          "spatial", "batch_size")))
    probs = torch.tensor(row[probability_columns()].to_numpy().reshape(1, 14, 8),
                         dtype=torch.float64)
    module = model.as_module([context]).double()
    assert float(module(probs)[0]) == pytest.approx(float(model.predict(row)[0]), rel=1e-5)
    # Gradient with respect to the alphas behind the probabilities, against central differences.
    alpha = torch.log(probs.clamp_min(1e-6)).requires_grad_(True)
    latency = lambda a: module(torch.softmax(a, dim=-1)).sum()  # noqa: E731
    (grad,) = torch.autograd.grad(latency(alpha), alpha)
    eps = 1e-5
    for e, k in [(0, 4), (3, 1), (13, 7)]:
        step = torch.zeros_like(alpha)
        step[0, e, k] = eps
        numeric = (latency(alpha + step) - latency(alpha - step)) / (2 * eps)
        assert grad[0, e, k].item() == pytest.approx(numeric.item(), rel=1e-4, abs=1e-9)
    assert all(not p.requires_grad for p in module.parameters())


def test_save_and_load_round_trip(fitted, tmp_path):
    model, X, _ = fitted
    model.save(tmp_path / "mlp")
    loaded = MLPLatency.load(tmp_path / "mlp")
    np.testing.assert_allclose(loaded.predict(X[:20]), model.predict(X[:20]), rtol=1e-6)
    with pytest.raises(ValueError, match="another feature layout"):
        MLPLatency.load(tmp_path / "mlp", space=SearchSpace(steps=5))


def test_bad_input(fitted):
    model, X, y = fitted
    with pytest.raises(ValueError, match="trained on 130 features"):
        model.predict_features(np.zeros((2, 129)))
    with pytest.raises(ValueError, match="expected"):
        model.as_module()(torch.zeros(1, 9), torch.zeros(1, 14, 7), torch.zeros(1, 14, 7))
    with pytest.raises(NotFittedError):
        MLPLatency().predict(X)
    with pytest.raises(ValueError, match="positive"):
        MLPLatency().fit(X[:10], -y[:10])
    with pytest.raises(ValueError, match="validation_fraction"):
        MLPLatency(validation_fraction=1.5).fit(X[:10], y[:10])
