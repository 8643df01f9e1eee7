"""Device identity: what a latency depends on, recorded, compared, and warned about."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch

from lenna_core.latency.device_identity import (
    NOT_RECORDED,
    DeviceMismatchWarning,
    check_device,
    describe_device,
    device_identity,
    identity_differences,
    identity_from_record,
    same_float_kernels,
)
from lenna_core.latency.mlp_model import MLPLatency
from lenna_core.latency.profiler import machine_fingerprint

SHIPPED_MODEL = Path(__file__).resolve().parents[1] / "data" / "mlp_latency"
EPYC = {"device": "cpu", "device_name": "AMD EPYC", "cpu_family_model": "25/17",
        "cpu_isa": "avx512f", "torch": "2.14.1+cu130"}  # an older record: no kernel path


def test_this_machine_is_recorded_with_every_field():
    here = device_identity("cpu", threads=2, batch_size=8)
    fingerprint = machine_fingerprint("cpu")
    assert here["device_name"] == fingerprint["device_name"]
    assert here["kernel_path"] == torch.backends.cpu.get_cpu_capability()
    assert (here["threads"], here["batch_size"], here["backend"]) == (2, 8, "torch eager, CPU")
    assert "2 thread(s), batch 8" in describe_device(here)


def test_fields_an_old_record_lacks_are_not_differences():
    recorded = identity_from_record(EPYC, threads=1, batch_size=1)
    assert recorded["kernel_path"] == NOT_RECORDED
    here = dict(recorded, kernel_path="AVX2")
    assert identity_differences(recorded, here) == {}


def test_every_differing_field_is_named():
    recorded = identity_from_record(EPYC, threads=1, batch_size=1)
    here = dict(recorded, cpu_family_model="6/167", threads=2, batch_size=8)
    assert identity_differences(recorded, here) == {
        "cpu_family_model": ("25/17", "6/167"), "threads": (1, 2), "batch_size": (1, 8)}
    with pytest.warns(DeviceMismatchWarning, match=r"cpu_family_model: 25/17 -> 6/167.*"
                                                   r"threads: 1 -> 2.*batch_size: 1 -> 8"):
        check_device(recorded, "the test data", here)


def test_the_same_device_gives_no_warning():
    here = device_identity("cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_device(here, "data measured here") == {}


def test_loading_a_model_from_another_device_warns_and_names_it(tmp_path):
    frame_model = MLPLatency.load(SHIPPED_MODEL, check_device_here=False)
    frame_model.save(tmp_path / "m", labels_measured_on=dict(machine_fingerprint("cpu"),
                                                             cpu_family_model="0/0"))
    with pytest.warns(DeviceMismatchWarning, match=r"latency model .*m.*cpu_family_model: 0/0"):
        MLPLatency.load(tmp_path / "m")
    frame_model.save(tmp_path / "here", labels_measured_on=machine_fingerprint("cpu"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        MLPLatency.load(tmp_path / "here")


def test_a_runtime_record_without_threads_is_compared_in_that_runtime():
    from lenna_core.latency.onnx_runtime import OnnxRuntimeCpu

    # A model saves its labels' machine record alone, as MLPLatency.load then reads it.
    recorded = identity_from_record(OnnxRuntimeCpu(threads=2).fingerprint())
    assert (recorded["backend"], recorded["threads"]) == ("onnxruntime, CPU", 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # not "torch eager" against the runtime
        assert check_device(recorded, "a model labelled here in ONNX Runtime") == {}


def test_bitwise_comparisons_only_between_machines_of_one_kind():
    here = machine_fingerprint("cpu")
    assert same_float_kernels(here)
    assert not same_float_kernels(dict(here, device_name="Another CPU"))
    assert not same_float_kernels(dict(here, torch="1.0.0"))
    assert not same_float_kernels(dict(here, cpu_family_model="1/1"))  # same name, other CPU
    assert same_float_kernels({k: v for k, v in here.items() if k != "cpu_family_model"})
    other_path = "AVX512" if here["torch_cpu_capability"] != "AVX512" else "AVX2"
    assert not same_float_kernels(dict(here, torch_cpu_capability=other_path))


def test_onnx_runtime_is_a_device_with_its_version_provider_and_graph_optimisation():
    import onnxruntime

    here = device_identity("onnxruntime", threads=2, batch_size=1, optimization="extended")
    assert (here["backend"], here["runtime_version"], here["execution_provider"],
            here["graph_optimization"], here["threads"]) == (
        "onnxruntime, CPU", onnxruntime.__version__, "CPUExecutionProvider", "extended", 2)
    assert "onnxruntime, CPU (" + onnxruntime.__version__ in describe_device(here)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_device(here, "data timed in ONNX Runtime here") == {}
    torch_eager = device_identity("cpu", threads=2, batch_size=1)
    assert "runtime_version" not in torch_eager  # torch records keep their fields
    assert set(identity_differences(torch_eager, here)) == {"backend"}
    with pytest.warns(DeviceMismatchWarning, match=r"graph_optimization: all -> extended"):
        check_device(dict(here, graph_optimization="all"), "the test data", here)
