"""Adapting the shipped latency model to another device from k blocks measured there."""

from __future__ import annotations

import copy
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from lenna_core.latency.dataset import read_dataset
from lenna_core.latency.device_identity import DeviceMismatchWarning, device_identity
from lenna_core.latency.encoder import contexts_from_frame
from lenna_core.latency.lookup_table import LookupTableModel, OpLatencyTable, frame_probabilities
from lenna_core.latency.mlp_model import MLPLatency
from lenna_core.latency.transfer import METHODS, AdaptedLatency, adapt, cross_validate, fit_method

DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture(scope="module")
def shipped():
    return MLPLatency.load(DATA / "mlp_latency", check_device_here=False)


@pytest.fixture(scope="module")
def blocks():
    return read_dataset(DATA / "latency_dataset.csv").iloc[:240].reset_index(drop=True)


def _other_device(model, frame, seed=0, noise=0.02):
    """A device where blocks cost 1.3 x (the source's estimate) ** 1.2, with 2% noise."""
    rng = np.random.default_rng(seed)
    return 1.3 * model.predict(frame) ** 1.2 * np.exp(rng.normal(0, noise, len(frame)))


def test_log_affine_device_is_recovered_and_chosen(shipped, blocks):
    y = _other_device(shipped, blocks)
    calibration, held_out = blocks.iloc[:40], blocks.iloc[40:]
    adapted = adapt(shipped, calibration, y[:40], methods=("none", "scale", "log_affine"))
    assert adapted.method == "log_affine"
    assert adapted.power == pytest.approx(1.2, abs=0.05)
    error = np.abs(adapted.predict(held_out) / y[40:] - 1)
    unadapted = np.abs(shipped.predict(held_out) / y[40:] - 1)
    assert (error <= 0.1).mean() > 0.95 and (unadapted <= 0.1).mean() < 0.5
    scores = {r["method"]: r["cv_mape_pct"] for r in adapted.provenance["cross_validation"]}
    assert scores["log_affine"] < scores["scale"] < scores["none"]
    assert adapted.provenance["k"] == 40


def test_every_method_fits_and_predicts_positive_latencies(shipped, blocks):
    y = _other_device(shipped, blocks)[:60]
    frame = blocks.iloc[:60]
    for method in METHODS:
        predicted = fit_method(shipped, method, frame, y, seed=0,
                               table=shipped.prior_.table).predict(frame)
        assert predicted.shape == (60,) and (predicted > 0).all(), method
    finetuned = fit_method(shipped, "finetune", frame, y, seed=0)
    before = np.abs(np.log(shipped.predict(frame) / y)).mean()
    assert np.abs(np.log(finetuned.predict(frame) / y)).mean() < before
    # fine-tuning works on a copy: the source model is unchanged
    np.testing.assert_allclose(shipped.predict(frame),
                               MLPLatency.load(DATA / "mlp_latency",
                                               check_device_here=False).predict(frame))


def test_module_matches_predict_and_passes_gradients(shipped, blocks):
    y = _other_device(shipped, blocks)[:40]
    adapted = fit_method(shipped, "log_affine", blocks.iloc[:40], y)
    frame = blocks.iloc[40:45]
    contexts = contexts_from_frame(frame)
    probs = torch.tensor(frame_probabilities(frame, shipped.space)).requires_grad_(True)
    module = adapted.as_module(contexts)
    out = module(probs)
    np.testing.assert_allclose(out.detach().numpy(), adapted.predict(frame), rtol=1e-4)
    out.sum().backward()
    assert probs.grad is not None and probs.grad.abs().sum() > 0


def test_save_load_round_trip_with_provenance(shipped, blocks, tmp_path):
    y = _other_device(shipped, blocks)[:30]
    adapted = adapt(shipped, blocks.iloc[:30], y, methods=("scale", "log_affine"),
                    source_name="data/mlp_latency", profiling_seconds=12.5)
    adapted.save(tmp_path / "adapted")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # adapted here: no device warning
        loaded = AdaptedLatency.load(tmp_path / "adapted")
    np.testing.assert_allclose(loaded.predict(blocks.iloc[30:40]),
                               adapted.predict(blocks.iloc[30:40]), rtol=1e-6)
    assert loaded.method == adapted.method
    assert loaded.provenance["source"]["model"] == "data/mlp_latency"
    assert loaded.provenance["profiling_seconds"] == 12.5
    assert loaded.provenance["device"] == device_identity("cpu")


