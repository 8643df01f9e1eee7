"""The estimators' gradients in p are the gradients of their estimates (finite differences)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lenna_core.latency.lookup_table import OpLatencyTable
from lenna_core.latency.mlp_model import MLPLatency
from lenna_core.search.estimators import (
    FlopsEstimator,
    LookupTableEstimator,
    MLPEstimator,
    TargetConfig,
)
from lenna_core.search.gradient_check import (
    gradient_agreement,
    gradient_in_p,
    worst_relative_difference,
)

DATA = Path(__file__).resolve().parents[1] / "data"
TARGET = TargetConfig(C=16, layers=8, image_size=32, batch_size=1)


def test_the_shipped_estimators_pass():
    checks = {"mlp": gradient_in_p(MLPEstimator(
                  MLPLatency.load(DATA / "mlp_latency", check_device_here=False), TARGET)),
              "lookup_table": gradient_in_p(LookupTableEstimator(
                  OpLatencyTable.from_csv(DATA / "op_latency_table.csv"), TARGET))}
    worst = worst_relative_difference(checks)
    assert all(value < 1e-6 for value in worst.values()), worst
    assert len(checks["mlp"]) == 24 and (checks["mlp"]["autograd"].abs() > 0).any()


def test_a_gradient_that_is_not_the_estimate_s_is_caught():
    class HalfGradient(FlopsEstimator):
        unit = "ms"

        def per_block(self, block_probs: torch.Tensor) -> torch.Tensor:
            estimate = super().per_block(block_probs)
            return 0.5 * estimate + 0.5 * estimate.detach()  # autograd sees half the slope

    table = gradient_in_p(HalfGradient(TARGET), seed=3)
    assert worst_relative_difference({"half": table})["half"] > 0.1
    moved = table[table["finite_difference"].abs() > 0]
    assert (moved["autograd"] / moved["finite_difference"]).round(6).eq(0.5).all()


@pytest.mark.parametrize("kwargs, match", [({"entries": 0}, "entries=0"),
                                           ({"seed": -1}, "seed=-1"),
                                           ({"eps": 0.5}, "eps=0.5")])
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        gradient_in_p(FlopsEstimator(TARGET), **kwargs)


def test_the_mlp_gradient_points_where_the_table_s_does():
    mlp = MLPEstimator(MLPLatency.load(DATA / "mlp_latency", check_device_here=False), TARGET)
    table = LookupTableEstimator(OpLatencyTable.from_csv(DATA / "op_latency_table.csv"), TARGET)
    agreement = gradient_agreement(mlp, table, seed=0)
    assert agreement["entries"] == 2 * 14 * 8
    assert agreement["spearman"] > 0.5 and agreement["cosine"] > 0.5, agreement
    assert gradient_agreement(table, table)["cosine"] == pytest.approx(1.0)
    # FLOPs count no cost for pooling or skips: its gradient ranks the ops otherwise.
    flops = gradient_agreement(FlopsEstimator(TARGET), table)
    assert flops["spearman"] < agreement["spearman"]
