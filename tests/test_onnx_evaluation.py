"""Derived networks timed in ONNX Runtime: one export per network, the sessions in turns against
the reference cell's session, reference-scaled like the torch meter, outputs as torch's."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from scripted_clock import ScriptedClock

from lenna_core import DARTS_V1, DARTS_V2, Genotype
from lenna_core.latency.onnx_reference import OnnxReferenceClock
from lenna_core.latency.onnx_runtime import OnnxSession
from lenna_core.search.estimators import TargetConfig
from lenna_core.search.evaluation import LatencyMeter, measure_interleaved
from lenna_core.search.onnx_evaluation import onnx_meter
from lenna_core.search.sweep import measure_runtime_session

TINY = TargetConfig(C=4, layers=3, image_size=8)
CONCAT = [2, 3, 4, 5]


def _uniform(normal: str, reduce: str) -> Genotype:
    """Every edge of the normal cell ``normal``, of the reduction cell ``reduce``."""
    return Genotype([(normal, i % 2) for i in range(8)], CONCAT,
                    [(reduce, i % 2) for i in range(8)], CONCAT)


@pytest.fixture(scope="module")
def meter():
    return LatencyMeter(7.0, passes=3, warmup=1, clock=OnnxReferenceClock())


def test_every_derived_network_gets_positive_ort_columns_timed_once(meter):
    results = pd.DataFrame({"run_id": ["a", "b", "c"], "measured_ms": [1.0, 2.0, 3.0],
                            "genotype": [DARTS_V2.to_json(), DARTS_V1.to_json(),
                                         DARTS_V2.to_json()]})
    out = measure_runtime_session(results, TINY, meter)
    for column in ("measured_ort_ms", "measured_ort_raw_ms", "ratio_iqr_ort"):
        assert column in out
    assert (out["measured_ort_ms"] > 0).all() and (out["measured_ort_raw_ms"] > 0).all()
    assert out["measured_ort_ms"].iloc[0] == out["measured_ort_ms"].iloc[2]  # one timing each
    assert out["measured_ms"].tolist() == [1.0, 2.0, 3.0]  # torch eager's columns untouched


def test_latency_is_the_median_ratio_to_the_reference_session_times_reference_ms():
    # Per round: network A's pass, a reference pass, network B's pass, a reference pass.
    times = [2.0, 1.0, 6.0, 2.0,
             3.0, 1.0, 4.0, 1.0,
             4.0, 2.0, 9.0, 3.0]
    clock = OnnxReferenceClock(clock=ScriptedClock(times))
    timed = measure_interleaved([DARTS_V2, DARTS_V1], TINY,
                                LatencyMeter(7.0, passes=3, warmup=1, clock=clock))
    # A: ratios 2, 3, 2 and times 2, 3, 4; B: ratios 3, 4, 3 and times 6, 4, 9.
    assert timed["latency_ms"].tolist() == [2.0 * 7.0, 3.0 * 7.0]
    assert timed["raw_ms"].tolist() == [3.0, 6.0]
    assert clock.clock.calls == len(times)  # warm-up passes never reach the pass clock


def test_sep_conv_cells_run_slower_in_onnx_runtime_than_skip_and_pool_cells():
    target = TargetConfig(C=16, layers=5, image_size=16)
    heavy, light = _uniform("sep_conv_5x5", "sep_conv_5x5"), _uniform("skip_connect",
                                                                      "max_pool_3x3")
    timed = measure_interleaved([heavy, light], target,
                                LatencyMeter(7.0, passes=5, warmup=2,
                                             clock=OnnxReferenceClock())).set_index("genotype")
    assert timed.loc[heavy.to_json(), "latency_ms"] > 1.5 * timed.loc[light.to_json(),
                                                                    "latency_ms"]
    assert timed.loc[heavy.to_json(), "raw_ms"] > timed.loc[light.to_json(), "raw_ms"]


def test_the_session_a_meter_times_computes_what_the_torch_network_computes(meter):
    torch.manual_seed(0)
    net = TINY.build(DARTS_V2).eval()
    session = meter.ready(net, TINY.input_shape)
    assert isinstance(session, OnnxSession)
    with torch.no_grad():
        expected = net(torch.from_numpy(next(iter(session.feeds.values()))))[0].numpy()
    got = session.run()[0]
    assert got.shape == (1, 10)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_a_meter_for_an_onnx_runtime_dataset_takes_its_threads_level_and_reference():
    settings = {"rule": {"reference_ms": 0.8},
                "runtime": {"runtime": "onnxruntime", "intra_op_threads": 1,
                            "graph_optimization": "basic"}}
    meter = onnx_meter(settings, passes=4)
    assert isinstance(meter.clock, OnnxReferenceClock)
    assert (meter.reference_ms, meter.passes, meter.threads) == (0.8, 4, 1)
    assert meter.clock.runtime.optimization == "basic"
    with pytest.raises(ValueError, match="labelled in torch eager, not onnxruntime"):
        onnx_meter({"rule": {"reference_ms": 2.0}})