def test_rescaled_multiplies_every_prediction_and_its_module(shipped, blocks):
    adapted = fit_method(shipped, "log_affine", blocks.iloc[:40],
                         _other_device(shipped, blocks)[:40])
    half = adapted.rescaled(0.5, "reference-scaled ms")
    frame = blocks.iloc[40:45]
    np.testing.assert_allclose(half.predict(frame), 0.5 * adapted.predict(frame), rtol=1e-9)
    probs = torch.tensor(frame_probabilities(frame, shipped.space))
    module = half.as_module(contexts_from_frame(frame))
    np.testing.assert_allclose(module(probs).detach().numpy(), half.predict(frame), rtol=1e-4)
    assert half.provenance["rescaled"] == {"factor": 0.5, "unit": "reference-scaled ms"}
    assert "rescaled" not in adapted.provenance  # the original is left as it was
    for bad in (0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="factor="):
            adapted.rescaled(bad, "ms")


def test_an_adapted_model_loaded_on_another_device_warns(shipped, blocks, tmp_path):
    adapted = fit_method(shipped, "scale", blocks.iloc[:5], _other_device(shipped, blocks)[:5])
    adapted.provenance = {"device": dict(device_identity("cpu"), cpu_family_model="0/0")}
    adapted.save(tmp_path / "m")
    with pytest.warns(DeviceMismatchWarning, match="cpu_family_model: 0/0"):
        AdaptedLatency.load(tmp_path / "m")


def test_bad_input_is_named(shipped, blocks, tmp_path):
    y = _other_device(shipped, blocks)[:4]
    with pytest.raises(ValueError, match="method='affine'.*one of"):
        fit_method(shipped, "affine", blocks.iloc[:4], y)
    with pytest.raises(ValueError, match="'scratch' needs at least 10 labelled blocks, got 4"):
        fit_method(shipped, "scratch", blocks.iloc[:4], y)
    with pytest.raises(ValueError, match="positive, finite"):
        fit_method(shipped, "scale", blocks.iloc[:4], -y)
    with pytest.raises(ValueError, match="unknown"):
        adapt(shipped, blocks.iloc[:4], y, methods=("scale", "magic"))
    with pytest.raises(ValueError, match="at least 2"):
        cross_validate(shipped, blocks.iloc[:1], y[:1])
    plain = MLPLatency(hidden=(8,), max_epochs=5).fit(blocks.iloc[:20], y.repeat(5))
    with pytest.raises(ValueError, match="no prior"):
        fit_method(plain, "recalibrated_table", blocks.iloc[:4], y)
    with pytest.raises(ValueError, match="not an adapted model"):
        AdaptedLatency.load(tmp_path / "nothing")


def test_a_device_whose_ops_cost_otherwise_is_learnt_from_its_op_table(shipped, blocks):
    """On a device where max pooling costs 3x, only the op table measured there (with the
    shipped MLP's correction on top) predicts the blocks; a map of the old model cannot."""
    table = shipped.prior_.table
    pooled = table.ops["primitive"] == "max_pool_3x3"
    device_table = OpLatencyTable(table.ops.assign(latency_ms=table.ops.latency_ms.where(
        ~pooled, 3 * table.ops.latency_ms)), table.fixed, table.space, table.meta)
    truth = copy.copy(shipped)
    truth.prior_ = LookupTableModel(device_table, calibrate=True)
    truth.prior_.scale_, truth.prior_.offset_, truth.prior_.space_ = 0.8, 0.2, table.space
    y = truth.predict(blocks)
    remeasured = fit_method(shipped, "remeasured_table", blocks.iloc[:40], y[:40],
                            table=device_table)
    np.testing.assert_allclose(remeasured.predict(blocks.iloc[40:]), y[40:], rtol=1e-6)
    mapped = fit_method(shipped, "log_affine", blocks.iloc[:40], y[:40])
    assert np.abs(mapped.predict(blocks.iloc[40:]) / y[40:] - 1).max() > 0.05
    chosen = adapt(shipped, blocks.iloc[:40], y[:40], table=device_table)
    assert chosen.method == "remeasured_table"
    with pytest.raises(ValueError, match="needs table="):
        fit_method(shipped, "remeasured_table", blocks.iloc[:40], y[:40])


