"""Tests for lenna_core.space.search_space: edge bookkeeping, DARTS derivation and validation."""

from __future__ import annotations

import pytest
import torch

from lenna_core.space.genotypes import Genotype
from lenna_core.space.operations import PRIMITIVES
from lenna_core.space.search_space import DARTS_SPACE, SearchSpace

IDX = {name: k for k, name in enumerate(PRIMITIVES)}


def hand_weights(entries: dict[int, dict[str, float]], steps: int = 4,
                 base: float = 0.01) -> torch.Tensor:
    """An (edges x 8) weight matrix: ``base`` everywhere, ``entries[edge][op]`` where given."""
    space = SearchSpace(steps=steps)
    w = torch.full((space.num_edges, space.num_ops), base)
    for edge, ops in entries.items():
        for op, value in ops.items():
            w[edge, IDX[op]] = value
    return w


@pytest.mark.parametrize(("steps", "edges"), [(1, 2), (2, 5), (4, 14), (5, 20)])
def test_edge_counts(steps, edges):
    space = SearchSpace(steps=steps)
    assert space.num_edges == edges == len(space.edges)
    assert space.num_ops == 8
    assert space.concat == tuple(range(2, steps + 2))


def test_darts_space_edge_order():
    assert DARTS_SPACE.num_edges == 14
    assert DARTS_SPACE.edges[:5] == [(0, 2), (1, 2), (0, 3), (1, 3), (2, 3)]
    assert DARTS_SPACE.edges[-1] == (4, 5)
    # Every intermediate node takes an edge from every earlier node.
    for dst in range(2, 6):
        assert [s for s, d in DARTS_SPACE.edges if d == dst] == list(range(dst))


def test_multiplier_selects_last_nodes():
    assert SearchSpace(steps=4, multiplier=2).concat == (4, 5)
    assert SearchSpace(steps=5).multiplier == 5
    assert SearchSpace().to_dict() == {"primitives": list(PRIMITIVES), "steps": 4,
                                       "multiplier": 4}


def test_derive_cell_picks_two_strongest_edges_and_never_none():
    # Edge rows: node 2 <- 0, 1; node 3 <- rows 2..4; node 4 <- rows 5..8; node 5 <- rows 9..13.
    w = hand_weights({
        0: {"sep_conv_3x3": 0.5},
        1: {"none": 0.9, "dil_conv_3x3": 0.05},
        2: {"none": 0.97},                        # largest weight of all, but only on `none`
        3: {"skip_connect": 0.4},
        4: {"max_pool_3x3": 0.3},
        5: {"avg_pool_3x3": 0.2},
        6: {"sep_conv_5x5": 0.6},
        7: {"none": 0.99, "dil_conv_5x5": 0.02},  # strength 0.02: loses
        8: {"dil_conv_3x3": 0.25},
        9: {"sep_conv_3x3": 0.35},
        11: {"none": 0.8, "skip_connect": 0.15},
        12: {"max_pool_3x3": 0.7},
        13: {"dil_conv_5x5": 0.36},
    })
    expected = (("sep_conv_3x3", 0), ("dil_conv_3x3", 1),
                ("skip_connect", 1), ("max_pool_3x3", 2),
                ("sep_conv_5x5", 1), ("dil_conv_3x3", 3),
                ("max_pool_3x3", 3), ("dil_conv_5x5", 4))
    assert DARTS_SPACE.derive_cell(w) == expected
    # derive_genotype wraps two cells into a valid Genotype with the space's concat.
    g = DARTS_SPACE.derive_genotype(w, w.clone())
    assert g == Genotype(normal=expected, normal_concat=[2, 3, 4, 5], reduce=expected,
                         reduce_concat=[2, 3, 4, 5])


def test_derive_cell_ignores_none_even_when_it_dominates_everywhere():
    torch.manual_seed(0)
    logits = torch.randn(14, 8)
    logits[:, IDX["none"]] = 50.0
    probs = torch.softmax(logits, dim=-1)
    assert (probs.argmax(dim=1) == IDX["none"]).all()
    gene = DARTS_SPACE.derive_cell(probs)
    assert len(gene) == 8
    assert all(op != "none" for op, _ in gene)
    # The result is the same as deriving without the `none` column at all.
    no_none = SearchSpace(primitives=PRIMITIVES[1:])
    assert no_none.derive_cell(probs[:, 1:]) == gene


def test_derive_cell_strongest_first_order_and_ties_by_lower_index():
    w = hand_weights({0: {"skip_connect": 0.2}, 1: {"sep_conv_3x3": 0.8}}, steps=1)
    assert SearchSpace(steps=1).derive_cell(w) == (("sep_conv_3x3", 1), ("skip_connect", 0))
    # Equal strengths on nodes 0 and 2 for node 3: the lower source index comes first.
    w = hand_weights({2: {"max_pool_3x3": 0.5}, 3: {"avg_pool_3x3": 0.1},
                      4: {"sep_conv_5x5": 0.5}}, steps=2)
    assert SearchSpace(steps=2).derive_cell(w)[2:] == (("max_pool_3x3", 0), ("sep_conv_5x5", 2))


