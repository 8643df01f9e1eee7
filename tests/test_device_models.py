"""Chapter 4's models fitted on a device folder: the committed Xeon's, copied, fit in seconds."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lenna_core.latency.candidates import MLP_ON_TABLE
from lenna_core.latency.dataset import probability_columns, read_dataset, read_metadata
from lenna_core.latency.dataset_files import (
    metadata_path,
    record_rows_file,
    write_json_atomically,
)
from lenna_core.latency.device_folder import read_device_folder, read_manifest, write_manifest
from lenna_core.latency.device_identity import (
    DeviceMismatchWarning,
    identity_differences,
    identity_from_record,
)
from lenna_core.latency.device_models import (
    METRICS_FILE,
    MODEL_PREFIX,
    POOL_LABELS,
    SESSION_CALIBRATED,
    SESSION_FOLDS,
    STANDARD_FLOOR,
    evaluation_blocks,
    fit_device_models,
    save_device_model,
)
from lenna_core.latency.lookup_table import CONTEXT_KEY, OpLatencyTable
from lenna_core.latency.machine_state import state_stretch
from lenna_core.latency.metrics import latency_metrics
from lenna_core.latency.mlp_model import MLPLatency
from lenna_core.latency.onnx_runtime import OnnxRuntimeCpu
from lenna_core.latency.session_calibration import cross_fitted, fit_session_calibration

XEON = Path(__file__).resolve().parents[1] / "data" / "devices" / "xeon-6-167"
MODELS = ["MLP", MLP_ON_TABLE, "ElasticNet", "lookup table", "lookup table, calibrated"]
SMALL = {"hidden": (16,), "max_epochs": 20}  # where the scores are not what is tested
BLOCK = [*CONTEXT_KEY, *probability_columns()]


def _copy(tmp_path: Path, name: str = "xeon") -> Path:
    return Path(shutil.copytree(XEON, tmp_path / name))


def _rewrite_metadata(path: Path, **changes: object) -> None:
    """Replace top-level keys of a dataset's metadata (its checksum recomputed)."""
    meta = read_metadata(path)
    meta.update(changes)
    write_json_atomically(metadata_path(path), meta)


def _keep_rows(path: Path, keep: set[int]) -> None:
    """Keep only the rows ``keep`` of a dataset, its recorded checksum updated."""
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join([lines[0]] + [line for line in lines[1:]
                                          if int(line.split(",", 1)[0]) in keep]))
    meta = read_metadata(path)
    record_rows_file(path, meta)
    write_json_atomically(metadata_path(path), meta)


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """Chapter 4's models with its settings on the committed Xeon (about 2 s)."""
    return fit_device_models(_copy(tmp_path_factory.mktemp("fit")))


def test_evaluation_blocks_are_never_training_blocks(fitted):
    assert fitted.sizes == {"train": 320, "evaluation": 424, "left_out": 80}
    assert not set(fitted.train["row_id"]) & set(fitted.evaluation["row_id"])
    # By content too: the pool shares 80 blocks with the evaluation, training none of them.
    pool = read_dataset(XEON / "pool.csv")
    assert len(pool[BLOCK].merge(fitted.evaluation[BLOCK])) == 80
    assert fitted.train[BLOCK].merge(fitted.evaluation[BLOCK]).empty
    ev = fitted.evaluation
    np.testing.assert_allclose(ev["latency_ms"], np.sqrt(ev["latency_ms_1"] * ev["latency_ms_2"]))


def test_scores_list_every_model_then_the_noise_floor_and_the_ceiling(fitted):
    table = fitted.metrics
    assert list(table.index) == [*MODELS, "noise floor", "perfect predictor (expected)",
                                 SESSION_CALIBRATED, POOL_LABELS]
    assert (table["n"].drop(POOL_LABELS) == 424).all()
    assert {"mape_pct", "within_10_pct", "kendall_tau", "rmse_ms"} <= set(table.columns)
    ceiling = table.loc["perfect predictor (expected)"]
    # Nothing beats an error-free model, which beats a second precise labelling of each block.
    assert (table.loc[MODELS, "mape_pct"] > ceiling["mape_pct"]).all()
    assert ceiling["mape_pct"] < table.loc["noise floor", "mape_pct"]


