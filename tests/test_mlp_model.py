"""The MLP latency model: learns a known function, deterministic, differentiable, persistent."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from lenna_core.latency.blocks import CellContext
from lenna_core.latency.dataset import SamplingSpec, probability_columns, sample_block
from lenna_core.latency.encoder import BlockEncoder, contexts_from_frame, op_macs
from lenna_core.latency.lookup_table import LookupTableModel, MissingLatencyError, OpLatencyTable
from lenna_core.latency.mlp_model import MLPLatency
from lenna_core.latency.op_timing import OP_KEY, edge_keys
from lenna_core.latency.profiler import machine_fingerprint
from lenna_core.space.search_space import DARTS_SPACE, SearchSpace


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


def test_saved_device_is_the_machine_that_measured_the_labels(fitted, tmp_path):
    model, _, _ = fitted
    labels_machine = {"device": "cpu", "device_name": "Other CPU", "cpu_family_model": "6/85"}
    model.save(tmp_path / "mlp", labels_measured_on=labels_machine)
    meta = json.loads((tmp_path / "mlp.json").read_text())
    assert meta["device"] == labels_machine
    assert meta["fitted_on"]["device_name"] == machine_fingerprint("cpu")["device_name"]
    assert MLPLatency.load(tmp_path / "mlp").device_ == labels_machine
    model.save(tmp_path / "here")  # no record of the labels: this machine is assumed
    assert MLPLatency.load(tmp_path / "here").device_["cpu_isa"] == machine_fingerprint()["cpu_isa"]


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


# ---------------------------------------------------------------- the lookup-table prior

def macs_table(contexts) -> OpLatencyTable:
    """Invented op latencies that grow with each op's multiply-adds (no timing)."""
    keys = {(name, *key) for c in contexts for key in edge_keys(c)
            for name in DARTS_SPACE.primitives}
    ops = pd.DataFrame(sorted(keys), columns=list(OP_KEY))
    ops["latency_ms"] = [0.02 + 2e-6 * op_macs(name, C, spatial // stride, stride)
                         for name, C, spatial, stride, _ in ops.itertuples(index=False)]
    fixed = pd.DataFrame([c.to_dict() for c in dict.fromkeys(contexts)])
    fixed["latency_ms"] = 0.3 + 0.005 * fixed["C_prev"]
    # What a measured table also records (its files need them).
    return OpLatencyTable(ops.assign(iqr_ms=0.0, repeats=1), fixed.assign(iqr_ms=0.0, repeats=1))


@pytest.fixture(scope="module")
def with_prior():
    X, _ = synthetic(400, seed=1)
    table = macs_table(contexts_from_frame(X))
    table_sum = LookupTableModel(table).table_sum(X)
    # Additive in the ops, scaled, plus a non-additive slowdown of blocks heavy in pooling.
    pooling = X[[c for c in probability_columns() if "pool" in c]].to_numpy().sum(axis=1)
    y = (1.4 * table_sum + 0.3) * np.exp(0.05 * pooling)
    model = MLPLatency(hidden=(64,), max_epochs=150, patience=30, random_state=0, prior=table)
    return model.fit(X[:320], y[:320]), X, y, table


def test_prior_model_learns_the_correction_to_the_table(with_prior):
    model, X, y, table = with_prior
    relative = np.abs(model.predict(X[320:]) - y[320:]) / y[320:]
    calibrated = LookupTableModel(table, calibrate=True).fit(X[:320], y[:320])
    table_error = np.abs(calibrated.predict(X[320:]) - y[320:]) / y[320:]
    assert np.median(relative) < 0.5 * np.median(table_error), (relative, table_error)
    assert model.prior_.scale_ == pytest.approx(calibrated.scale_)
    again = clone(model).fit(X[:320], y[:320])
    np.testing.assert_array_equal(again.predict(X[320:]), model.predict(X[320:]))


def test_prior_module_matches_predict_and_its_gradient(with_prior):
    model, X, _, _ = with_prior
    rows = X.iloc[:3]
    contexts = contexts_from_frame(rows)
    probs = torch.tensor(rows[probability_columns()].to_numpy().reshape(3, 14, 8),
                         dtype=torch.float64, requires_grad=True)
    module = model.as_module(contexts).double()
    latency = module(probs)
    np.testing.assert_allclose(latency.detach().numpy(), model.predict(rows), rtol=1e-5)
    (grad,) = torch.autograd.grad(latency.sum(), probs)
    eps = 1e-6
    for b, e, k in [(0, 0, 3), (1, 5, 6), (2, 13, 1)]:
        step = torch.zeros_like(probs)
        step[b, e, k] = eps
        with torch.no_grad():
            numeric = (module(probs + step).sum() - module(probs - step).sum()) / (2 * eps)
        assert grad[b, e, k].item() == pytest.approx(numeric.item(), rel=1e-4, abs=1e-9)


def test_prior_model_round_trips_with_its_table(with_prior, tmp_path):
    model, X, _, _ = with_prior
    model.save(tmp_path / "mlp")
    assert (tmp_path / "mlp.table.csv").exists()
    loaded = MLPLatency.load(tmp_path / "mlp")
    assert loaded.module_.corrects_prior
    np.testing.assert_allclose(loaded.predict(X[:20]), model.predict(X[:20]), rtol=1e-5)


def test_prior_model_bad_input(with_prior):
    model, X, y, _ = with_prior
    with pytest.raises(ValueError, match="prior_ms"):
        model.predict_features(BlockEncoder().fit_transform(X[:2]))
    with pytest.raises(MissingLatencyError, match="lacks"):
        model.as_module([CellContext(False, False, 128, 128, 128, 64)])
    with pytest.raises(ValueError, match="OpLatencyTable"):
        MLPLatency(prior="data/op_latency_table.csv").fit(X[:10], y[:10])


def test_a_session_calibration_maps_every_prediction_and_survives_saving(with_prior, tmp_path):
    model, X, y, _ = with_prior
    session = clone(model).fit(X[:320], y[:320])
    raw = session.predict(X[320:])
    # Another session's labels of the held-out blocks: a power of this model's predictions.
    session.calibrate_to_session(X[320:], 1.3 * raw ** 1.1)
    assert session.session_calibration_.slope == pytest.approx(1.1, rel=1e-4)
    np.testing.assert_allclose(session.predict(X[320:]), 1.3 * raw ** 1.1, rtol=1e-4)
    np.testing.assert_array_equal(session.without_session_calibration().predict(X[320:]), raw)
    rows = X.iloc[:3]
    probs = torch.tensor(rows[probability_columns()].to_numpy().reshape(3, 14, 8),
                         dtype=torch.float64)
    module = session.as_module(contexts_from_frame(rows)).double()
    np.testing.assert_allclose(module(probs).numpy(), session.predict(rows), rtol=1e-5)
    session.save(tmp_path / "mlp")
    loaded = MLPLatency.load(tmp_path / "mlp")
    assert loaded.session_calibration_ == session.session_calibration_
    np.testing.assert_allclose(loaded.predict(X[320:]), session.predict(X[320:]), rtol=1e-5)
    session.fit(X[:320], y[:320])  # a new fit is a new model: no calibration carries over
    assert session.session_calibration_ is None
    np.testing.assert_array_equal(session.predict(X[320:]), raw)


def test_a_damaged_session_calibration_is_refused_on_load(with_prior, tmp_path):
    from lenna_core.latency.file_checks import with_digest
    from lenna_core.latency.session_calibration import SessionCalibration

    model, X, y, _ = with_prior
    calibrated = clone(model).fit(X[:320], y[:320])
    calibrated.set_session_calibration(SessionCalibration(0.1, 1.05, 80)).save(tmp_path / "mlp")
    path = tmp_path / "mlp.json"
    meta = json.loads(path.read_text())
    meta.pop("sha256")
    meta["session_calibration"]["slope"] = 0.0
    path.write_text(json.dumps(with_digest(meta)))
    with pytest.raises(ValueError, match="slope positive"):
        MLPLatency.load(tmp_path / "mlp")
    with pytest.raises(ValueError, match="SessionCalibration"):
        calibrated.set_session_calibration({"slope": 1.0})
