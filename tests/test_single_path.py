"""Tests for lenna_core.space.single_path: sampled single-path cells, what the profiler times."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lenna_core.space.cells import FixedCell
from lenna_core.space.operations import PRIMITIVES, make_op
from lenna_core.space.search_space import DARTS_SPACE, SearchSpace
from lenna_core.space.single_path import sample_active, sample_single_path_cell, single_path_cell


def random_probs(space: SearchSpace = DARTS_SPACE, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return F.softmax(torch.randn(space.num_edges, space.num_ops, generator=g), dim=-1)


def one_hot_probs(active: list[int], space: SearchSpace = DARTS_SPACE) -> torch.Tensor:
    return F.one_hot(torch.tensor(active), space.num_ops).float()


@pytest.mark.parametrize("reduction", [False, True])
def test_sampled_cell_has_the_sampled_op_on_every_edge(reduction):
    C = 4
    cell, active = sample_single_path_cell(random_probs(), 8, 8, C, reduction,
                                           generator=torch.Generator().manual_seed(3))
    assert isinstance(cell, FixedCell)
    assert len(active) == len(cell.edges) == len(cell.ops) == DARTS_SPACE.num_edges
    assert cell.edges == tuple((PRIMITIVES[k], src, dst)
                               for k, (src, dst) in zip(active, DARTS_SPACE.edges))
    for (name, src, _), op in zip(cell.edges, cell.ops):
        stride = 2 if reduction and src < 2 else 1
        assert type(op) is type(make_op(name, C, stride, True)), (name, src)
    assert cell.concat == (2, 3, 4, 5)
    assert cell.reduction is reduction


def test_same_generator_seed_gives_the_same_cell():
    probs = random_probs(seed=1)
    cells = [sample_single_path_cell(probs, 8, 8, 4, False,
                                     generator=torch.Generator().manual_seed(11))
             for _ in range(2)]
    assert cells[0][1] == cells[1][1]
    assert cells[0][0].edges == cells[1][0].edges
    other = sample_single_path_cell(probs, 8, 8, 4, False,
                                    generator=torch.Generator().manual_seed(12))
    assert other[1] != cells[0][1]


def test_one_hot_probabilities_give_that_op_with_certainty():
    g = torch.Generator().manual_seed(0)
    chosen = torch.randint(0, 8, (14,), generator=g).tolist()
    probs = one_hot_probs(chosen)
    for seed in range(5):
        cell, active = sample_single_path_cell(probs, 8, 8, 4, False,
                                               generator=torch.Generator().manual_seed(seed))
        assert active == chosen
        assert [op for op, _, _ in cell.edges] == [PRIMITIVES[k] for k in chosen]


@pytest.mark.parametrize("shape", [(13, 8), (14, 7), (8,), (20, 8)])
def test_probabilities_of_the_wrong_shape(shape):
    probs = torch.full(shape, 1.0 / shape[-1])
    with pytest.raises(ValueError, match="shape"):
        sample_single_path_cell(probs, 8, 8, 4, False)


def test_probabilities_not_summing_to_one():
    probs = random_probs() * 0.9
    with pytest.raises(ValueError, match="sum to 1"):
        sample_single_path_cell(probs, 8, 8, 4, False)
    probs = random_probs()
    probs[0, 0] = -probs[0, 0]
    with pytest.raises(ValueError, match="non-negative"):
        sample_active(probs)


def test_normal_cell_keeps_and_reduction_cell_halves_the_size():
    torch.manual_seed(0)
    s0, s1 = torch.randn(2, 6, 8, 8), torch.randn(2, 10, 8, 8)
    probs = random_probs(seed=2)
    normal, _ = sample_single_path_cell(probs, 6, 10, 4, False)
    assert normal(s0, s1).shape == (2, 16, 8, 8)
    reduce, _ = sample_single_path_cell(probs, 6, 10, 4, True)
    assert reduce(s0, s1).shape == (2, 16, 4, 4)
    # After a reduction cell the older input is twice as large and gets halved first.
    after, _ = sample_single_path_cell(probs, 6, 10, 4, False, reduction_prev=True)
    assert after(torch.randn(2, 6, 16, 16), s1).shape == (2, 16, 8, 8)


def test_every_op_everywhere_runs_in_a_reduction_cell():
    # One cell per primitive, that primitive on all 14 edges: strides must match on every node.
    s0, s1 = torch.randn(1, 8, 8, 8), torch.randn(1, 8, 8, 8)
    for k in range(8):
        cell = single_path_cell([k] * 14, 8, 8, 4, reduction=True)
        out = cell(s0, s1)
        assert out.shape == (1, 16, 4, 4), PRIMITIVES[k]


def test_steps_5_space():
    space = SearchSpace(steps=5)
    assert space.num_edges == 20
    probs = random_probs(space, seed=3)
    cell, active = sample_single_path_cell(probs, 8, 8, 4, True, space=space,
                                           generator=torch.Generator().manual_seed(0))
    assert len(active) == len(cell.edges) == 20
    assert [(src, dst) for _, src, dst in cell.edges] == space.edges
    assert cell.concat == (2, 3, 4, 5, 6)
    assert cell(torch.randn(2, 8, 8, 8), torch.randn(2, 8, 8, 8)).shape == (2, 20, 4, 4)
    with pytest.raises(ValueError, match="shape"):
        sample_single_path_cell(random_probs(), 8, 8, 4, False, space=space)


def test_space_with_a_subset_of_primitives():
    space = SearchSpace(primitives=("skip_connect", "sep_conv_3x3", "max_pool_3x3"), steps=2)
    cell = single_path_cell([0, 1, 2, 1, 0], 8, 8, 4, False, space=space)
    assert [op for op, _, _ in cell.edges] == ["skip_connect", "sep_conv_3x3", "max_pool_3x3",
                                               "sep_conv_3x3", "skip_connect"]
    assert cell(torch.randn(1, 8, 8, 8), torch.randn(1, 8, 8, 8)).shape == (1, 8, 8, 8)


def test_odd_channels_in_a_reduction_cell_with_a_reducing_skip():
    probs = one_hot_probs([PRIMITIVES.index("skip_connect")] * 14)
    with pytest.raises(ValueError, match="C_out=5.*even"):
        sample_single_path_cell(probs, 8, 8, 5, True)
    # Odd C is fine where no skip connection strides: a normal cell, or pooling in a reduction.
    normal, _ = sample_single_path_cell(probs, 8, 8, 5, False)
    assert normal(torch.randn(1, 8, 4, 4), torch.randn(1, 8, 4, 4)).shape == (1, 20, 4, 4)
    pools = one_hot_probs([PRIMITIVES.index("max_pool_3x3")] * 14)
    reduce, _ = sample_single_path_cell(pools, 8, 8, 5, True)
    assert reduce(torch.randn(1, 8, 4, 4), torch.randn(1, 8, 4, 4)).shape == (1, 20, 2, 2)


@pytest.mark.parametrize(("active", "match"), [
    ([0] * 13, "13 ops"),
    ([0] * 15, "15 ops"),
    ([0] * 13 + [8], r"active\[13\]=8"),
    ([-1] + [0] * 13, r"active\[0\]=-1"),
])
def test_single_path_cell_rejects_bad_indices(active, match):
    with pytest.raises(ValueError, match=match):
        single_path_cell(active, 8, 8, 4, False)


def test_single_path_cell_matches_the_sampled_cell_weights_layout():
    """The same op indices build cells with the same parameter shapes."""
    probs = random_probs(seed=4)
    cell, active = sample_single_path_cell(probs, 8, 8, 4, True,
                                           generator=torch.Generator().manual_seed(9))
    rebuilt = single_path_cell(active, 8, 8, 4, True)
    assert cell.edges == rebuilt.edges
    assert [p.shape for p in cell.parameters()] == [p.shape for p in rebuilt.parameters()]
