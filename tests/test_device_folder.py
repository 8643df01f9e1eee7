"""Device folders: a manifest per device, checked against the files it names."""

from __future__ import annotations

import json

import pytest

from lenna_core.latency.dataset import SamplingSpec, label_dataset
from lenna_core.latency.device_folder import read_device_folder, write_manifest
from lenna_core.space.search_space import DARTS_SPACE
from lenna_core.space.single_path import sample_active

SMALL = SamplingSpec(channels=(4,), layers=(3,), image_sizes=(8,))


def _labeler(context, probs, generator, bank):
    active = sample_active(probs, DARTS_SPACE, generator)
    return {"latency_ms": float(1 + sum(active)), "label_rel_se": 0.0, "resets": 1,
            "forward_passes": 1}


def _dataset(path, threads=1, rows=3):
    label_dataset(path, range(rows), _labeler, {"name": "fake"}, spec=SMALL,
                  threads=threads, progress=False)


def test_a_folder_round_trips_through_its_manifest(tmp_path):
    _dataset(tmp_path / "pool.csv")
    _dataset(tmp_path / "precise.csv", rows=2)
    manifest = write_manifest(tmp_path, {"pool": "pool.csv", "precise": "precise.csv"},
                              notes="test device")
    assert manifest["device"]["threads"] == 1 and manifest["device"]["batch_size"] == 1
    folder = read_device_folder(tmp_path)
    assert {k: len(v) for k, v in folder["frames"].items()} == {"pool": 3, "precise": 2}
    assert folder["manifest"]["description"].endswith("1 thread(s), batch 1")


def test_files_of_another_device_are_refused_by_name(tmp_path):
    _dataset(tmp_path / "pool.csv")
    _dataset(tmp_path / "two_threads.csv", threads=2)
    with pytest.raises(ValueError, match=r"two_threads.csv \(extra\).*threads: 1 -> 2"):
        write_manifest(tmp_path, {"pool": "pool.csv", "extra": "two_threads.csv"})
    write_manifest(tmp_path, {"pool": "pool.csv"})
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    manifest["files"]["extra"] = "two_threads.csv"  # edited by hand afterwards
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="threads: 1 -> 2"):
        read_device_folder(tmp_path)


def test_missing_manifest_or_files_are_named(tmp_path):
    with pytest.raises(ValueError, match="manifest.json is missing"):
        read_device_folder(tmp_path)
    _dataset(tmp_path / "pool.csv")
    write_manifest(tmp_path, {"pool": "pool.csv", "gone": "pool.csv"})
    (tmp_path / "pool.csv").rename(tmp_path / "moved.csv")
    with pytest.raises(ValueError, match=r"not in .*\['pool.csv', 'pool.csv'\]"):
        read_device_folder(tmp_path)
    with pytest.raises(ValueError, match="files is empty"):
        write_manifest(tmp_path, {})

