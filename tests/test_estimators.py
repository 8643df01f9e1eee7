"""Estimators of the target network's latency: agree with their sources, check their inputs."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lenna_core import DARTS_V2
from lenna_core.latency.encoder import fixed_macs, op_macs
from lenna_core.latency.lookup_table import MissingLatencyError, OpLatencyTable
from lenna_core.latency.mlp_model import MLPLatency
from lenna_core.search.estimators import (
    FlopsEstimator,
    LookupTableEstimator,
    MLPEstimator,
    TargetConfig,
    genotype_probabilities,
    warn_outside_range,
)
from lenna_core.space.search_space import DARTS_SPACE, SearchSpace

DATA = Path(__file__).resolve().parent.parent / "data"


@pytest.fixture(scope="module")
def mlp():
    return MLPLatency.load(DATA / "mlp_latency")


@pytest.fixture(scope="module")
def table():
    return OpLatencyTable.from_csv(DATA / "op_latency_table.csv")


def random_alphas(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(14, 8, generator=g, requires_grad=True),
            torch.randn(14, 8, generator=g, requires_grad=True))


@pytest.mark.parametrize("kwargs, match", [
    ({"C": 0}, "target C=0"), ({"layers": 2}, "layers=2"), ({"image_size": 30}, "divisible"),
    ({"C": 15}, "even C"), ({"batch_size": 1.5}, "batch_size")])
def test_target_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TargetConfig(**kwargs)


def test_genotype_probabilities_are_one_hot_with_none_on_dropped_edges():
    probs = genotype_probabilities(DARTS_V2)
    for kind, gene in (("normal", DARTS_V2.normal), ("reduce", DARTS_V2.reduce)):
        p = probs[kind]
        assert torch.equal(p.sum(dim=1), torch.ones(14, dtype=p.dtype))
        none = DARTS_SPACE.primitives.index("none")
        assert int((p[:, none] == 0).sum()) == len(gene) == 8
        # Node 2's two inputs are edges 0 and 1; DARTS_V2 puts sep_conv_3x3 on both.
        assert p[0, DARTS_SPACE.primitives.index(gene[0][0])] == 1


def test_flops_of_a_genotype_equal_an_independent_count():
    target = TargetConfig(C=8, layers=5, image_size=16)
    estimator = FlopsEstimator(target)
    expected = 0.0
    for context in target.contexts():
        expected += fixed_macs(context)
        gene = DARTS_V2.reduce if context.reduction else DARTS_V2.normal
        out = context.spatial // 2 if context.reduction else context.spatial
        for op, src in gene:
            stride = 2 if context.reduction and src < 2 else 1
            expected += op_macs(op, context.C, out, stride) * context.batch_size
    assert estimator.predict_genotype(DARTS_V2) == pytest.approx(expected / 1e6, rel=1e-5)
    assert estimator.unit == "MMAC"


def test_lookup_table_estimate_is_the_sum_of_block_expectations(table):
    target = TargetConfig()
    estimator = LookupTableEstimator(table, target)
    a_normal, a_reduce = random_alphas()
    total = estimator(a_normal, a_reduce)
    probs = {False: F.softmax(a_normal.detach().double(), -1),
             True: F.softmax(a_reduce.detach().double(), -1)}
    manual = sum(table.block_ms(c, probs[c.reduction]) for c in target.contexts())
    assert total.item() == pytest.approx(manual, rel=1e-5)
    total.backward()
    assert a_normal.grad.abs().sum() > 0 and a_reduce.grad.abs().sum() > 0


def test_lookup_table_names_what_it_lacks(table):
    with pytest.raises(MissingLatencyError, match="lacks .* entries the target"):
        LookupTableEstimator(table, TargetConfig(C=6))


def test_mlp_estimate_is_the_sum_of_its_blocks_and_differentiable(mlp):
    target = TargetConfig()
    estimator = MLPEstimator(mlp, target)
    a_normal, a_reduce = random_alphas(1)
    total = estimator(a_normal, a_reduce)
    contexts = target.contexts()
    blocks = mlp.as_module(contexts)
    stacked = torch.stack([F.softmax(a_normal, -1), F.softmax(a_reduce, -1)])
    kinds = torch.tensor([int(c.reduction) for c in contexts])
    manual = blocks(stacked[kinds]).sum()
    assert total.item() == pytest.approx(manual.item(), rel=1e-6)
    total.backward()
    assert torch.isfinite(a_normal.grad).all() and a_normal.grad.abs().sum() > 0
    # The discrete estimate of a cheaper genotype is lower: average pooling instead of
    # convolutions (not max pooling: at 32x32 on this CPU it costs as much as a separable
    # convolution, chapter 1's op table).
    pools = DARTS_V2.__class__(
        normal=tuple(("avg_pool_3x3", src) for _, src in DARTS_V2.normal),
        normal_concat=DARTS_V2.normal_concat,
        reduce=tuple(("avg_pool_3x3", src) for _, src in DARTS_V2.reduce),
        reduce_concat=DARTS_V2.reduce_concat)
    assert estimator.predict_genotype(pools) < estimator.predict_genotype(DARTS_V2)


def test_mlp_estimator_refuses_another_op_set_and_warns_outside_its_range(mlp):
    other = SearchSpace(primitives=("none", "max_pool_3x3", "skip_connect", "sep_conv_3x3"))
    with pytest.raises(ValueError, match="another op set or feature layout"):
        MLPEstimator(mlp, TargetConfig(), other)
    assert mlp.context_range_["C"][1] < 256
    outside = TargetConfig(C=128, layers=8, image_size=32)
    with pytest.warns(UserWarning, match=r"outside what the latency model was trained on: C"):
        warn_outside_range(mlp.context_range_, outside.contexts())
    # The committed MLP corrects the lookup table, which has no entries that far out either.
    assert mlp.prior_ is not None
    with (pytest.warns(UserWarning, match="outside what the latency model was trained on"),
          pytest.raises(MissingLatencyError, match="lookup table lacks .* entries")):
        MLPEstimator(mlp, outside)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        MLPEstimator(mlp, TargetConfig())  # inside the range: silent


def test_estimator_checks_probabilities(mlp):
    estimator = MLPEstimator(mlp, TargetConfig())
    with pytest.raises(ValueError, match="probs_normal has shape"):
        estimator.block_probabilities(torch.full((14, 7), 1 / 7), torch.full((14, 8), 1 / 8))
    bad = torch.full((14, 8), 1 / 8)
    bad[0, 0] = 0.9
    with pytest.raises(ValueError, match="sum to 1"):
        estimator.block_probabilities(torch.full((14, 8), 1 / 8), bad)
    assert np.isfinite(estimator.predict_genotype(DARTS_V2))
