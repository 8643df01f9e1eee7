"""Dataset generation: one probability draw per row, resumable appends, clear errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from lenna_core.latency.blocks import network_cell_contexts
from lenna_core.latency.convergence import StandardErrorRule
from lenna_core.latency.dataset import (
    SCHEMA_VERSION,
    SamplingSpec,
    drop_failed_rows,
    held_out_split,
    label_dataset,
    probability_columns,
    read_dataset,
    read_metadata,
    read_relabellings,
    relabelled,
    sample_block,
    sample_probabilities,
)
from lenna_core.latency.file_checks import DataIntegrityWarning
from lenna_core.space.search_space import DARTS_SPACE, SearchSpace
from lenna_core.space.single_path import sample_active

SMALL = SamplingSpec(channels=(4,), layers=(3,), image_sizes=(8,))
RULE = {"name": "fake"}


def fake_labeler(context, probs, generator, bank):
    """Deterministic stand-in for timing: a function of the probabilities and the gate draw."""
    active = sample_active(probs, DARTS_SPACE, generator)
    return {"latency_ms": float(probs.sum() + sum(active) + context.C), "label_rel_se": 0.0,
            "resets": 1, "forward_passes": 1}


def test_probability_kinds_are_stochastic_rows():
    rng = np.random.default_rng(0)
    for kind in ("near_uniform", "uniform", "peaked", "onehot", "derived"):
        p = sample_probabilities(kind, DARTS_SPACE, rng)
        assert p.shape == (14, 8) and (p >= 0).all()
        np.testing.assert_allclose(p.sum(axis=1), 1.0)
    assert set(np.unique(sample_probabilities("onehot", DARTS_SPACE, rng))) == {0.0, 1.0}
    with pytest.raises(ValueError, match="kind"):
        sample_probabilities("sharp", DARTS_SPACE, rng)


def test_derived_kind_is_shaped_like_a_derived_cell():
    rng = np.random.default_rng(1)
    none = DARTS_SPACE.primitives.index("none")
    for _ in range(50):
        p = sample_probabilities("derived", DARTS_SPACE, rng)
        ops = p.argmax(axis=1)
        start = 0
        for node in range(2, DARTS_SPACE.steps + 2):
            kept = ops[start:start + node] != none
            assert kept.sum() == 2  # two inputs per node, `none` on the other edges
            start += node
    no_none = SearchSpace(primitives=("max_pool_3x3", "sep_conv_3x3"))
    with pytest.raises(ValueError, match="needs 'none'"):
        sample_probabilities("derived", no_none, rng)


def test_blocks_are_a_function_of_seed_and_row_id_and_come_from_real_networks():
    a, b = sample_block(7, 3, SamplingSpec()), sample_block(7, 3, SamplingSpec())
    assert a[0] == b[0] and a[2] == b[2] and np.array_equal(a[1], b[1])
    assert not np.array_equal(sample_block(8, 3, SamplingSpec())[1], a[1])
    spec = SamplingSpec()
    for row_id in range(30):
        context, _, _ = sample_block(row_id, 0, spec)
        networks = [network_cell_contexts(C, L, s, spec.batch_size)
                    for C in spec.channels for L in spec.layers for s in spec.image_sizes]
        assert any(context in contexts for contexts in networks)


def test_features_are_the_probabilities_the_gates_sampled(tmp_path):
    seen = {}

    def spy(context, probs, generator, bank):
        row_id = len(seen)
        seen[row_id] = probs.clone()
        return fake_labeler(context, probs, generator, bank)

    path = tmp_path / "d.csv"
    label_dataset(path, range(6), spy, RULE, spec=SMALL, progress=False)
    frame = read_dataset(path)
    features = frame[probability_columns()].to_numpy()
    for row_id, probs in seen.items():
        # Exactly equal, not close: the CSV holds the very draw handed to the gate sampler.
        assert np.array_equal(features[row_id], probs.numpy().ravel())


def test_one_hot_rows_sample_exactly_the_stored_ops(tmp_path):
    spec = SamplingSpec(channels=(4,), layers=(3,), image_sizes=(8,),
                        alpha_kinds={"onehot": 1.0})
    sampled = []

    def spy(context, probs, generator, bank):
        sampled.append(sample_active(probs, DARTS_SPACE, generator))
        return fake_labeler(context, probs, generator, bank)

    path = tmp_path / "d.csv"
    label_dataset(path, range(4), spy, RULE, spec=spec, progress=False)
    features = read_dataset(path)[probability_columns()].to_numpy().reshape(4, 14, 8)
    for row, active in zip(features, sampled):
        assert row.argmax(axis=1).tolist() == active


def test_resume_skips_written_rows_and_matches_an_uninterrupted_run(tmp_path):
    whole, parts = tmp_path / "whole.csv", tmp_path / "parts.csv"
    label_dataset(whole, range(8), fake_labeler, RULE, spec=SMALL, progress=False)
    first = label_dataset(parts, range(5), fake_labeler, RULE, spec=SMALL, progress=False)
    second = label_dataset(parts, range(8), fake_labeler, RULE, spec=SMALL, progress=False)
    assert (first["written"], second["written"], second["skipped"]) == (5, 3, 5)
    a, b = read_dataset(whole), read_dataset(parts)
    pd.testing.assert_frame_equal(a.drop(columns="seconds"), b.drop(columns="seconds"))
    meta = json.loads((tmp_path / "parts.csv.meta.json").read_text())
    assert meta["schema_version"] == SCHEMA_VERSION and len(meta["sessions"]) == 2
    assert meta["sessions"][1]["rows_written"] == 3


def test_a_partial_last_line_is_dropped_and_measured_again(tmp_path):
    path = tmp_path / "d.csv"
    label_dataset(path, range(3), fake_labeler, RULE, spec=SMALL, progress=False)
    with open(path, "a") as f:
        f.write("3,ok,uniform,False,Fal")  # what a kill in the middle of a write leaves
    label_dataset(path, range(5), fake_labeler, RULE, spec=SMALL, progress=False)
    assert sorted(read_dataset(path)["row_id"]) == [0, 1, 2, 3, 4]


KILL_SCRIPT = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {tests!r})
    from test_dataset import fake_labeler, SMALL, RULE
    from lenna_core.latency.dataset import label_dataset

    def slow(*args):
        time.sleep(0.05)  # only so that the kill lands in the middle of the run
        return fake_labeler(*args)

    label_dataset({path!r}, range(40), slow, RULE, spec=SMALL, progress=False)
""")


