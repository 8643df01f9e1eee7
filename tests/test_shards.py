"""Labelling on a farm: disjoint shards, each resumable, merged only when they are one
dataset's (settings, schema and device), into what one process would have labelled."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import pandas as pd
import pytest
from test_dataset import RULE, SMALL, fake_labeler

from lenna_core.cli.merge import main as merge_main
from lenna_core.latency.block_checks import probability_columns
from lenna_core.latency.dataset import SamplingSpec, label_dataset, read_dataset, read_metadata
from lenna_core.latency.dataset_files import (
    CONTEXT_COLUMNS,
    metadata_path,
    write_json_atomically,
)
from lenna_core.latency.device_folder import dataset_identity
from lenna_core.latency.shard_merge import merge_shards
from lenna_core.latency.shards import parse_shard, shard_rows
from lenna_core.space.search_space import DARTS_SPACE

ROOT = Path(__file__).resolve().parents[1]
# What a row is, whoever labelled it: its id, its block and its probabilities.
STRUCTURE = ["row_id", "status", "alpha_kind", *CONTEXT_COLUMNS,
             *probability_columns(DARTS_SPACE)]


def lenna(*args: str) -> subprocess.Popen:
    """``lenna ARGS`` in a process of its own, importing this checkout's lenna_core."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "lenna_core.cli.main", *args], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finished(process: subprocess.Popen) -> str:
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    return out


def test_two_shards_labelled_by_two_processes_merge_into_what_one_process_labels(tmp_path):
    labelling = ["--rows", "5", "--target-rel-error", "0.5",
                 "--scale-from", str(ROOT / "data" / "latency_dataset.csv")]
    shards = [tmp_path / f"shard{i}.csv" for i in range(2)]
    running = [lenna("label", "--out", str(path), "--shard", f"{i}/2", *labelling)
               for i, path in enumerate(shards)]  # side by side, as two devices would
    finished(lenna("label", "--out", str(tmp_path / "one.csv"), *labelling))
    for process in running:
        finished(process)
    assert read_dataset(shards[0])["row_id"].tolist() == [0, 2, 4]
    assert read_dataset(shards[1])["row_id"].tolist() == [1, 3]
    printed = finished(lenna("merge", "--out", str(tmp_path / "farm.csv"), *map(str, shards)))
    assert "merged 5 rows (0 failed) from 2 shards" in printed
    farm, one = read_dataset(tmp_path / "farm.csv"), read_dataset(tmp_path / "one.csv")
    pd.testing.assert_frame_equal(farm[STRUCTURE], one[STRUCTURE])
    assert (farm["latency_ms"] > 0).all()
    assert read_metadata(tmp_path / "farm.csv")["settings"] == read_metadata(
        tmp_path / "one.csv")["settings"]
    assert dataset_identity(tmp_path / "farm.csv") == dataset_identity(tmp_path / "one.csv")
    merged_from = read_metadata(tmp_path / "farm.csv")["merged_from"]
    assert [m["file"] for m in merged_from] == ["shard0.csv", "shard1.csv"]


def label_shard(path: Path, index: int, count: int = 2, rows: int = 6, **kwargs) -> dict:
    """Shard ``index`` of ``count`` of a seconds-free dataset (a deterministic labeller)."""
    return label_dataset(path, range(rows), fake_labeler, RULE, spec=SMALL, progress=False,
                         shard=(index, count), **kwargs)


def test_a_shard_resumes_alone_and_refuses_another_shard(tmp_path):
    path = tmp_path / "shard.csv"
    assert label_shard(path, 1, 3) == {"written": 2, "skipped": 0, "failed": 0}  # ids 1, 4
    assert label_shard(path, 1, 3) == {"written": 0, "skipped": 2, "failed": 0}
    assert label_shard(path, 1, 3, rows=9)["written"] == 1  # id 7
    assert read_dataset(path)["row_id"].tolist() == [1, 4, 7]
    content = path.read_bytes()
    with pytest.raises(ValueError, match=r"other settings \(shard\)"):
        label_shard(path, 0, 3)
    with pytest.raises(ValueError, match=r"other settings \(shard\)"):
        label_dataset(path, range(9), fake_labeler, RULE, spec=SMALL, progress=False)
    assert path.read_bytes() == content


def test_merged_shards_equal_one_labelling_row_for_row(tmp_path):
    shards = [tmp_path / f"s{i}.csv" for i in range(3)]
    for i, path in enumerate(shards):
        label_shard(path, i, 3, rows=7)
    label_dataset(tmp_path / "one.csv", range(7), fake_labeler, RULE, spec=SMALL,
                  progress=False)
    result = merge_shards(shards[::-1], tmp_path / "farm.csv")  # any order
    assert result["rows"] == 7 and result["shards"] == 3
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # its recorded checksum matches the rows written
        farm = read_dataset(tmp_path / "farm.csv")
    one = read_dataset(tmp_path / "one.csv")
    # The fake labeller is deterministic: labels equal too; only the seconds spent differ.
    pd.testing.assert_frame_equal(farm.drop(columns="seconds"), one.drop(columns="seconds"))
    sessions = read_metadata(tmp_path / "farm.csv")["sessions"]
    assert [s["shard"]["index"] for s in sessions] == [0, 1, 2]
    label_shard(shards[0], 0, 3, rows=10)  # shard 0 goes on (ids 0..9); merging again
    assert merge_shards(shards, tmp_path / "farm.csv")["rows"] == 8  # replaces the merge


