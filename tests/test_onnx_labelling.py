"""Labelling blocks and measuring op tables in ONNX Runtime: the runtime is recorded, composed
cells compute what torch computes, and a torch-eager calibration is refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from scripted_clock import ScriptedClock

from lenna_core.latency.blocks import CellBank, CellContext
from lenna_core.latency.dataset import read_dataset, read_metadata
from lenna_core.latency.device_folder import dataset_identity
from lenna_core.latency.lookup_table import OpLatencyTable
from lenna_core.latency.onnx_reference import OnnxReferenceClock
from lenna_core.latency.onnx_runtime import OnnxRuntimeCpu, runtime_record
from lenna_core.latency.op_timing import time_module
from lenna_core.space.search_space import DARTS_SPACE

DATA = Path(__file__).resolve().parents[1] / "data"
SMALL = CellContext.in_network(4, True, False, 8)


def test_cli_labels_in_onnx_runtime_and_records_the_runtime(tmp_path):
    from lenna_core.cli.label import main

    out = tmp_path / "ort.csv"
    main(["--out", str(out), "--rows", "2", "--target-rel-error", "0.5",
          "--runtime", "onnxruntime"])
    frame = read_dataset(out)
    assert (frame["status"] == "ok").all() and (frame["latency_ms"] > 0).all()
    assert (frame["resets"] == 8).all()  # min_resets: a 50% target is met at once
    meta = read_metadata(out)
    assert meta["settings"]["runtime"] == runtime_record(1)
    assert meta["machine"]["runtime"] == "onnxruntime"
    identity = dataset_identity(out)
    assert identity["backend"] == "onnxruntime, CPU" and identity["graph_optimization"] == "all"


def test_a_torch_eager_calibration_is_refused_for_onnx_runtime_labels(tmp_path, capsys):
    from lenna_core.cli.label import main

    with pytest.raises(SystemExit) as exit_:
        main(["--out", str(tmp_path / "ort.csv"), "--rows", "1", "--runtime", "onnxruntime",
              "--scale-from", str(DATA / "latency_dataset.csv")])
    assert exit_.value.code == 2
    assert "same --runtime" in capsys.readouterr().err
    assert not (tmp_path / "ort.csv").exists()


def test_onnx_runtime_labels_only_on_the_cpu(tmp_path, capsys):
    from lenna_core.cli.label import main

    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path / "ort.csv"), "--rows", "1", "--runtime", "onnxruntime",
              "--device", "cuda"])
    assert "leave --device at 'cpu'" in capsys.readouterr().err


def test_a_sampled_cell_is_composed_once_per_context_and_computes_what_torch_computes():
    clock = OnnxReferenceClock(session_warmup=1)
    bank = CellBank(SMALL, DARTS_SPACE)
    clock.start_block(bank)
    composer = clock._composers[SMALL]
    clock.start_block(CellBank(SMALL, DARTS_SPACE))  # another block of the same context
    assert clock._composers == {SMALL: composer}
    active = [3, 4, 6, 1, 2, 7, 5, 0, 4, 3, 1, 6, 2, 5]
    session = clock.sampled(bank, active)
    with torch.inference_mode():
        expected = bank.select(active)(*(torch.from_numpy(x) for x in session.feeds.values()))
    np.testing.assert_allclose(session.run()[0], expected.numpy(), rtol=1e-4, atol=1e-5)
    # The cell's pass, then the reference cell's, each read from the scripted clock.
    clock.clock = ScriptedClock([0.3, 0.2])
    assert clock.time_against(session, SMALL.input_shapes) == (0.3, pytest.approx(1.5))
    assert clock.clock.calls == 2


def test_an_op_table_measured_in_onnx_runtime_records_it_and_prices_every_edge():
    runtime = OnnxRuntimeCpu(1)
    table = OpLatencyTable.measure([SMALL], repeats=3, warmup=1, progress=False,
                                   runtime=runtime)
    assert table.meta["machine"]["runtime"] == "onnxruntime"
    assert table.missing([SMALL]) == []
    assert (table.ops["latency_ms"] > 0).all()
    # The all-`none` cell is priced as it was timed: fixed cost plus its zero ops.
    none = DARTS_SPACE.primitives.index("none")
    probs = np.zeros((DARTS_SPACE.num_edges, DARTS_SPACE.num_ops))
    probs[:, none] = 1.0
    row = table.fixed.iloc[0]
    assert table.block_ms(SMALL, probs) == pytest.approx(row["zero_cell_ms"], rel=1e-9)


def test_timing_in_a_runtime_with_other_threads_is_refused():
    op = torch.nn.Identity()
    with pytest.raises(ValueError, match="threads=1"):
        time_module(op, (1, 4, 8, 8), runtime=OnnxRuntimeCpu(1), threads=2)


def test_lenna_table_measures_the_contexts_of_a_file_in_the_chosen_runtime(tmp_path):
    from lenna_core.cli.table import main

    source = tmp_path / "source.csv"
    OpLatencyTable.measure([SMALL], repeats=2, warmup=0, progress=False).to_csv(source)
    out = tmp_path / "ort_table.csv"
    main(["--out", str(out), "--contexts-of", str(source), "--runtime", "onnxruntime",
          "--rounds", "1"])
    table = OpLatencyTable.from_csv(out)
    assert table.contexts() == [SMALL]
    assert table.meta["machine"]["runtime"] == "onnxruntime"
    assert table.meta["settings"]["rounds"] == 1


def test_lenna_table_names_a_file_it_cannot_read(tmp_path, capsys):
    from lenna_core.cli.table import main

    with pytest.raises(SystemExit) as exit_:
        main(["--out", str(tmp_path / "t.csv"), "--contexts-of", str(tmp_path / "none.csv")])
    assert exit_.value.code == 2
    assert "none.csv" in capsys.readouterr().err


def test_a_busy_machine_is_named_before_and_after_labelling():
    from lenna_core.cli.label import busy_machine_note

    assert busy_machine_note(0.2, 0, "before labelling") is None
    assert busy_machine_note(1.3, 1, "while labelling") is None  # this run's own thread
    note = busy_machine_note(1.7, 1, "while labelling")
    assert "while labelling" in note and "0.70 of it other work" in note
    assert busy_machine_note(float("nan"), 1, "before labelling") is None


def test_lenna_label_warns_when_other_work_shares_the_machine(tmp_path, capsys, monkeypatch):
    from lenna_core.cli.label import main

    monkeypatch.setattr("os.getloadavg", lambda: (3.0, 3.0, 3.0))
    main(["--out", str(tmp_path / "busy.csv"), "--rows", "1", "--target-rel-error", "0.5"])
    err = capsys.readouterr().err
    assert "busy before labelling" in err and "busy while labelling" in err


def test_reference_ms_comes_only_from_a_dataset_timed_the_same_way(tmp_path):
    from lenna_core.latency.labeller import reference_ms_from

    dataset = str(DATA / "latency_dataset.csv")  # torch eager, one thread
    settings = read_metadata(dataset)["settings"]
    assert reference_ms_from(dataset, None, 1) == settings["rule"]["reference_ms"]
    with pytest.raises(ValueError, match="same --runtime and --threads"):
        reference_ms_from(dataset, runtime_record(1), 1)
    with pytest.raises(ValueError, match="on 1 thread"):
        reference_ms_from(dataset, None, 2)
    ort = DATA / "devices" / "onnxruntime-xeon-6-167" / "op_latency_table.csv"
    with pytest.raises(ValueError, match="no calibrated reference cell"):
        reference_ms_from(str(ort), runtime_record(1), 1)  # a table: no labels, no calibration