def test_the_pools_own_labels_of_the_evaluation_blocks_are_scored_against_their_precise_mean(
        fitted):
    pool = read_dataset(XEON / "pool.csv")
    pairs = fitted.evaluation.merge(pool[["row_id", "latency_ms"]], on="row_id",
                                    suffixes=("", "_pool"))
    assert len(pairs) == fitted.sizes["left_out"] == 80
    want = latency_metrics(pairs["latency_ms"], pairs["latency_ms_pool"])
    row = fitted.metrics.loc[POOL_LABELS]
    assert row["n"] == 80
    assert row["within_10_pct"] == pytest.approx(want["within_10_pct"])
    assert row["kendall_tau"] == pytest.approx(want["kendall_tau"])


def test_the_state_says_how_the_precise_labels_follow_the_pools_own(fitted):
    pool = read_dataset(XEON / "pool.csv")
    assert fitted.state == state_stretch(pool, fitted.evaluation)
    assert fitted.state["blocks"] == 80


def test_the_session_calibrated_row_scores_each_block_calibrated_on_the_other_half(fitted):
    ev = fitted.evaluation
    predicted = fitted.models[MLP_ON_TABLE].predict(ev)
    held_out = cross_fitted(predicted, ev["latency_ms"], folds=SESSION_FOLDS, seed=0)
    want = latency_metrics(ev["latency_ms"], held_out)
    row = fitted.metrics.loc[SESSION_CALIBRATED]
    assert row["within_10_pct"] == pytest.approx(want["within_10_pct"])
    assert row["mape_pct"] == pytest.approx(want["mape_pct"])
    # The saved power is fitted on every evaluation block, not on the folds.
    assert fitted.session == fit_session_calibration(predicted, ev["latency_ms"])
    assert fitted.session.blocks == 424


def test_the_evaluation_blocks_are_the_ones_every_model_is_scored_on(fitted):
    blocks = evaluation_blocks(XEON)
    pd.testing.assert_frame_equal(blocks, fitted.evaluation)
    pd.testing.assert_frame_equal(evaluation_blocks(XEON, read_device_folder(XEON)), blocks)


def test_a_pool_of_other_blocks_has_no_labels_of_the_evaluation_blocks(tmp_path):
    folder = _copy(tmp_path)
    _rewrite_metadata(folder / "pool.csv", settings={
        **read_metadata(folder / "pool.csv")["settings"], "seed": 1})
    fitted = fit_device_models(folder, **SMALL)
    assert POOL_LABELS not in fitted.metrics.index and fitted.state is None


def test_the_mlp_on_the_table_predicts_the_device_far_better_than_the_raw_table(fitted):
    # Measured over seeds 0-3: the MLP on the table 92-95% within +-10% (MAPE 4.5-4.9%), the
    # table's raw sums 2.1% (MAPE 20.5%: they miss what the ops cost together), calibrated 88%.
    m = fitted.metrics
    assert m.loc[MLP_ON_TABLE, "within_10_pct"] >= 85
    assert m.loc["lookup table", "within_10_pct"] <= 10
    assert m.loc[MLP_ON_TABLE, "mape_pct"] < m.loc["lookup table", "mape_pct"] / 3
    calibrated = m.loc["lookup table, calibrated"]
    assert m.loc[MLP_ON_TABLE, "within_10_pct"] > calibrated["within_10_pct"]
    assert m.loc[MLP_ON_TABLE, "mape_pct"] < calibrated["mape_pct"]
    assert m.loc[MLP_ON_TABLE, "kendall_tau"] > 0.85


