"""ONNX Runtime as a latency device: exported networks compute what torch computes, exports
that fail name the op and submodule, sessions and timings carry the device's settings."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch
from scripted_clock import ScriptedClock
from torch import nn

import lenna_core as lc
from lenna_core.latency.blocks import CellContext
from lenna_core.latency.onnx_export import export_onnx
from lenna_core.latency.onnx_reference import OnnxReferenceClock
from lenna_core.latency.onnx_runtime import OnnxRuntimeCpu, measure_onnx_latency
from lenna_core.latency.profiler import ThreadCpuClock

# float32 through other kernels (and BatchNorm folded into the convolutions) rounds differently
# from torch; a wrong graph (a missing op, BatchNorm in training mode) is off by far more.
RTOL, ATOL = 1e-4, 1e-5


class _CumMax(nn.Module):
    """An op the ONNX exporter has no conversion for (opset 17)."""

    def forward(self, x):
        return torch.cummax(x, dim=1)[0]


def _with_running_statistics(module: nn.Module, seed: int = 0) -> nn.Module:
    """Seeded BatchNorm statistics, so evaluation-mode normalisation changes the outputs."""
    generator = torch.Generator().manual_seed(seed)
    for bn in module.modules():
        if isinstance(bn, nn.BatchNorm2d):
            bn.running_mean = torch.randn(bn.num_features, generator=generator) * 0.1
            bn.running_var = torch.rand(bn.num_features, generator=generator) + 0.5
    return module.eval()


def _torch_outputs(module: nn.Module, session) -> np.ndarray:
    with torch.no_grad():
        out = module(*(torch.from_numpy(x) for x in session.feeds.values()))
    return (out[0] if isinstance(out, tuple) else out).numpy()


def test_the_darts_v2_network_computes_in_onnx_runtime_what_it_computes_in_torch():
    torch.manual_seed(0)
    net = _with_running_statistics(lc.NetworkCIFAR(16, 10, 8, False, lc.DARTS_V2))
    session = OnnxRuntimeCpu().session(net, [(2, 3, 32, 32)])
    expected = _torch_outputs(net, session)
    got = session.run()[0]
    assert got.shape == (2, 10)
    np.testing.assert_allclose(got, expected, rtol=RTOL, atol=ATOL)
    assert not net.training  # exported in eval mode, left as it was given


def test_a_sampled_single_path_cell_computes_what_torch_computes():
    context = CellContext.in_network(16, True, False, 16)
    generator = torch.Generator().manual_seed(3)
    cell, _ = lc.sample_single_path_cell(torch.full((14, 8), 1 / 8), context.C_prev_prev,
                                         context.C_prev, context.C, context.reduction,
                                         generator=generator)
    cell = _with_running_statistics(cell)
    session = OnnxRuntimeCpu().session(cell, context.input_shapes)
    got = session.run()[0]
    assert got.shape == (1, 4 * 16, 8, 8)
    np.testing.assert_allclose(got, _torch_outputs(cell, session), rtol=RTOL, atol=ATOL)


def test_an_op_the_exporter_lacks_is_named_with_its_submodule():
    net = nn.Sequential(nn.Conv2d(3, 4, 1), nn.Sequential(nn.ReLU(), _CumMax()))
    with pytest.raises(ValueError, match=r"Sequential cannot be exported.*'aten::cummax' in "
                                         r"submodule '1\.1' \(_CumMax\)"):
        export_onnx(net, [(1, 3, 4, 4)])


def test_any_other_export_failure_is_a_value_error_with_the_exporters_reason(monkeypatch):
    def fail(*args, **kwargs):
        raise RuntimeError("graph too strange\nmore detail")

    monkeypatch.setattr(torch.onnx, "export", fail)
    with pytest.raises(ValueError, match=r"^Conv2d cannot be exported to ONNX \(opset 17\): "
                                         r"RuntimeError: graph too strange$"):
        export_onnx(nn.Conv2d(3, 4, 1), [(1, 3, 4, 4)])


def test_a_session_runs_with_the_devices_threads_and_graph_optimisation():
    session = OnnxRuntimeCpu(threads=2, optimization="basic").session(nn.Conv2d(3, 4, 3),
                                                                        [(1, 3, 8, 8)])
    options = session.session.get_session_options()
    assert (options.intra_op_num_threads, options.inter_op_num_threads) == (2, 1)
    assert options.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    assert session.session.get_providers() == ["CPUExecutionProvider"]
    record = OnnxRuntimeCpu(threads=2, optimization="basic").fingerprint()
    assert (record["runtime"], record["onnxruntime"], record["graph_optimization"]) == (
        "onnxruntime", ort.__version__, "basic")


@pytest.mark.parametrize("settings, match", [
    ({"threads": 0}, r"threads=0: must be an integer >= 1"),
    ({"threads": None}, r"threads=None: must be an integer >= 1"),
    ({"optimization": "max"}, r"optimization='max': must be one of 'disable', 'basic', "
                              r"'extended', 'all'"),
])
def test_bad_device_settings_say_what_is_allowed(settings, match):
    with pytest.raises(ValueError, match=match):
        OnnxRuntimeCpu(**settings)


def test_every_timed_pass_goes_through_the_clock_and_the_perturbation(monkeypatch):
    session = OnnxRuntimeCpu().session(nn.Conv2d(3, 4, 3), [(2, 3, 8, 8)])
    clock = ScriptedClock([3.0, 1.0, 2.0])
    result = measure_onnx_latency(session, repeats=3, warmup=2, clock=clock)
    assert result.times_ms == (3.0, 1.0, 2.0) and clock.calls == 3
    assert (result.backend, result.threads, result.batch_size, result.input_shapes) == (
        "onnxruntime", 1, 2, ((2, 3, 8, 8),))
    monkeypatch.setenv("LENNA_PERTURB_TIMINGS", "0")
    perturbed = measure_onnx_latency(session, repeats=3, warmup=0,
                                     clock=ScriptedClock([1.0, 1.0, 1.0])).times_ms
    assert len(set(perturbed)) == 3 and all(0.7 <= t <= 1.3 for t in perturbed)


def test_the_thread_clock_is_refused_for_a_session_with_several_threads():
    session = OnnxRuntimeCpu(threads=2).session(nn.Conv2d(3, 4, 3), [(1, 3, 8, 8)])
    with pytest.raises(ValueError, match="clock='thread_cpu' sees only the calling thread"):
        measure_onnx_latency(session, repeats=1, clock=ThreadCpuClock())


def test_the_reference_ratio_is_a_session_pass_over_the_next_reference_pass():
    clock = OnnxReferenceClock(clock=ScriptedClock([3.0, 1.5, 8.0, 4.0]))
    conv = nn.Conv2d(3, 4, 3)
    session = clock.runtime.session(conv, [(1, 3, 8, 8)])
    assert clock.time_against(session, [(1, 3, 8, 8)]) == (3.0, 2.0)
    # A torch module is exported into its own session first; its warm-up passes are untimed.
    assert clock.time_against(conv, [(1, 3, 8, 8)]) == (8.0, 2.0)
    assert clock.clock.calls == 4
