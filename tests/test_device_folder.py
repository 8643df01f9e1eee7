"""Device folders: a manifest per device, checked against the files it names."""

from __future__ import annotations

import json
from pathlib import Path

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



def test_the_committed_reference_device_has_its_folder_and_manifest():
    from lenna_core.latency.device_identity import identity_differences, identity_from_record

    data = Path(__file__).resolve().parents[1] / "data"
    folder = read_device_folder(data)
    assert set(folder["frames"]) == {"dataset", "noise_floor", "precise", "precise_repeat",
                                     "derived"}
    assert all(len(frame) for frame in folder["frames"].values())
    model = json.loads((data / folder["manifest"]["models"]["mlp"]).with_suffix(".json")
                       .read_text())
    assert identity_differences(folder["manifest"]["device"],
                                identity_from_record(model["device"])) == {}
    assert (data / folder["manifest"]["tables"]["op_table"]).is_file()


def test_compare_devices_names_what_differs(tmp_path):
    from lenna_core.latency.device_folder import compare_devices, read_manifest

    _dataset(tmp_path / "pool.csv")
    write_manifest(tmp_path, {"pool": "pool.csv"})
    recorded = read_manifest(tmp_path)["device"]
    assert compare_devices(recorded, recorded).endswith("what differs: nothing recorded")
    # A family/model no processor reports, so it differs from this machine's, whichever it is.
    other = {**recorded, "threads": 2, "cpu_family_model": "0/0"}
    lines = compare_devices(recorded, other).splitlines()
    assert lines[0].startswith("timed on: ") and "2 thread(s)" in lines[0]
    assert lines[2] == ("what differs: cpu_family_model: "
                        f"{recorded['cpu_family_model']} -> 0/0; threads: 1 -> 2")
    with pytest.raises(ValueError, match="manifest.json is missing"):
        read_manifest(tmp_path / "nowhere")