def test_the_saved_model_predicts_the_same_and_the_manifest_names_it(fitted, tmp_path):
    folder = _copy(tmp_path)
    before = read_manifest(folder)
    manifest = save_device_model(fitted, folder)
    assert manifest == read_manifest(folder)
    assert manifest["models"] == {"mlp": MODEL_PREFIX}
    assert manifest["metrics"] == {"mlp": METRICS_FILE}
    assert (manifest["files"], manifest["tables"]) == (before["files"], before["tables"])
    assert set(read_device_folder(folder)["frames"]) == set(before["files"])
    loaded = MLPLatency.load(folder / MODEL_PREFIX, check_device_here=False)
    ev = fitted.evaluation
    # The MLP on the table, calibrated to the precise labels' session.
    assert loaded.session_calibration_ == fitted.session
    np.testing.assert_allclose(loaded.predict(ev), fitted.session.apply(
        fitted.models[MLP_ON_TABLE].predict(ev)), rtol=1e-6)
    # It records the device its labels were measured on: the folder's.
    assert loaded.device_ == read_metadata(folder / "pool.csv")["machine"]
    assert identity_differences(manifest["device"], identity_from_record(loaded.device_)) == {}
    scores = pd.read_csv(folder / METRICS_FILE, index_col="model")
    assert list(scores.index) == list(fitted.metrics.index)
    np.testing.assert_allclose(scores.to_numpy(), fitted.metrics.to_numpy(), rtol=1e-5)


def test_the_same_seed_writes_the_same_bytes(tmp_path):
    written = []
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        folder = _copy(tmp_path / name, "device")
        save_device_model(fit_device_models(folder, seed=seed, **SMALL))
        written.append({f: (folder / f).read_bytes()
                        for f in (METRICS_FILE, f"{MODEL_PREFIX}.pt", f"{MODEL_PREFIX}.json",
                                  "manifest.json")})
    assert written[0] == written[1]
    assert written[0][METRICS_FILE] != written[2][METRICS_FILE]


def test_a_noise_floor_file_adds_the_standard_labels_floor(tmp_path):
    folder = _copy(tmp_path)
    # Stands in for pool blocks labelled again: the same seed and calibration, 80 pool ids.
    for suffix in ("", ".meta.json"):
        shutil.copy(folder / f"precise_repeat.csv{suffix}", folder / f"noise_floor.csv{suffix}")
    table = fit_device_models(folder, **SMALL).metrics
    assert table.loc[STANDARD_FLOOR, "n"] == 80
    _rewrite_metadata(folder / "noise_floor.csv", settings={
        **read_metadata(folder / "noise_floor.csv")["settings"], "seed": 5})
    with pytest.raises(ValueError, match="noise_floor.csv has seed=5 but pool.csv 0"):
        fit_device_models(folder, **SMALL)


def test_an_onnx_runtime_folder_needs_its_own_table_and_its_model_records_the_runtime(tmp_path):
    folder = _copy(tmp_path)
    runtime = OnnxRuntimeCpu(threads=1)
    record = runtime.fingerprint()  # this machine in ONNX Runtime
    for name in ("pool.csv", "precise.csv", "precise_repeat.csv"):
        settings = read_metadata(folder / name)["settings"]
        _rewrite_metadata(folder / name, machine=record, settings={
            **settings, "runtime": {k: record[k] for k in ("runtime", "onnxruntime")}})
    before = read_manifest(folder)
    write_manifest(folder, before["files"], notes="ONNX Runtime", tables=before["tables"])
    with pytest.raises(ValueError, match=r"op_latency_table.csv was measured on another device"
                                         r".*backend: onnxruntime, CPU -> torch eager, CPU"):
        fit_device_models(folder, **SMALL)
    table = OpLatencyTable.from_csv(folder / "op_latency_table.csv")
    table.meta["machine"] = record
    table.to_csv(folder / "op_latency_table.csv")
    manifest = save_device_model(fit_device_models(folder, **SMALL))
    assert manifest["device"]["backend"] == "onnxruntime, CPU"
    saved = json.loads((folder / f"{MODEL_PREFIX}.json").read_text())["device"]
    assert saved["runtime"] == "onnxruntime"
    assert identity_differences(manifest["device"], identity_from_record(saved)) == {}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # labelled here, in this runtime: no warning
        model = MLPLatency.load(folder / MODEL_PREFIX)
    model.save(tmp_path / "older", labels_measured_on={**record, "onnxruntime": "0.0.1"})
    with pytest.warns(DeviceMismatchWarning, match=r"runtime_version: 0\.0\.1 -> "):
        MLPLatency.load(tmp_path / "older")


