"""Single-path cells composed from ops exported once compute what the torch cell computes."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from lenna_core.latency.blocks import CellBank, CellContext
from lenna_core.latency.onnx_compose import OnnxCellComposer
from lenna_core.latency.onnx_runtime import OnnxRuntimeCpu

RTOL, ATOL = 1e-4, 1e-5  # as for an exported network (tests/test_onnx_runtime.py)


@pytest.fixture(scope="module")
def composer():
    """A reduction cell after a reduction: strided edges, FactorizedReduce, and stride-1 edges
    whose skip connection exports as an empty graph."""
    torch.manual_seed(0)
    bank = CellBank(CellContext.in_network(8, True, True, 8))
    generator = torch.Generator().manual_seed(1)
    for bn in bank.modules():  # seeded statistics, so normalisation changes the outputs
        if isinstance(bn, nn.BatchNorm2d):
            bn.running_mean = torch.randn(bn.num_features, generator=generator) * 0.1
            bn.running_var = torch.rand(bn.num_features, generator=generator) + 0.5
    return OnnxCellComposer(bank)


@pytest.mark.parametrize("shift", [0, 3])
def test_every_op_on_every_kind_of_edge_computes_what_torch_computes(composer, shift):
    active = [(e + shift) % 8 for e in range(14)]
    model = composer.compose(active)
    onnx.checker.check_model(onnx.load_from_string(model), full_check=True)  # order, shapes
    session = OnnxRuntimeCpu().load(model, composer.input_shapes)
    got = session.run()[0]
    with torch.no_grad():
        expected = composer.bank.select(active)(
            *(torch.from_numpy(x) for x in session.feeds.values())).numpy()
    assert got.shape == composer.output_shape == (1, 32, 4, 4)
    np.testing.assert_allclose(got, expected, rtol=RTOL, atol=ATOL)


def test_an_op_index_outside_the_space_is_refused(composer):
    with pytest.raises(ValueError, match=r"active\[2\]=8: op indices must lie in 0\.\.7"):
        composer.compose([0, 1, 8] + [0] * 11)
