"""The op lookup table: hand-checked expectations, calibration, files, and clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.utils import estimator_checks

from lenna_core.latency.additivity import additivity_experiment
from lenna_core.latency.blocks import CellContext
from lenna_core.latency.dataset import SamplingSpec, probability_columns, sample_block
from lenna_core.latency.encoder import contexts_from_frame
from lenna_core.latency.lookup_table import (
    CONTEXT_KEY,
    LookupTableModel,
    MissingLatencyError,
    OpLatencyTable,
    _lowest,
)
from lenna_core.latency.op_timing import OP_KEY, edge_keys, zero_cell
from lenna_core.space.search_space import DARTS_SPACE

SPEC = SamplingSpec(channels=(4, 8), layers=(5,), image_sizes=(8,))


def block_frame(rows: int = 12, seed: int = 0, spec: SamplingSpec = SPEC) -> pd.DataFrame:
    records = []
    for row_id in range(rows):
        context, probs, _ = sample_block(row_id, seed, spec)
        records.append({**context.to_dict(), **dict(zip(probability_columns(), probs.ravel()))})
    return pd.DataFrame(records)


def made_up_op_ms(name: str, C: int, spatial: int, stride: int) -> float:
    return (DARTS_SPACE.primitives.index(name) + 1) * 0.01 * C + 0.001 * spatial + 0.1 * stride


def made_up_table(contexts) -> OpLatencyTable:
    """Invented latencies for every key the contexts need (no timing)."""
    keys = {(name, *key) for c in contexts for key in edge_keys(c)
            for name in DARTS_SPACE.primitives}
    ops = pd.DataFrame(sorted(keys), columns=list(OP_KEY))
    ops["latency_ms"] = [made_up_op_ms(*k[:4]) for k in ops.itertuples(index=False)]
    fixed = pd.DataFrame([c.to_dict() for c in dict.fromkeys(contexts)])
    fixed["latency_ms"] = 0.5 + 0.01 * fixed["C_prev"]
    return OpLatencyTable(ops, fixed)


def by_hand(context: CellContext, probs: np.ndarray) -> float:
    """The expectation written out edge by edge, independently of edge_keys."""
    total = 0.5 + 0.01 * context.C_prev
    e = 0
    for node in range(2, 6):
        for src in range(node):
            reduce_edge = context.reduction and src < 2
            spatial = context.spatial if reduce_edge or not context.reduction \
                else context.spatial // 2
            for j, name in enumerate(DARTS_SPACE.primitives):
                total += probs[e, j] * made_up_op_ms(name, context.C, spatial,
                                                     2 if reduce_edge else 1)
            e += 1
    return total


def test_edge_keys_stride_only_on_reduction_edges_from_the_inputs():
    normal = CellContext.in_network(8, False, False, 16)
    assert set(edge_keys(normal)) == {(8, 16, 1, 1)}
    reduction = CellContext.in_network(8, True, False, 16)
    keys = edge_keys(reduction)
    assert keys[:3] == [(8, 16, 2, 1)] * 3 and keys[4] == (8, 8, 1, 1)  # edge 4: node 2 -> 3
    assert sum(k[2] == 2 for k in keys) == 8  # two per intermediate node


def test_predict_equals_the_hand_computed_expectation():
    X = block_frame()
    contexts = contexts_from_frame(X)
    assert any(c.reduction for c in contexts) and not all(c.reduction for c in contexts)
    model = LookupTableModel(made_up_table(contexts)).fit(X)
    probs = X[probability_columns()].to_numpy().reshape(len(X), 14, 8)
    expected = [by_hand(c, p) for c, p in zip(contexts, probs)]
    np.testing.assert_allclose(model.predict(X), expected, rtol=1e-12)
    assert (model.scale_, model.offset_) == (1.0, 0.0)


def test_torch_expectation_is_differentiable_and_agrees():
    X = block_frame(3)
    context = contexts_from_frame(X)[1]
    table = made_up_table([context])
    probs = torch.tensor(X[probability_columns()].to_numpy()[1].reshape(14, 8),
                         requires_grad=True)
    value = table.expected_latency_torch(context, probs)
    value.backward()
    assert value.dim() == 0
    assert value.item() == pytest.approx(by_hand(context, probs.detach().numpy()))
    np.testing.assert_allclose(probs.grad.numpy(), table.edge_matrix(context))
    model = LookupTableModel(table, calibrate=True).fit(X.iloc[[1, 1]], [3.0, 3.0])
    assert model.expected_latency_torch(context, probs).item() == pytest.approx(3.0)


def test_calibration_recovers_scale_and_offset():
    X = block_frame(20)
    table = made_up_table(contexts_from_frame(X))
    sums = LookupTableModel(table).fit(X).predict(X)
    model = LookupTableModel(table, calibrate=True).fit(X, 2.0 * sums + 3.0)
    assert model.scale_ == pytest.approx(2.0) and model.offset_ == pytest.approx(3.0)
    np.testing.assert_allclose(model.predict(X), 2.0 * sums + 3.0)
    with pytest.raises(ValueError, match="needs the measured latencies"):
        LookupTableModel(table, calibrate=True).fit(X)


def test_uncovered_keys_give_a_clear_error():
    X = block_frame()
    contexts = contexts_from_frame(X)
    table = made_up_table(contexts[:1])
    uncovered = next(c for c in contexts if c != contexts[0])
    with pytest.raises(MissingLatencyError, match="OpLatencyTable.measure") as info:
        LookupTableModel(table).fit(X)
    assert isinstance(info.value, KeyError) and isinstance(info.value, ValueError)
    assert table.missing(contexts[:1]) == []
    assert ("fixed", uncovered) in table.missing([uncovered])
    with pytest.raises(KeyError, match="sep_conv_3x3"):
        table.op_ms("sep_conv_3x3", 999, 8, 1)
    with pytest.raises(KeyError, match="no fixed cost for context"):
        table.fixed_ms(uncovered)


def test_bad_probabilities_and_frames_are_refused():
    X = block_frame(4)
    model = LookupTableModel(made_up_table(contexts_from_frame(X))).fit(X)
    bad = X.copy()
    bad.loc[2, "p_03_none"] += 0.2
    with pytest.raises(ValueError,
                       match=r"row 2 \(index 2\): the probabilities of edge 3 .* sum to 1.2"):
        model.predict(bad)
    with pytest.raises(ValueError, match="lacks"):
        model.predict(X.drop(columns=["p_00_none"]))
    with pytest.raises(ValueError, match="dataset frame"):
        model.predict(X.to_numpy())
    with pytest.raises(ValueError, match="sum to 1"):
        model.table.expected_latency_torch(contexts_from_frame(X)[0], torch.ones(14, 8))
    with pytest.raises(ValueError, match="table must be an OpLatencyTable"):
        LookupTableModel().fit(X)


def test_sklearn_contract():
    X = block_frame(4)
    model = LookupTableModel(made_up_table(contexts_from_frame(X)), calibrate=True)
    copy = clone(model)
    assert copy.get_params()["calibrate"] is True and copy.table is not model.table
    with pytest.raises(NotFittedError):
        model.predict(X)
    with pytest.raises(NotFittedError, match="table.expected_latency_torch"):
        model.expected_latency_torch(contexts_from_frame(X)[0], torch.full((14, 8), 1 / 8))
    # The generic estimator checks fit on random numeric matrices; this model reads dataset
    # frames, so only the checks that never fit apply.
    for check in (estimator_checks.check_no_attributes_set_in_init,
                  estimator_checks.check_get_params_invariance,
                  estimator_checks.check_set_params,
                  estimator_checks.check_estimator_cloneable,
                  estimator_checks.check_estimator_repr):
        check("LookupTableModel", LookupTableModel())


def test_measured_table_round_trips_and_predicts_the_zero_cell_exactly(tmp_path):
    context = CellContext(True, False, 8, 8, 4, 4)
    table = OpLatencyTable.measure([context], repeats=3, warmup=1, progress=False)
    assert len(table.ops) == 2 * 8 and len(table.fixed) == 1  # stride 1 and 2 per primitive
    assert (table.ops["latency_ms"] > 0).all()
    row = table.fixed.iloc[0]
    assert row["latency_ms"] == pytest.approx(row["zero_cell_ms"] - row["zero_ops_ms"])
    assert table.meta["units"] == {"latency": "ms"} and table.meta["settings"]["threads"] == 1
    path = tmp_path / "table.csv"
    table.to_csv(path)
    back = OpLatencyTable.from_csv(path)
    assert back.space == table.space and back.meta["machine"] == table.meta["machine"]
    pd.testing.assert_frame_equal(back.ops[list(OP_KEY)], table.ops[list(OP_KEY)])
    pd.testing.assert_frame_equal(back.fixed[list(CONTEXT_KEY)], table.fixed[list(CONTEXT_KEY)])
    np.testing.assert_allclose(back.edge_matrix(context), table.edge_matrix(context), rtol=1e-5)
    # All edges `none`: the prediction is the measured zero cell.
    probs = np.zeros((14, 8))
    probs[:, 0] = 1
    assert back.block_ms(context, probs) == pytest.approx(row["zero_cell_ms"], rel=1e-4)
    cell = zero_cell(context)
    out = cell(*[torch.randn(s) for s in context.input_shapes])
    assert out.shape == (1, 16, 2, 2) and not out.any()


def test_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="OpLatencyTable.measure"):
        OpLatencyTable.from_csv(tmp_path / "absent.csv")
    table = made_up_table([CellContext(False, False, 8, 8, 4, 4)])
    path = tmp_path / "t.csv"
    table.to_csv(path)
    meta = path.with_name(path.name + ".meta.json")
    meta.write_text(meta.read_text().replace('"schema_version": 1', '"schema_version": 99'))
    with pytest.raises(ValueError, match="schema_version=99, this code reads 1"):
        OpLatencyTable.from_csv(path)
    meta.unlink()
    with pytest.raises(ValueError, match="no metadata"):
        OpLatencyTable.from_csv(path)


def test_bad_tables_are_refused():
    context = CellContext(False, False, 8, 8, 4, 4)
    table = made_up_table([context])
    with pytest.raises(ValueError, match="same key twice"):
        OpLatencyTable(pd.concat([table.ops, table.ops.iloc[:1]]), table.fixed)
    with pytest.raises(ValueError, match="positive"):
        OpLatencyTable(table.ops.assign(latency_ms=-1.0), table.fixed)
    with pytest.raises(ValueError, match="lacks the columns"):
        OpLatencyTable(table.ops.drop(columns=["stride"]), table.fixed)
    with pytest.raises(ValueError, match="different search spaces"):
        from lenna_core.space.search_space import SearchSpace
        table.merge(OpLatencyTable(table.ops, table.fixed, SearchSpace(steps=3)))
    merged = table.merge(made_up_table([CellContext(False, False, 16, 16, 8, 4)]))
    assert len(merged.fixed) == 2 and merged.missing([context]) == []


def test_additivity_experiment_reports_one_row_per_cell():
    context = CellContext(True, False, 8, 8, 4, 4)
    table = made_up_table([context])
    frame = additivity_experiment([context], 3, table=table, seed=1, repeats=2, warmup=0,
                                  progress=False)
    timed = ["measured_ms", "measured_cpu_ms", "first_pass_ms"]
    assert len(frame) == 3 and (frame[timed] > 0).all().all()
    # A prediction is a zero cell less 14 zero ops, each timed twice here without warm-up: on
    # a busy machine it can come out below zero (seen once in a test run), so only finite.
    assert np.isfinite(frame[["predicted_ms", "predicted_cpu_ms"]].to_numpy()).all()
    np.testing.assert_allclose(frame["ratio"], frame["measured_ms"] / frame["predicted_ms"])
    np.testing.assert_allclose(frame["predicted_ms"], frame["edges_ms"] + frame["fixed_ms"])
    first = frame.iloc[0]
    names = first["ops"].split()
    assert len(names) == 14 and first["conv_edges"] == sum("conv" in n for n in names)
    strides = [2 if src < 2 else 1 for src, _ in DARTS_SPACE.edges]
    expected = 0.5 + 0.01 * 8 + sum(made_up_op_ms(name, 4, 4 if s == 2 else 2, s)
                                    for name, s in zip(names, strides))
    assert first["table_ms"] == pytest.approx(expected)
    again = additivity_experiment([context], 3, seed=1, repeats=1, warmup=0, progress=False)
    assert list(again["ops"]) == list(frame["ops"])  # the cells are a function of the seed
    assert "table_ms" not in again


def test_rounds_keep_the_lowest_median():
    context = CellContext(False, False, 8, 8, 4, 2)
    table = OpLatencyTable.measure([context], repeats=2, warmup=0, rounds=2, progress=False)
    assert len(table.ops) == 8 and len(table.fixed) == 1
    assert table.meta["statistic"] == "lowest of 2 medians"
    row = table.fixed.iloc[0]
    assert row["latency_ms"] == pytest.approx(row["zero_cell_ms"] - row["zero_ops_ms"])
    with pytest.raises(ValueError, match="rounds=0"):
        OpLatencyTable.measure([context], rounds=0)
    frame = pd.DataFrame({"k": [2, 1, 2, 1], "v": [5.0, 3.0, 4.0, 6.0]})
    lowest = _lowest(frame, ["k"], "v")
    assert lowest["k"].tolist() == [2, 1] and lowest["v"].tolist() == [4.0, 3.0]


def test_contexts_lists_what_the_table_prices():
    table = OpLatencyTable.from_csv(Path(__file__).resolve().parents[1] / "data"
                                    / "op_latency_table.csv")
    contexts = table.contexts()
    assert len(contexts) == len(table.fixed) and table.missing(contexts) == []
    assert all(isinstance(c.reduction, bool) and c.batch_size == 1 for c in contexts)
    assert table.fixed_ms(contexts[3]) == table.fixed["latency_ms"].iloc[3]