def test_folders_that_cannot_be_fit_are_refused_with_what_to_change(tmp_path):
    with pytest.raises(ValueError, match="manifest.json is missing"):
        fit_device_models(tmp_path / "nowhere")
    folder = _copy(tmp_path)
    manifest = read_manifest(folder)
    write_manifest(folder, {"pool": "pool.csv"}, tables=manifest["tables"])
    with pytest.raises(ValueError, match="names no precise / precise_repeat file"):
        fit_device_models(folder)
    write_manifest(folder, manifest["files"])
    with pytest.raises(ValueError, match=r"names no op table \(tables.op_table\)"):
        fit_device_models(folder)
    write_manifest(folder, manifest["files"], tables=manifest["tables"])
    settings = read_metadata(folder / "precise.csv")["settings"]
    _rewrite_metadata(folder / "precise.csv", settings={
        **settings, "rule": {**settings["rule"], "reference_ms": 1.0}})
    with pytest.raises(ValueError, match="precise.csv is scaled by another reference-cell "
                                         "calibration than pool.csv: .*--scale-from pool.csv"):
        fit_device_models(folder)
    _rewrite_metadata(folder / "precise.csv", settings=settings)
    _keep_rows(folder / "pool.csv", set(read_dataset(folder / "precise.csv")["row_id"]))
    with pytest.raises(ValueError, match=r"pool.csv holds 0 labelled blocks that are not "
                                         r"evaluation blocks \(80 of its 80 are in precise.csv"):
        fit_device_models(folder)


def test_lenna_fit_prints_the_scores_and_saves(tmp_path, capsys):
    from lenna_core.cli.main import main as lenna

    folder = _copy(tmp_path)
    lenna(["fit", "--device-folder", str(folder), "--max-epochs", "20", "--hidden", "16,8"])
    out = capsys.readouterr().out
    assert "trained on 320 pool blocks (80 left out: evaluation blocks); scored on 424" in out
    for row in (*MODELS, "noise floor", "perfect predictor (expected)", POOL_LABELS,
                SESSION_CALIBRATED, "fitted and scored in", "precise labels = pool labels ^ ",
                "over the 80 blocks", "saved model = MLP on lookup table calibrated to the "
                "precise labels' session: ms -> "):
        assert row in out
    assert read_manifest(folder)["models"] == {"mlp": MODEL_PREFIX}
    assert MLPLatency.load(folder / MODEL_PREFIX, check_device_here=False).hidden == (16, 8)
    with pytest.raises(SystemExit) as exit_info:
        lenna(["fit", "--device-folder", str(tmp_path / "empty")])
    assert exit_info.value.code == 2
    assert "manifest.json is missing" in capsys.readouterr().err


def test_a_second_table_in_the_manifest_is_scored_as_the_prior_of_an_mlp_of_its_own(tmp_path):
    folder = _copy(tmp_path)
    manifest = read_manifest(folder)
    table = OpLatencyTable.from_csv(folder / manifest["tables"]["op_table"])
    # The same ops 30% dearer and a flat fixed cost: another prior, priced from the same device.
    OpLatencyTable(table.ops.assign(latency_ms=table.ops["latency_ms"] * 1.3),
                   table.fixed.assign(latency_ms=0.05), meta=table.meta).to_csv(
        folder / "other_table.csv")
    write_manifest(folder, manifest["files"], notes=manifest["notes"],
                   tables={**manifest["tables"], "isolated_op_table": "other_table.csv"})
    result = fit_device_models(folder, **SMALL)
    assert list(result.metrics.index[:len(MODELS) + 1]) == [*MODELS, "MLP on isolated op table"]
    other = result.models["MLP on isolated op table"]
    assert other.prior is not result.models[MLP_ON_TABLE].prior
    ev = result.evaluation
    assert not np.allclose(other.predict(ev), result.models[MLP_ON_TABLE].predict(ev))
