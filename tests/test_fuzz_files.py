"""Damaged files are never read silently: each file type the project reads is written here,
then damaged at seeded random places (a byte changed, a byte deleted, the file cut short), and
every read must end in a clear error or warning that names the file, or in the same result
as the intact file. Any other exception, or a changed result without a word, fails.
"""

from __future__ import annotations

import shutil
import warnings
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_dataset import RULE, fake_labeler

from lenna_core.latency.dataset import SamplingSpec, label_dataset, read_dataset
from lenna_core.latency.file_checks import DataIntegrityWarning
from lenna_core.latency.lookup_table import OpLatencyTable
from lenna_core.latency.mlp_model import MLPLatency
from lenna_core.search.loop import LatencyAwareSearch, SearchConfig

ROOT = Path(__file__).resolve().parent.parent
TRIALS = 100


def damage(path: Path, rng: np.random.Generator) -> str:
    """Change, delete or cut at one random byte of ``path``; returns what it did."""
    data = bytearray(path.read_bytes())
    at = int(rng.integers(len(data)))
    how = rng.choice(["change", "delete", "truncate"], p=[0.6, 0.2, 0.2])
    if how == "change":
        data[at] = (data[at] + int(rng.integers(1, 256))) % 256
    elif how == "delete":
        del data[at]
    else:
        del data[at:]
    path.write_bytes(bytes(data))
    return f"{how} at byte {at}"


def outcome(read: Callable[[], object], damaged: Path, intact: object,
            same: Callable[[object, object], bool], what: str) -> str:
    """'error', 'warning' or 'intact'; fails on anything silent or unclear."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = read()
        except (ValueError, FileNotFoundError) as err:
            assert damaged.name in str(err), f"{what}: the error does not name the file: {err}"
            return "error"
    named = [w for w in caught if issubclass(w.category, DataIntegrityWarning)
             and damaged.name in str(w.message)]
    if named:
        return "warning"
    assert same(result, intact), f"{what}: read without a word, but the result changed"
    return "intact"


def fuzz(folder: Path, target: str, read: Callable[[Path], object],
         same: Callable[[object, object], bool], trials: int = TRIALS, seed: int = 0) -> Counter:
    """Damage ``target`` in a fresh copy of ``folder`` ``trials`` times; count the outcomes."""
    intact = read(folder)
    rng = np.random.default_rng(seed)
    counts: Counter = Counter()
    for trial in range(trials):
        copy = folder.parent / f"{folder.name}-trial"
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(folder, copy)
        what = f"{target}, trial {trial}: " + damage(copy / target, rng)
        counts[outcome(lambda copy=copy: read(copy), copy / target, intact, same, what)] += 1
    print(f"{target}: {dict(counts)}")  # pytest -s shows what each damage ended in
    return counts


@pytest.fixture(scope="module")
def dataset_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("fuzz") / "dataset"
    folder.mkdir()
    spec = SamplingSpec(channels=(4, 8), layers=(3,), image_sizes=(8,))
    label_dataset(folder / "d.csv", range(30), fake_labeler, RULE, spec=spec,
                  progress=False)
    return folder


@pytest.mark.parametrize("target", ["d.csv", "d.csv.meta.json"])
def test_damaged_dataset_files_are_never_read_silently(dataset_folder, target):
    counts = fuzz(dataset_folder, target, lambda f: read_dataset(f / "d.csv"),
                  lambda a, b: a.equals(b))
    assert counts["error"] + counts["warning"] > 0, counts


@pytest.fixture(scope="module")
def model_folder(dataset_folder, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("fuzz") / "model"
    folder.mkdir()
    frame = read_dataset(dataset_folder / "d.csv")
    table = OpLatencyTable.from_csv(ROOT / "data" / "op_latency_table.csv")
    MLPLatency(hidden=(8,), max_epochs=2, random_state=0, prior=None).fit(
        frame, frame["latency_ms"]).save(folder / "m")
    table.to_csv(folder / "t.csv")
    frame.to_pickle(folder / "blocks.pkl")
    return folder


def _predict(folder: Path) -> np.ndarray:
    model = MLPLatency.load(folder / "m", check_device_here=False)
    return model.predict(pd.read_pickle(folder / "blocks.pkl"))


@pytest.mark.parametrize("target", ["m.json", "m.pt"])
def test_damaged_models_are_never_read_silently(model_folder, target):
    counts = fuzz(model_folder, target, _predict, np.array_equal)
    assert counts["error"] > 0, counts


@pytest.mark.parametrize("target", ["t.csv", "t.csv.meta.json"])
def test_damaged_op_tables_are_never_read_silently(model_folder, target):
    def same(a: OpLatencyTable, b: OpLatencyTable) -> bool:
        return a.ops.equals(b.ops) and a.fixed.equals(b.fixed)

    counts = fuzz(model_folder, target, lambda f: OpLatencyTable.from_csv(f / "t.csv"), same)
    assert counts["error"] > 0, counts


@pytest.fixture(scope="module")
def search_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("fuzz") / "search"
    config = SearchConfig(C=2, layers=3, epochs=1, batch_size=16, steps_per_epoch=2)
    LatencyAwareSearch(config, folder).run(progress=False)
    return folder


def _result(folder: Path):
    config = SearchConfig(C=2, layers=3, epochs=1, batch_size=16, steps_per_epoch=2)
    return LatencyAwareSearch(config, folder).run(progress=False)


def _same_result(a, b) -> bool:
    return a.genotype == b.genotype and a.extra == b.extra and a.penalty == b.penalty


@pytest.mark.parametrize("target", ["result.json", "config.json"])
def test_damaged_search_records_are_never_read_silently(search_folder, target):
    counts = fuzz(search_folder, target, _result, _same_result, trials=TRIALS // 2)
    assert counts["error"] > 0, counts


def test_a_damaged_checkpoint_is_never_resumed_silently(search_folder, tmp_path):
    def resume(folder: Path):
        (folder / "result.json").unlink(missing_ok=True)  # the run resumes from the checkpoint
        return _result(folder)

    resumable = tmp_path / "search"
    shutil.copytree(search_folder, resumable)
    counts = fuzz(resumable, "checkpoint.pt", resume, _same_result, trials=8)
    assert counts["error"] == 8, counts


def test_every_committed_data_file_carries_its_checksum():
    # Files without one (written before checksums were recorded) are read unchecked: the
    # committed reference must not be one of them.
    import json

    for meta_path in sorted((ROOT / "data").rglob("*.meta.json")):
        meta = json.loads(meta_path.read_text())
        assert "sha256" in meta, meta_path
        assert "rows_file" in meta or "table_sha256" in meta, meta_path
    model = json.loads((ROOT / "data" / "mlp_latency.json").read_text())
    assert "sha256" in model and "weights_sha256" in model