def test_space_without_none():
    space = SearchSpace(primitives=("max_pool_3x3", "sep_conv_3x3", "skip_connect"), steps=2)
    assert space.num_edges == 5 and space.num_ops == 3
    w = torch.tensor([[0.1, 0.8, 0.1],    # 0 -> 2: sep_conv_3x3
                      [0.6, 0.2, 0.2],    # 1 -> 2: max_pool_3x3
                      [0.3, 0.3, 0.4],    # 0 -> 3: strength 0.4, loses
                      [0.05, 0.05, 0.9],  # 1 -> 3: skip_connect 0.9
                      [0.2, 0.7, 0.1]])   # 2 -> 3: sep_conv_3x3 0.7
    assert space.derive_cell(w) == (("sep_conv_3x3", 0), ("max_pool_3x3", 1),
                                    ("skip_connect", 1), ("sep_conv_3x3", 2))
    g = space.derive_genotype(w, w)
    assert g.steps == 2 and g.normal_concat == (2, 3)


def test_only_none_cannot_derive():
    space = SearchSpace(primitives=("none",), steps=1)
    with pytest.raises(ValueError, match="none"):
        space.derive_cell(torch.ones(2, 1))


@pytest.mark.parametrize("steps", [0, -1, 17, 2.5, "4", None])
def test_bad_steps(steps):
    with pytest.raises(ValueError, match="steps"):
        SearchSpace(steps=steps)


@pytest.mark.parametrize("multiplier", [0, 5, -1])
def test_bad_multiplier(multiplier):
    with pytest.raises(ValueError, match="multiplier"):
        SearchSpace(steps=4, multiplier=multiplier)


@pytest.mark.parametrize(("primitives", "match"), [
    ((), "at least one"),
    (("sep_conv_3x3", "conv_9x9"), "conv_9x9"),
    (("skip_connect", "skip_connect"), "repeat"),
])
def test_bad_primitives(primitives, match):
    with pytest.raises(ValueError, match=match):
        SearchSpace(primitives=primitives)


def test_primitives_list_becomes_tuple():
    space = SearchSpace(primitives=["none", "skip_connect"])
    assert space.primitives == ("none", "skip_connect")
    assert space == SearchSpace(primitives=("none", "skip_connect"))
    hash(space)


def test_check_probabilities_accepts_rows_within_its_tolerance_only():
    probs = torch.softmax(torch.randn(14, 8, generator=torch.Generator().manual_seed(0)), dim=-1)
    DARTS_SPACE.check_probabilities(probs)
    DARTS_SPACE.check_probabilities(torch.eye(8)[torch.arange(14) % 8])
    nearly = probs.clone()
    nearly[3, 0] += 0.5e-4  # inside atol=1e-4: accepted
    DARTS_SPACE.check_probabilities(nearly)
    off = probs.clone()
    off[3, 0] += 2e-4
    with pytest.raises(ValueError, match=r"each row of probs must sum to 1 .* off by 0.0002"):
        DARTS_SPACE.check_probabilities(off)


@pytest.mark.parametrize("shape", [(13, 8), (14, 7), (14,), (1, 14, 8), (20, 8)])
def test_check_probabilities_rejects_wrong_shape(shape):
    probs = torch.full(shape, 1.0 / shape[-1])
    with pytest.raises(ValueError, match=r"shape.*\(14, 8\)"):
        DARTS_SPACE.check_probabilities(probs, name="weights")


def test_check_probabilities_rejects_negative_and_non_finite():
    probs = torch.full((14, 8), 1 / 8)
    probs[3, 0], probs[3, 1] = -0.1, 1 / 8 + 0.1  # row still sums to 1
    with pytest.raises(ValueError, match="non-negative"):
        DARTS_SPACE.check_probabilities(probs)
    probs = torch.full((14, 8), 1 / 8)
    probs[0, 0] = float("nan")
    with pytest.raises(ValueError, match="finite"):
        DARTS_SPACE.check_probabilities(probs)


def test_check_probabilities_rejects_rows_not_summing_to_one():
    probs = torch.full((14, 8), 1 / 8)
    probs[5] *= 1.01
    with pytest.raises(ValueError, match="sum to 1") as info:
        DARTS_SPACE.check_probabilities(probs, name="p")
    assert "p" in str(info.value)
    with pytest.raises(ValueError, match="sum to 1"):
        DARTS_SPACE.check_probabilities(torch.zeros(14, 8))


def test_derive_cell_rejects_weights_of_another_space():
    with pytest.raises(ValueError, match=r"weights has shape \(20, 8\).*\(14, 8\)"):
        SearchSpace().derive_cell(torch.full((20, 8), 1 / 8))


def test_skip_cap_strikes_the_weakest_skips_until_the_cell_fits():
    space = DARTS_SPACE
    skip, conv = space.primitives.index("skip_connect"), space.primitives.index("sep_conv_3x3")
    weights = torch.full((space.num_edges, space.num_ops), 0.01)
    weights[:, skip] = torch.linspace(0.9, 0.5, space.num_edges)  # skip wins every edge
    weights[:, conv] = 0.3
    uncapped = space.derive_cell(weights)
    assert sum(op == "skip_connect" for op, _ in uncapped) == 8
    capped = space.derive_cell(weights, max_skip=2)
    kept = [(op, src) for op, src in capped if op == "skip_connect"]
    assert len(kept) == 2
    # The strongest skips stay: edges 0 and 1 (node 2's inputs) have the highest weights.
    assert capped[:2] == (("skip_connect", 0), ("skip_connect", 1))
    assert all(op == "sep_conv_3x3" for op, _ in capped[2:])
    assert space.derive_cell(weights, max_skip=0).count(("skip_connect", 0)) == 0
    assert space.derive_cell(weights, max_skip=8) == uncapped


@pytest.mark.parametrize("max_skip", [-1, 1.5, True])
def test_bad_skip_cap(max_skip):
    with pytest.raises(ValueError, match="max_skip="):
        DARTS_SPACE.derive_cell(torch.full((14, 8), 1 / 8), max_skip=max_skip)
