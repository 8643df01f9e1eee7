"""Cell contexts match real networks; a CellBank cell computes what a freshly built cell does."""

from __future__ import annotations

import pytest
import torch

from lenna_core import DARTS_V2, NetworkCIFAR
from lenna_core.latency.blocks import (
    CellBank,
    CellContext,
    network_cell_contexts,
    time_sampled_cell,
)
from lenna_core.space.search_space import SearchSpace


@pytest.mark.parametrize("C, layers, size", [(4, 5, 8), (6, 8, 16), (4, 3, 32)])
def test_contexts_are_the_input_shapes_of_a_real_network(C, layers, size):
    net = NetworkCIFAR(C, 10, layers, False, DARTS_V2).eval()
    seen = []
    for cell in net.cells:
        cell.register_forward_hook(
            lambda module, args, out: seen.append((tuple(args[0].shape), tuple(args[1].shape))))
    with torch.no_grad():
        net(torch.randn(2, 3, size, size))
    contexts = network_cell_contexts(C, layers, size, batch_size=2)
    assert [c.input_shapes for c in contexts] == seen
    assert [c.reduction for c in contexts] == [cell.reduction for cell in net.cells]


def test_in_network_agrees_with_a_deep_cell_of_a_network():
    contexts = network_cell_contexts(8, 8, 32)
    deep_normal = contexts[4]  # after the first reduction's successor
    assert deep_normal == CellContext.in_network(16, False, False, 16)
    assert contexts[5] == CellContext.in_network(32, True, False, 16)
    assert contexts[6] == CellContext.in_network(32, False, True, 8)


def test_bank_cell_equals_a_built_cell_with_the_same_weights():
    torch.manual_seed(0)
    context = CellContext.in_network(4, True, False, 8, batch_size=2)
    bank = CellBank(context)
    active = [3, 4, 5, 6, 7, 1, 2, 3, 4, 5, 6, 7, 0, 2]
    shared, fresh = bank.select(active), context.build(active).eval()
    fresh.load_state_dict(shared.state_dict())
    inputs = [torch.randn(shape) for shape in context.input_shapes]
    with torch.no_grad():
        torch.testing.assert_close(shared(*inputs), fresh(*inputs))
    assert shared.edges == fresh.edges


def test_a_reset_samples_from_the_given_probabilities_and_records_the_shapes():
    context = CellContext.in_network(4, False, False, 8)
    probs = torch.zeros(14, 8)
    probs[:, 4] = 1.0  # sep_conv_3x3 everywhere
    bank = CellBank(context)
    active, result = time_sampled_cell(context, probs, generator=torch.Generator().manual_seed(0),
                                       repeats=2, warmup=0, bank=bank)
    assert active == [4] * 14
    assert result.input_shapes == context.input_shapes and result.repeats == 2
    with pytest.raises(ValueError, match="another context"):
        time_sampled_cell(CellContext.in_network(8, False, False, 8), probs, bank=bank)


@pytest.mark.parametrize("kwargs, match", [
    ({"C": 0}, "C=0"), ({"spatial": 0}, "spatial"), ({"batch_size": 0}, "batch_size"),
    ({"reduction": True, "spatial": 7}, "even input size"), ({"reduction": True, "C": 5}, "even"),
])
def test_bad_contexts(kwargs, match):
    args = dict(reduction=False, reduction_prev=False, C_prev_prev=8, C_prev=8, C=4, spatial=8)
    with pytest.raises(ValueError, match=match):
        CellContext(**(args | kwargs))


def test_contexts_follow_the_space():
    contexts = network_cell_contexts(4, 5, 8, space=SearchSpace(steps=5))
    assert contexts[1].C_prev == 5 * 4  # five nodes concatenated
