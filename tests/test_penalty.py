"""Latency penalties: the three forms, their gradients and their validation."""

from __future__ import annotations

import math

import pytest
import torch

from lenna_core.search.penalty import (
    HingePenalty,
    LinearPenalty,
    MultiplicativePenalty,
    make_penalty,
)


def tensors(ce: float, expected: float) -> tuple[torch.Tensor, torch.Tensor]:
    return (torch.tensor(ce, dtype=torch.float64, requires_grad=True),
            torch.tensor(expected, dtype=torch.float64, requires_grad=True))


def test_linear_adds_lam_times_the_ratio_and_its_gradient():
    ce, expected = tensors(0.7, 30.0)
    loss, term = LinearPenalty(0.5, 20.0)(ce, expected)
    assert loss.item() == pytest.approx(0.7 + 0.5 * 1.5)
    assert term == pytest.approx(0.75)
    loss.backward()
    assert expected.grad.item() == pytest.approx(0.5 / 20.0)
    assert ce.grad.item() == pytest.approx(1.0)


def test_multiplicative_is_proxylessnas_log_form():
    ce, expected = tensors(0.7, 30.0)
    loss, _ = MultiplicativePenalty(0.6, 20.0)(ce, expected)
    ratio = math.log(30.0) / math.log(20.0)
    assert loss.item() == pytest.approx(0.7 * ratio ** 0.6)
    loss.backward()
    # d/dE of CE (log E / log ref)^lam = lam * loss / (E log E)
    assert expected.grad.item() == pytest.approx(0.6 * loss.item() / (30.0 * math.log(30.0)))
    with pytest.raises(ValueError, match="reference above 1"):
        MultiplicativePenalty(0.6, 0.5)


def test_hinge_pushes_only_above_the_target():
    ce, expected = tensors(0.7, 15.0)
    loss, term = HingePenalty(2.0, 20.0)(ce, expected)
    assert loss.item() == pytest.approx(0.7) and term == 0.0
    ce, expected = tensors(0.7, 25.0)
    loss, term = HingePenalty(2.0, 20.0)(ce, expected)
    assert term == pytest.approx(2.0 * 0.25)


@pytest.mark.parametrize("kind", ["linear", "multiplicative", "hinge"])
def test_lambda_zero_is_plain_cross_entropy(kind):
    ce, expected = tensors(0.7, 33.0)
    loss, term = make_penalty(kind, 0.0, 10.0)(ce, expected)
    assert loss.item() == pytest.approx(0.7) and term == pytest.approx(0.0)


@pytest.mark.parametrize("lam", [-0.1, math.nan, math.inf, True, "1"])
def test_bad_lambda_is_refused(lam):
    with pytest.raises(ValueError, match="lam="):
        LinearPenalty(lam, 1.0)


@pytest.mark.parametrize("ref", [0.0, -3.0, math.nan])
def test_bad_reference_is_refused(ref):
    with pytest.raises(ValueError, match="ref="):
        LinearPenalty(1.0, ref)


def test_reference_is_set_once_and_needed():
    unset = LinearPenalty(1.0)
    with pytest.raises(ValueError, match="ref is not set"):
        unset(*tensors(0.5, 10.0))
    assert unset.with_ref(12.0).ref == 12.0
    assert LinearPenalty(1.0, 5.0).with_ref(12.0).ref == 5.0
    assert unset.with_ref(12.0).to_dict() == {"kind": "linear", "lam": 1.0, "ref": 12.0}


def test_unknown_kind():
    with pytest.raises(ValueError, match="allowed kinds are linear, multiplicative, hinge"):
        make_penalty("quadratic", 1.0)
