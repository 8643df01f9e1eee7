"""Tests for lenna_core.space.operations: the registry of DARTS primitives and its constructors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lenna_core.space.operations import (
    OPS,
    PRIMITIVES,
    FactorizedReduce,
    Identity,
    Zero,
    check_primitive,
    make_op,
)

DARTS_PRIMITIVES = ("none", "max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3",
                    "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5")


def test_primitives_are_the_darts_list_in_darts_order():
    assert PRIMITIVES == DARTS_PRIMITIVES
    assert tuple(OPS) == PRIMITIVES


@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("name", DARTS_PRIMITIVES)
@pytest.mark.parametrize(("stride", "side"), [(1, 8), (2, 4)])
def test_every_primitive_keeps_channels_and_scales_by_stride(name, stride, side, affine):
    torch.manual_seed(0)
    op = make_op(name, 4, stride, affine)
    assert isinstance(op, nn.Module)
    x = torch.randn(2, 4, 8, 8)
    assert op(x).shape == (2, 4, side, side)
    # make_op is a thin checked wrapper around the registry.
    assert type(OPS[name](4, stride, affine)) is type(op)


def test_skip_connect_is_identity_at_stride_1_and_factorized_reduce_at_stride_2():
    x = torch.randn(2, 4, 8, 8)
    identity = make_op("skip_connect", 4, 1, True)
    assert isinstance(identity, Identity)
    assert identity(x) is x
    assert isinstance(make_op("skip_connect", 4, 2, True), FactorizedReduce)


def test_affine_flag_reaches_batch_norm():
    for name in ("sep_conv_3x3", "dil_conv_5x5", "skip_connect"):
        stride = 2 if name == "skip_connect" else 1
        for affine in (True, False):
            bns = [m for m in make_op(name, 4, stride, affine).modules()
                   if isinstance(m, nn.BatchNorm2d)]
            assert bns, name
            assert all(bn.affine is affine for bn in bns), (name, affine)


def test_parameter_free_primitives_have_no_parameters():
    for name in ("none", "max_pool_3x3", "avg_pool_3x3"):
        for stride in (1, 2):
            assert not list(make_op(name, 4, stride, True).parameters()), name
    assert not list(make_op("skip_connect", 4, 1, True).parameters())


def test_unknown_primitive_lists_allowed_names():
    with pytest.raises(ValueError, match="conv_7x7") as info:
        make_op("conv_7x7", 4, 1, True)
    message = str(info.value)
    for name in DARTS_PRIMITIVES:
        assert name in message
    with pytest.raises(ValueError, match="allowed"):
        check_primitive("sep_conv_7x7")


def test_factorized_reduce_rejects_odd_channels():
    with pytest.raises(ValueError, match="C_out=5") as info:
        FactorizedReduce(4, 5)
    assert "even" in str(info.value)
    # Through the registry: a reducing skip connection with odd C.
    with pytest.raises(ValueError, match="even"):
        make_op("skip_connect", 5, 2, True)
    # A stride-1 skip connection with odd C is an identity and is fine.
    assert isinstance(make_op("skip_connect", 5, 1, True), Identity)


def test_factorized_reduce_halves_and_changes_channels():
    fr = FactorizedReduce(6, 8)
    assert fr(torch.randn(2, 6, 8, 8)).shape == (2, 8, 4, 4)


@pytest.mark.parametrize("stride", [0, 3, -1])
def test_make_op_rejects_bad_stride(stride):
    with pytest.raises(ValueError, match=f"stride={stride}"):
        make_op("sep_conv_3x3", 4, stride, True)


@pytest.mark.parametrize("C", [0, -2])
def test_make_op_rejects_non_positive_channels(C):
    with pytest.raises(ValueError, match=f"C={C}"):
        make_op("max_pool_3x3", C, 1, True)


@pytest.mark.parametrize(("stride", "side"), [(1, 8), (2, 4)])
def test_zero_gives_zeros_of_the_right_shape(stride, side):
    x = torch.randn(2, 4, 8, 8)
    out = Zero(stride)(x)
    assert out.shape == (2, 4, side, side)
    assert out.dtype == x.dtype
    assert torch.count_nonzero(out) == 0
    out = make_op("none", 4, stride, True)(x)
    assert out.shape == (2, 4, side, side)
    assert torch.count_nonzero(out) == 0


def test_pools_and_convs_are_nontrivial():
    """Every op except `none` gives a non-zero output on a random input."""
    torch.manual_seed(0)
    x = torch.randn(2, 4, 8, 8)
    for name in DARTS_PRIMITIVES[1:]:
        for stride in (1, 2):
            assert make_op(name, 4, stride, True)(x).abs().sum() > 0, (name, stride)