def test_kill_9_then_resume_loses_and_duplicates_nothing(tmp_path):
    path = tmp_path / "killed.csv"
    script = KILL_SCRIPT.format(tests=str(Path(__file__).parent), path=str(path))
    proc = subprocess.Popen([sys.executable, "-c", script])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().count("\n") > 5:
            break
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    before = path.read_text().count("\n") - 1
    assert 0 < before < 40, "the kill must land mid-run"
    label_dataset(path, range(40), fake_labeler, RULE, spec=SMALL, progress=False)
    frame = read_dataset(path)
    assert sorted(frame["row_id"]) == list(range(40))
    reference = tmp_path / "reference.csv"
    label_dataset(reference, range(40), fake_labeler, RULE, spec=SMALL, progress=False)
    pd.testing.assert_frame_equal(frame.drop(columns="seconds"),
                                  read_dataset(reference).drop(columns="seconds"))


def test_a_failing_block_is_recorded_and_the_run_goes_on(tmp_path):
    def flaky(context, probs, generator, bank):
        calls.append(1)
        if len(calls) == 2:  # the second block fails
            raise RuntimeError("out of memory (simulated)")
        return fake_labeler(context, probs, generator, bank)

    calls = []
    path = tmp_path / "d.csv"
    result = label_dataset(path, range(4), flaky, RULE, spec=SMALL, progress=False)
    frame = read_dataset(path)
    assert len(frame) == 4 and result["failed"] == 1
    assert frame["status"].tolist() == ["ok", "failed", "ok", "ok"]
    failed = frame[frame["status"] == "failed"]
    assert all("out of memory" in e for e in failed["error"])
    assert failed["latency_ms"].isna().all()