def test_available_methods_follow_k_the_prior_and_the_table(shipped, blocks):
    from lenna_core.latency.transfer import available_methods

    assert available_methods(shipped, 4) == ["none", "scale", "log_affine",
                                             "recalibrated_table"]
    assert "remeasured_table" in available_methods(shipped, 4, shipped.prior_.table)
    assert "scratch" in available_methods(shipped, 10) and "scratch" not in available_methods(
        shipped, 9)
    plain = copy.copy(shipped)
    plain.prior_ = None
    assert not [m for m in available_methods(plain, 50, shipped.prior_.table)
                if "table" in m or m.startswith("remeasured")]


def test_blocks_of_another_op_set_are_refused_by_name(shipped, blocks):
    y = _other_device(shipped, blocks.iloc[:12])
    renamed = blocks.iloc[:12].rename(columns=lambda c: c.replace("_max_pool_3x3", "_conv_1x1"))
    with pytest.raises(ValueError, match=r"only in the blocks \['conv_1x1'\], only in the "
                                         r"model \['max_pool_3x3'\]"):
        adapt(shipped, renamed, y, methods=("scale",))
    with pytest.raises(ValueError, match="missing edges"):
        adapt(shipped, blocks.iloc[:12].drop(columns="p_00_none"), y, methods=("scale",))


def test_blocks_the_model_table_cannot_price_leave_only_the_device_table(shipped, blocks):
    from lenna_core.latency.transfer import THROUGH_SOURCE_PRIOR, available_methods

    batch8 = blocks.iloc[:20].assign(batch_size=8)
    assert available_methods(shipped, 20, X=blocks.iloc[:20]) == available_methods(shipped, 20)
    assert available_methods(shipped, 20, X=batch8) == ["scratch"]
    device_table = OpLatencyTable.measure(contexts_from_frame(batch8), repeats=2, warmup=0,
                                          progress=False)
    left = available_methods(shipped, 20, device_table, X=batch8)
    assert left == ["remeasured_table", "remeasured_log_affine", "scratch"]
    assert not set(left) & set(THROUGH_SOURCE_PRIOR)
    with pytest.raises(ValueError, match="cannot price"):
        adapt(shipped, batch8, _other_device(shipped, blocks.iloc[:20]),
              methods=("scale", "log_affine"))


def test_a_method_that_cannot_price_the_blocks_is_scored_nan_and_never_chosen(
        shipped, blocks, monkeypatch):
    from lenna_core.latency import transfer

    fit = transfer.fit_method

    def failing_log_affine(source, method, *args, **kwargs):
        if method == "log_affine":  # as a recalibrated table that prices a block at <= 0 ms
            raise ValueError("the calibrated lookup table predicts a latency <= 0 ms")
        return fit(source, method, *args, **kwargs)

    monkeypatch.setattr(transfer, "fit_method", failing_log_affine)
    y = _other_device(shipped, blocks)
    adapted = adapt(shipped, blocks.iloc[:40], y[:40], methods=("none", "scale", "log_affine"))
    assert adapted.method == "scale"
    rows = {r["method"]: r for r in adapted.provenance["cross_validation"]}
    assert np.isnan(rows["log_affine"]["cv_mape_pct"]) and "<= 0 ms" in rows["log_affine"]["failed"]
    monkeypatch.setattr(transfer, "fit_method", lambda *a, **k: failing_log_affine(
        a[0], "log_affine"))
    with pytest.raises(ValueError, match="no method"):
        adapt(shipped, blocks.iloc[:40], y[:40], methods=("scale", "log_affine"))
