"""The perturbed-timing test mode: off by default, seeded, bounded, and seen by every clock."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from lenna_core.latency.blocks import CellContext
from lenna_core.latency.profiler import machine_fingerprint, measure_latency
from lenna_core.latency.rule_replay import record_stream
from lenna_core.latency.timing_perturbation import perturb, perturbation_settings
from lenna_core.space.search_space import DARTS_SPACE


def test_off_unless_the_variable_is_set(monkeypatch):
    monkeypatch.delenv("LENNA_PERTURB_TIMINGS", raising=False)
    assert perturbation_settings() is None
    assert perturb(1.25) == 1.25
    assert machine_fingerprint()["timing_perturbation"] is None


def test_factors_are_seeded_and_within_the_amplitude(monkeypatch):
    monkeypatch.setenv("LENNA_PERTURB_TIMINGS", "3")
    monkeypatch.setenv("LENNA_PERTURB_AMPLITUDE", "0.2")
    first = np.array([perturb(1.0) for _ in range(2000)])
    assert ((first >= 0.8) & (first <= 1.2)).all()
    assert first.min() < 0.82 and first.max() > 1.18  # the whole range is used
    monkeypatch.setenv("LENNA_PERTURB_TIMINGS", "4")  # another seed: another sequence
    other = np.array([perturb(1.0) for _ in range(2000)])
    monkeypatch.setenv("LENNA_PERTURB_TIMINGS", "3")  # back to the first: the same again
    again = np.array([perturb(1.0) for _ in range(2000)])
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, other)
    assert machine_fingerprint()["timing_perturbation"] == {"seed": 3, "amplitude": 0.2}


@pytest.mark.parametrize("variable, value, match", [
    ("LENNA_PERTURB_TIMINGS", "yes", "integer seed >= 0"),
    ("LENNA_PERTURB_TIMINGS", "-1", "integer seed >= 0"),
    ("LENNA_PERTURB_AMPLITUDE", "1.5", r"in \[0, 1\)"),
    ("LENNA_PERTURB_AMPLITUDE", "wide", r"in \[0, 1\)"),
])
def test_bad_settings_say_what_to_set(monkeypatch, variable, value, match):
    monkeypatch.setenv("LENNA_PERTURB_TIMINGS", "0")
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValueError, match=f"{variable}.*{match}"):
        perturb(1.0)


class _SteppingClock:
    """A clock that advances by ``step`` seconds at every reading: every interval is exact."""

    def __init__(self, step: float) -> None:
        self.now, self.step = 0.0, step

    def perf_counter(self) -> float:
        self.now += self.step
        return self.now


def test_profiler_timings_are_the_clock_times_the_seeded_factors(monkeypatch):
    monkeypatch.setattr("lenna_core.latency.profiler.time", _SteppingClock(1e-3))  # 1 ms per pass
    monkeypatch.setenv("LENNA_PERTURB_TIMINGS", "5")
    monkeypatch.setenv("LENNA_PERTURB_AMPLITUDE", "0.3")
    result = measure_latency(nn.Identity(), (1, 2), repeats=50, warmup=0)
    expected = np.random.default_rng(5).uniform(0.7, 1.3, 50)
    np.testing.assert_allclose(result.times_ms, expected, rtol=1e-9)
    monkeypatch.delenv("LENNA_PERTURB_TIMINGS")
    np.testing.assert_allclose(measure_latency(nn.Identity(), (1, 2), repeats=5,
                                               warmup=0).times_ms, 1.0, rtol=1e-9)


def test_reset_wall_times_are_perturbed_too(monkeypatch):
    monkeypatch.setattr("lenna_core.latency.rule_replay.time", _SteppingClock(1.0))  # 1 s per reset
    monkeypatch.setenv("LENNA_PERTURB_TIMINGS", "1")
    context = CellContext(False, False, 4, 4, 2, 4, 1)
    probs = torch.full((DARTS_SPACE.num_edges, DARTS_SPACE.num_ops), 1 / DARTS_SPACE.num_ops)
    stream = record_stream(context, probs, 20, 2, generator=torch.Generator().manual_seed(0))
    assert ((stream.seconds >= 0.7) & (stream.seconds <= 1.3)).all()
    assert np.ptp(stream.seconds) > 0.2  # unperturbed, every reset would read exactly 1 s