def test_failed_rows_are_dropped_and_labelled_again_on_resume(tmp_path):
    def flaky(context, probs, generator, bank):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("out of memory (simulated)")
        return fake_labeler(context, probs, generator, bank)

    calls = []
    path = tmp_path / "d.csv"
    label_dataset(path, range(4), flaky, RULE, spec=SMALL, progress=False)
    kept = [line for line in path.read_text().splitlines() if ",failed," not in line]
    assert drop_failed_rows(path) == [1]
    assert path.read_text().splitlines() == kept  # the other rows byte for byte
    assert drop_failed_rows(path) == []
    result = label_dataset(path, range(4), fake_labeler, RULE, spec=SMALL, progress=False)
    assert result == {"written": 1, "skipped": 3, "failed": 0}
    frame = read_dataset(path)
    assert (frame["status"] == "ok").all() and sorted(frame["row_id"]) == [0, 1, 2, 3]
    with open(path, "a") as f:
        f.write("4,ok,")  # a run still writing
    with pytest.raises(ValueError, match="partial line"):
        drop_failed_rows(path)


def test_resuming_with_other_settings_is_refused_and_nothing_is_lost(tmp_path):
    path = tmp_path / "d.csv"
    label_dataset(path, range(3), fake_labeler, RULE, spec=SMALL, progress=False)
    content = path.read_bytes()
    with pytest.raises(ValueError, match="other settings.*seed"):
        label_dataset(path, range(5), fake_labeler, RULE, seed=1, spec=SMALL, progress=False)
    assert path.read_bytes() == content


def test_schema_version_and_corrupted_rows_are_reported(tmp_path):
    path = tmp_path / "d.csv"
    label_dataset(path, range(3), fake_labeler, RULE, spec=SMALL, progress=False)
    meta_path = tmp_path / "d.csv.meta.json"
    meta = json.loads(meta_path.read_text())
    good = path.read_text()
    lines = good.splitlines(keepends=True)
    path.write_text(lines[0] + lines[1][:40] + "\n" + "".join(lines[2:]))
    with pytest.warns(DataIntegrityWarning, match="changed after its last labelling session"), \
            pytest.raises(ValueError, match="line 2.*corrupted"):
        read_dataset(path)
    path.write_text(good)
    meta_path.write_text(json.dumps(meta | {"schema_version": 99}))
    with pytest.raises(ValueError, match="schema_version=99, this code reads 1"):
        read_dataset(path)
    with pytest.raises(ValueError, match="schema_version=99, this code reads 1"):
        label_dataset(path, range(5), fake_labeler, RULE, spec=SMALL, progress=False)
    assert path.read_text() == good


@pytest.mark.parametrize("kwargs, match", [
    ({"device": "tpu"}, "device"), ({"threads": 0}, "threads"),
])
def test_bad_generation_arguments(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        label_dataset(tmp_path / "d.csv", range(2), fake_labeler, RULE, spec=SMALL,
                      progress=False, **kwargs)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device")
def test_cuda_without_a_gpu(tmp_path):
    with pytest.raises(ValueError, match="no CUDA device"):
        label_dataset(tmp_path / "d.csv", range(2), fake_labeler, RULE, spec=SMALL,
                      device="cuda", progress=False)


def test_spec_validation():
    with pytest.raises(ValueError, match="channels"):
        SamplingSpec(channels=(0,))
    with pytest.raises(ValueError, match="alpha_kinds"):
        SamplingSpec(alpha_kinds={"weird": 1.0})
    assert SearchSpace(steps=5).num_edges == 20


def test_cli_refuses_unknown_probability_kinds(tmp_path, capsys):
    from lenna_core.cli.label import main

    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path / "x.csv"), "--rows", "1", "--alpha-kinds", "sharp=1"])
    assert "--alpha-kinds='sharp=1'" in capsys.readouterr().err
    assert not (tmp_path / "x.csv").exists()