def test_a_merge_of_shards_from_different_devices_is_refused(tmp_path, capsys):
    shards = [tmp_path / f"s{i}.csv" for i in range(2)]
    for i, path in enumerate(shards):
        label_shard(path, i)
    meta = read_metadata(shards[1])
    meta["machine"]["device_name"] = "Another CPU"  # the second device is not the first's kind
    write_json_atomically(metadata_path(shards[1]), meta)
    with pytest.raises(ValueError, match="device_name: .* -> Another CPU"):
        merge_shards(shards, tmp_path / "farm.csv")
    with pytest.raises(SystemExit) as stop:
        merge_main(["--out", str(tmp_path / "farm.csv"), *map(str, shards)])
    assert stop.value.code == 2
    assert "are not shards of one dataset" in capsys.readouterr().err
    assert not (tmp_path / "farm.csv").exists()


@pytest.mark.parametrize("second, match", [
    ({"seed": 1}, "seed: 0 vs 1"),
    ({"spec": SamplingSpec(channels=(8,), layers=(3,), image_sizes=(8,))},
     r"spec.channels: \[4\] vs \[8\]"),
    ({"run_tag": "repeat"}, "run_tag: 'main' vs 'repeat'"),
])
def test_a_merge_of_shards_with_other_settings_is_refused(tmp_path, second, match):
    label_shard(tmp_path / "s0.csv", 0)
    label_dataset(tmp_path / "s1.csv", range(6), fake_labeler, RULE, progress=False,
                  shard=(1, 2), **{"spec": SMALL, **second})
    with pytest.raises(ValueError, match=match):
        merge_shards([tmp_path / "s0.csv", tmp_path / "s1.csv"], tmp_path / "farm.csv")


def test_a_merge_needs_every_shard_once_finished_and_a_new_file(tmp_path):
    shards = [tmp_path / f"s{i}.csv" for i in range(2)]
    for i, path in enumerate(shards):
        label_shard(path, i)
    out = tmp_path / "farm.csv"
    with pytest.raises(ValueError, match=r"shards \[1\] of 2 are missing"):
        merge_shards(shards[:1], out)
    with pytest.raises(ValueError, match="name a file more than once"):
        merge_shards([shards[0], shards[0], shards[1]], out)
    copy = tmp_path / "copy.csv"
    copy.write_bytes(shards[0].read_bytes())
    metadata_path(copy).write_bytes(metadata_path(shards[0]).read_bytes())
    with pytest.raises(ValueError, match=r"shards given more than once: \{0: \['s0.csv', "
                                         r"'copy.csv'\]\}"):
        merge_shards([shards[0], copy, shards[1]], out)
    label_shard(tmp_path / "other.csv", 1, 3)
    with pytest.raises(ValueError, match="different numbers of shards"):
        merge_shards([*shards, tmp_path / "other.csv"], out)
    label_dataset(tmp_path / "whole.csv", range(6), fake_labeler, RULE, spec=SMALL,
                  progress=False)
    with pytest.raises(ValueError, match="not labelled as a shard"):
        merge_shards([shards[0], tmp_path / "whole.csv"], out)
    with pytest.raises(ValueError, match="exists and is not a merge"):
        merge_shards(shards, tmp_path / "whole.csv")
    with pytest.raises(ValueError, match="is one of the shards"):
        merge_shards(shards, shards[0])
    meta = read_metadata(shards[1])
    del meta["sessions"][-1]["finished"]  # as a killed or still running session leaves it
    write_json_atomically(metadata_path(shards[1]), meta)
    with pytest.raises(ValueError, match="did not finish.*--shard 1/2"):
        merge_shards(shards, out)
    assert not out.exists()


@pytest.mark.parametrize("text", ["2/2", "1/0", "-1/2", "1", "a/b", "0/2/3"])
def test_bad_shards_are_refused(text, tmp_path, capsys):
    from lenna_core.cli.label import main

    with pytest.raises(ValueError, match="I/N|shard="):
        parse_shard(text)
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path / "d.csv"), "--rows", "2", f"--shard={text}"])
    assert "--shard=" in capsys.readouterr().err
    assert not (tmp_path / "d.csv").exists()


def test_shards_are_disjoint_and_cover_every_row():
    ids = [3, 5, 8, 13, 21, 34, 55]
    shares = [shard_rows(ids, (i, 3)) for i in range(3)]
    assert sorted(sum(shares, [])) == ids and shares[0] == [3, 21]
    assert parse_shard(" 1/4") == (1, 4)
