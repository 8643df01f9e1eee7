"""`lenna transfer`: profile this machine within a budget, adapt, save; and the `lenna` command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lenna_core.latency import device_profiling
from lenna_core.latency.dataset import read_dataset, read_metadata
from lenna_core.latency.lookup_table import OpLatencyTable
from lenna_core.latency.mlp_model import MLPLatency
from lenna_core.latency.transfer import AdaptedLatency
from lenna_core.search.estimators import MLPEstimator, TargetConfig, adapted_estimator
from lenna_core.space.genotypes import DARTS_V2

SHIPPED_MODEL = Path(__file__).resolve().parents[1] / "data" / "mlp_latency"


def test_transfer_labels_adapts_and_saves_with_a_manifest(tmp_path):
    adapted = device_profiling.transfer_to_this_device(
        SHIPPED_MODEL, tmp_path / "here", blocks=8, budget_s=120,
        methods=("none", "scale", "log_affine"))
    manifest = json.loads((tmp_path / "here" / "manifest.json").read_text())
    assert manifest["blocks_labelled"] == 8 and manifest["method"] == adapted.method
    loaded = AdaptedLatency.load(tmp_path / "here" / "mlp_latency")
    assert loaded.provenance["k"] == 8 and loaded.provenance["profiling_seconds"] > 0
    blocks = read_dataset(tmp_path / "here" / "blocks.csv")
    assert (blocks["status"] == "ok").all() and (blocks["latency_ms"] > 0).all()
    # The table measured here prices every context the shipped model's table does (a search
    # target's blocks among them), not only the eight blocks' contexts.
    here_table = OpLatencyTable.from_csv(tmp_path / "here" / "op_latency_table.csv")
    shipped_table = MLPLatency.load(SHIPPED_MODEL, check_device_here=False).prior_.table
    assert here_table.missing(shipped_table.contexts()) == []
    reread, reference_ms = device_profiling.load_adapted(tmp_path / "here")
    assert reread.method == adapted.method and reference_ms > 0
    assert reference_ms == read_metadata(tmp_path / "here" / "blocks.csv")[
        "settings"]["rule"]["reference_ms"]
    # As an estimator of a search target, in the units of a session on the models' device.
    target = TargetConfig(C=16, layers=8, image_size=32, batch_size=1)
    estimator, loaded = adapted_estimator(tmp_path / "here", 2 * reference_ms, target)
    here_units = MLPEstimator(reread, target).predict_genotype(DARTS_V2)
    assert estimator.predict_genotype(DARTS_V2) == pytest.approx(2 * here_units, rel=1e-5)
    assert loaded.startswith(f"adapted model: {adapted.method} from 8 blocks")
    for missing in (None, tmp_path / "nowhere"):
        assert adapted_estimator(missing, 1.0, target)[0] is None


def test_a_folder_without_an_adapted_model_is_named(tmp_path):
    with pytest.raises(ValueError, match=r"holds no adapted model \(manifest.json, "
                                         r"mlp_latency.transfer.json, blocks.csv missing\)"):
        device_profiling.load_adapted(tmp_path)


def test_more_blocks_than_the_budget_allows_is_refused_and_keeps_what_was_labelled(tmp_path):
    with pytest.raises(ValueError, match=r"blocks=100000: .* s per block .*budget_s=5"):
        device_profiling.profile_device(tmp_path / "b.csv", blocks=100000, budget_s=5)
    assert len(read_dataset(tmp_path / "b.csv")) == device_profiling.PILOT_BLOCKS


def test_blocks_that_fail_to_label_are_reported(tmp_path, monkeypatch):
    def failing_labeler(*args, **kwargs):
        def label(*_):
            raise RuntimeError("the device went away")
        return label

    monkeypatch.setattr(device_profiling, "make_labeler", failing_labeler)
    with pytest.raises(ValueError, match=r"only 0 blocks labelled \(4 failed"):
        device_profiling.transfer_to_this_device(SHIPPED_MODEL, tmp_path, blocks=4, budget_s=60)
    assert not (tmp_path / "mlp_latency.json").exists()


@pytest.mark.parametrize("kwargs, match", [({"blocks": 0}, "blocks=0"),
                                           ({"budget_s": 0}, "budget_s=0")])
def test_bad_profiling_arguments(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        device_profiling.profile_device(tmp_path / "b.csv", **kwargs)


def test_lenna_lists_its_subcommands_and_refuses_unknown_ones():
    run = [sys.executable, "-m", "lenna_core.cli.main"]
    listed = subprocess.run(run + ["--help"], capture_output=True, text=True, check=True).stdout
    assert "label" in listed and "transfer" in listed and "fit" in listed
    assert "--budget-s" in subprocess.run(run + ["transfer", "--help"], capture_output=True,
                                          text=True, check=True).stdout
    wrong = subprocess.run(run + ["fly"], capture_output=True, text=True)
    assert wrong.returncode == 2 and "unknown subcommand 'fly'" in wrong.stderr