def test_cli_labels_with_passes_per_reset_and_a_control_table(tmp_path):
    from lenna_core.cli.label import main

    out = tmp_path / "precise.csv"
    data = Path(__file__).resolve().parents[1] / "data"
    main(["--out", str(out), "--rows", "2", "--target-rel-error", "0.5",
          "--timings-per-reset", "2", "--control-table", str(data / "op_latency_table.csv"),
          "--scale-from", str(data / "latency_dataset.csv")])
    rule = read_metadata(out)["settings"]["rule"]
    assert rule["timings_per_reset"] == 2 and rule["target_rel_error"] == 0.5
    assert "op_latency_table.csv" in rule["control_variate"]
    frame = read_dataset(out)
    assert (frame["status"] == "ok").all()
    assert (frame["resets"] == 8).all()  # min_resets: a 50% target is met at once
    assert (frame["forward_passes"] == 8 * 2 * 2).all()
    assert (frame["latency_ms"] > 0).all()


@pytest.mark.parametrize("flag, value", [("--timings-per-reset", "0"),
                                         ("--target-rel-error", "1.5")])
def test_cli_refuses_a_bad_stopping_rule(tmp_path, capsys, flag, value):
    from lenna_core.cli.label import main

    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path / "x.csv"), "--rows", "1", flag, value])
    assert flag.lstrip("-").replace("-", "_") in capsys.readouterr().err
    assert not (tmp_path / "x.csv").exists()


def test_held_out_split_is_chapter_4s_seeded_split_of_the_labelled_rows():
    from sklearn.model_selection import train_test_split

    frame = pd.DataFrame({"row_id": range(50), "status": ["ok"] * 45 + ["failed"] * 5,
                          "latency_ms": np.linspace(1, 5, 50)})
    train, test = held_out_split(frame, 0.2, seed=3)
    ok = frame[frame["status"] == "ok"].reset_index(drop=True)
    expected = train_test_split(ok, test_size=0.2, random_state=3)[1]
    assert test["row_id"].tolist() == expected["row_id"].tolist()
    assert len(test) == 9 and set(train["row_id"]).isdisjoint(test["row_id"])
    assert (train["status"] == "ok").all() and (test["status"] == "ok").all()
    assert test["row_id"].tolist() != held_out_split(frame, 0.2, seed=4)[1]["row_id"].tolist()
    with pytest.raises(ValueError, match="test_fraction"):
        held_out_split(frame, 1.0)


def _labelling(ids, latencies, failed=()):
    return pd.DataFrame({"row_id": ids, "latency_ms": latencies,
                         "status": ["failed" if i in failed else "ok" for i in ids]})


def test_relabelled_takes_the_geometric_mean_of_the_labellings_row_by_row():
    test = pd.DataFrame({"row_id": [7, 3], "C": [16, 8], "latency_ms": [9.0, 9.0],
                         "resets": [30, 12]})
    first = _labelling([3, 5, 7], [1.0, 50.0, 2.0])
    second = _labelling([7, 3], [8.0, 4.0])  # another row order
    out = relabelled(test, [first, second])
    assert out["row_id"].tolist() == [7, 3] and out["C"].tolist() == [16, 8]
    assert "resets" not in out  # it described the old label
    assert out["latency_ms_1"].tolist() == [2.0, 1.0]
    assert out["latency_ms_2"].tolist() == [8.0, 4.0]
    assert out["latency_ms"].tolist() == pytest.approx([4.0, 2.0])
    assert test["latency_ms"].tolist() == [9.0, 9.0]  # the input is left as it was


