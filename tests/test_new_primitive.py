"""Adding a primitive is one registry entry: register ``conv_1x1`` in ``OPS`` and nothing else,
then build and run everything that depends on the op set on a space that includes it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lenna_core.latency.blocks import CellContext
from lenna_core.latency.dataset import SamplingSpec, label_dataset, read_dataset
from lenna_core.latency.encoder import BlockEncoder, edge_macs
from lenna_core.latency.lookup_table import LookupTableModel, OpLatencyTable
from lenna_core.latency.mlp_model import MLPLatency
from lenna_core.search.estimators import (
    FlopsEstimator,
    LookupTableEstimator,
    MLPEstimator,
    TargetConfig,
)
from lenna_core.space import operations
from lenna_core.space.search_space import SearchSpace
from lenna_core.space.single_path import sample_active
from lenna_core.space.supernet import SearchNetwork

PRIMITIVES = ("none", "skip_connect", "sep_conv_3x3", "conv_1x1")


@pytest.fixture
def space(monkeypatch) -> SearchSpace:
    # The one line a user adds to operations.OPS (undone after the test).
    monkeypatch.setitem(operations.OPS, "conv_1x1", lambda C, stride, affine:
                        operations.ReLUConvBN(C, C, 1, stride, 0, affine=affine))
    return SearchSpace(primitives=PRIMITIVES)


def labeler(context, probs, generator, bank):
    """A stand-in for timing: more multiply-adds, more milliseconds."""
    active = sample_active(probs, bank.space, generator)
    macs = edge_macs(context, bank.space)[np.arange(len(active)), active].sum()
    return {"latency_ms": 0.1 + macs / 1e6, "label_rel_se": 0.0, "resets": 1,
            "forward_passes": 1}


def test_a_registered_primitive_runs_through_every_layer(space, tmp_path):
    # Its cost comes from the module it builds: ReLU, a 1x1 convolution, batch norm.
    assert operations.op_macs("conv_1x1", 8, 4, 1) == 8 * 8 * 16
    assert operations.op_macs("conv_1x1", 8, 4, 2) == 8 * 8 * 16

    net = SearchNetwork(4, num_classes=3, layers=3, space=space, in_channels=1)
    assert net(torch.randn(2, 1, 8, 8)).shape == (2, 3)
    assert all(op in PRIMITIVES for op, _ in net.genotype().normal)

    spec = SamplingSpec(channels=(4,), layers=(3,), image_sizes=(8,))
    label_dataset(tmp_path / "d.csv", range(40), labeler, {"name": "macs"}, spec=spec,
                  space=space, progress=False)
    frame = read_dataset(tmp_path / "d.csv")
    assert "p_00_conv_1x1" in frame.columns
    features = BlockEncoder(space).fit(frame).transform(frame)
    assert np.isfinite(features).all()

    contexts = {CellContext(bool(r.reduction), bool(r.reduction_prev), int(r.C_prev_prev),
                            int(r.C_prev), int(r.C), int(r.spatial), int(r.batch_size))
                for r in frame.itertuples()}
    target = TargetConfig(C=4, layers=3, image_size=8, in_channels=1, num_classes=3)
    table = OpLatencyTable.measure(sorted(contexts | set(target.contexts()), key=str), space,
                                   repeats=3, warmup=1, progress=False)
    assert (table.ops["primitive"] == "conv_1x1").any()
    assert np.isfinite(LookupTableModel(table).fit(frame).predict(frame)).all()

    mlp = MLPLatency(hidden=(8,), max_epochs=3, random_state=0, space=space)
    mlp.fit(frame, frame["latency_ms"])
    assert np.isfinite(mlp.predict(frame)).all()

    uniform = torch.full((space.num_edges, space.num_ops), 1 / space.num_ops)
    for estimator in (FlopsEstimator(target, space), LookupTableEstimator(table, target, space),
                      MLPEstimator(mlp, target, space)):
        value = float(estimator(uniform, uniform))
        assert np.isfinite(value) and value > 0, type(estimator).__name__
