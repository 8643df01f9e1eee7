"""The profiler: statistics, recorded context and clear errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from scripted_clock import ScriptedClock
from torch import nn

from lenna_core.latency.profiler import (
    LatencyResult,
    cpu_threads,
    machine_fingerprint,
    measure_latency,
    resolve_device,
    time_primitive,
)


def _result(times):
    return LatencyResult(times_ms=tuple(times), device="cpu", device_name="test", threads=1,
                         batch_size=1, input_shapes=((1, 3, 8, 8),), warmup=0)


def test_statistics_of_known_timings():
    r = _result([1.0, 2.0, 3.0, 4.0, 100.0])
    assert r.median == 3.0
    assert r.min == 1.0
    assert r.iqr == pytest.approx(2.0)  # 75th (4.0) minus 25th (2.0) percentile
    assert r.quantile(0.4) == pytest.approx(2.6)
    assert r.trimmed_mean(0.2, 0.8) == pytest.approx(3.0)  # keeps 2, 3, 4
    assert r.outliers() == (100.0,)  # above 4 + 1.5 * 2
    assert r.repeats == 5


def test_summary_records_the_context():
    row = _result([1.0, 2.0]).summary()
    assert row["trimmed_mean_ms"] == 1.5  # too few timings to trim: all are kept
    assert row["batch_size"] == 1 and row["input_shapes"] == "1x3x8x8"
    assert row["threads"] == 1 and row["repeats"] == 2 and row["median_ms"] == 1.5
    assert "torch_version" in row and "times_ms" not in row


def test_measure_latency_times_each_repeat_and_restores_the_module():
    module = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4)).train()
    calls = []
    module.register_forward_hook(lambda *_: calls.append(torch.is_inference_mode_enabled()))
    r = measure_latency(module, (2, 3, 8, 8), repeats=7, warmup=3, threads=1)
    assert r.repeats == 7 and len(calls) == 10 and all(calls)
    assert all(t > 0 for t in r.times_ms)
    assert r.batch_size == 2 and r.input_shapes == ((2, 3, 8, 8),) and r.threads == 1
    assert module.training, "the module's train/eval flag must be restored"


def test_threads_are_restored():
    before = torch.get_num_threads()
    with cpu_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_time_primitive_uses_the_given_shape():
    r = time_primitive("sep_conv_3x3", 4, 2, 8, batch_size=3, repeats=2, warmup=0)
    assert r.input_shapes == ((3, 4, 8, 8),) and r.repeats == 2


def test_a_module_with_two_inputs_gets_both():
    class Add(nn.Module):
        def forward(self, a, b):
            return a + b.mean()

    r = measure_latency(Add(), [(2, 3, 8, 8), (2, 5, 4, 4)], repeats=2, warmup=0)
    assert r.input_shapes == ((2, 3, 8, 8), (2, 5, 4, 4)) and r.batch_size == 2
    assert r.summary()["input_shapes"] == "2x3x8x8+2x5x4x4"
    with pytest.raises(ValueError, match="same batch size"):
        measure_latency(Add(), [(2, 3, 8, 8), (1, 5, 4, 4)], repeats=1, warmup=0)


@pytest.mark.parametrize("kwargs, match", [
    ({"repeats": 0}, "repeats"), ({"repeats": -3}, "repeats"), ({"warmup": -1}, "warmup"),
    ({"threads": 0}, "threads"), ({"device": "tpu"}, "device"), ({"device": "banana"}, "device"),
])
def test_bad_measurement_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        measure_latency(nn.Identity(), (1, 3, 4, 4), **kwargs)


@pytest.mark.parametrize("kwargs, match", [({"C": 0}, "C="), ({"input_size": 0}, "input_size"),
                                           ({"batch_size": 0}, "batch_size")])
def test_bad_primitive_arguments(kwargs, match):
    args = {"name": "skip_connect", "C": 4, "stride": 1, "input_size": 8} | kwargs
    with pytest.raises(ValueError, match=match):
        time_primitive(**args, repeats=1, warmup=0)


def test_bad_input_shape():
    with pytest.raises(ValueError, match="input_shape"):
        measure_latency(nn.Identity(), (0, 3, 4, 4))


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device")
def test_cuda_without_a_gpu_says_what_to_use():
    with pytest.raises(ValueError, match="no CUDA device.*device='cpu'"):
        resolve_device("cuda")


def test_fingerprint_names_the_machine():
    info = machine_fingerprint("cpu")
    assert info["cpu_count"] >= 1 and info["torch"] == torch.__version__
    assert len(info["load_average_1_5_15"]) == 3
    assert info["torch_cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    if Path("/proc/cpuinfo").exists():  # Linux: the numbers that tell same-named CPUs apart
        assert re.fullmatch(r"\d+/\d+", info["cpu_family_model"])
        assert info["cpu_isa"] in ("avx512f", "avx2", "avx", "sse4_2")


def test_measure_latency_times_every_pass_with_the_given_clock():
    clock = ScriptedClock([3.0, 1.0, 2.0])
    result = measure_latency(torch.nn.Identity(), (1, 2), repeats=3, warmup=2, clock=clock)
    assert result.times_ms == (3.0, 1.0, 2.0) and clock.calls == 3


def test_each_device_has_its_own_default_clock():
    from lenna_core.latency.profiler import ThreadCpuClock, WallClock, clock_for
    assert isinstance(clock_for("cpu"), WallClock)
    thread = measure_latency(torch.nn.Linear(64, 64), (8, 64), repeats=3, warmup=1,
                             clock=ThreadCpuClock())
    assert all(t >= 0 for t in thread.times_ms)


def test_the_reference_ratio_is_a_pass_over_the_next_reference_pass():
    from lenna_core.latency.reference_clock import ReferenceClock
    clock = ReferenceClock(clock=ScriptedClock([3.0, 1.5, 8.0]))
    assert clock.time_against(torch.nn.Identity(), [(1, 2)]) == (3.0, 2.0)
    assert clock.tick() == 8.0