def test_relabelled_refuses_rows_a_labelling_lacks():
    test = pd.DataFrame({"row_id": [1, 2], "latency_ms": [1.0, 1.0]})
    with pytest.raises(ValueError, match="labelling 2 has no label for 1 of the 2 rows"):
        relabelled(test, [_labelling([1, 2], [1.0, 2.0]),
                          _labelling([1, 2], [1.0, 2.0], failed={2})])
    with pytest.raises(ValueError, match="labellings is empty"):
        relabelled(test, [])


def test_relabellings_must_share_the_datasets_blocks_and_calibration(tmp_path):
    def labelled(name, seed=0, reference_ms=5.0):
        path = tmp_path / name
        label_dataset(path, range(3), fake_labeler, {"name": "fake", "reference_ms":
                      reference_ms}, seed=seed, spec=SMALL, progress=False)
        return path

    dataset = labelled("main.csv")
    frames = read_relabellings([labelled("again.csv")], dataset)
    assert len(frames) == 1 and frames[0]["row_id"].tolist() == [0, 1, 2]
    with pytest.raises(ValueError, match="--scale-from"):
        read_relabellings([labelled("rescaled.csv", reference_ms=6.0)], dataset)
    with pytest.raises(ValueError, match="seed=1"):
        read_relabellings([labelled("other_blocks.csv", seed=1)], dataset)


def test_labeler_warms_up_on_the_timing_threads(monkeypatch):
    from lenna_core.latency.blocks import CellBank
    from lenna_core.latency.labeller import make_labeler
    from lenna_core.latency.reference_clock import ReferenceClock

    seen = []
    original = CellBank.warm_up
    monkeypatch.setattr(CellBank, "warm_up",
                        lambda self: (seen.append(torch.get_num_threads()), original(self)))
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        context, probs, _ = sample_block(1, 0, SamplingSpec(channels=(4,), image_sizes=(8,),
                                                            layers=(5,)))
        labeler = make_labeler(StandardErrorRule(target_rel_error=0.9, timings_per_reset=1,
                                                 min_resets=2, warmup_per_reset=0),
                               ReferenceClock(threads=1), reference_ms=1.0, threads=1)
        label = labeler(context, torch.from_numpy(probs), torch.Generator().manual_seed(0),
                        CellBank(context))
        assert seen == [1, 1]  # the reference clock's warm-up, then the block's
        assert torch.get_num_threads() == 2  # restored afterwards
        assert label["resets"] == 2 and label["latency_ms"] > 0
    finally:
        torch.set_num_threads(before)


def test_perturbed_and_real_timings_do_not_share_a_dataset(tmp_path, monkeypatch):
    path = tmp_path / "d.csv"
    label_dataset(path, range(3), fake_labeler, RULE, spec=SMALL, progress=False)
    content = path.read_bytes()
    monkeypatch.setenv("LENNA_PERTURB_TIMINGS", "7")
    with pytest.raises(ValueError, match="timing_perturbation=None.*LENNA_PERTURB_TIMINGS"):
        label_dataset(path, range(5), fake_labeler, RULE, spec=SMALL, progress=False)
    assert path.read_bytes() == content


def test_cli_labels_at_another_batch_size_and_records_it(tmp_path):
    from lenna_core.cli.label import main
    from lenna_core.latency.device_folder import dataset_identity

    out = tmp_path / "batch2.csv"
    data = Path(__file__).resolve().parents[1] / "data"
    main(["--out", str(out), "--rows", "2", "--target-rel-error", "0.5", "--batch-size", "2",
          "--scale-from", str(data / "latency_dataset.csv")])
    frame = read_dataset(out)
    assert (frame["batch_size"] == 2).all() and (frame["status"] == "ok").all()
    assert read_metadata(out)["settings"]["spec"]["batch_size"] == 2
    assert dataset_identity(out)["batch_size"] == 2
