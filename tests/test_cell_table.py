"""Op tables from probe cells: the costs are the probes' differences, the probes are timed as
labels are, and the table prices what was measured."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from lenna_core.latency.blocks import CellContext
from lenna_core.latency.cell_table import (
    FLOOR_MS,
    measure_cell_table,
    probe_cells,
    table_from_probes,
    time_probes,
)
from lenna_core.latency.lookup_table import CONTEXT_KEY, OpLatencyTable
from lenna_core.latency.onnx_reference import OnnxReferenceClock
from lenna_core.latency.op_timing import edge_keys
from lenna_core.space.search_space import DARTS_SPACE as SPACE

DATA = Path(__file__).resolve().parents[1] / "data"
NORMAL = CellContext.in_network(4, False, False, 8)
NORMAL_OTHER_INPUTS = CellContext(False, False, 12, 8, 4, 8, 1)  # the same ops, other inputs
REDUCTION = CellContext.in_network(4, True, False, 8)
SMALL = CellContext.in_network(4, True, False, 4)


def _true_cost(name: str, C: int, spatial: int, stride: int, batch: int) -> float:
    """An additive world: each op's cost depends on its key, none is the cheapest."""
    k = SPACE.primitives.index(name)
    return FLOOR_MS + 0.001 * k * C * spatial / (2 * stride)


def _cell_ms(context: CellContext, active: list[int], fixed: float) -> float:
    return fixed + sum(_true_cost(SPACE.primitives[k], *key)
                       for k, key in zip(active, edge_keys(context, SPACE)))


def _probes(contexts_fixed: dict, cell_ms=_cell_ms) -> pd.DataFrame:
    rows = []
    for context, fixed in contexts_fixed.items():
        for (name, part), active in probe_cells(context, SPACE).items():
            rows.append({**{k: getattr(context, k) for k in CONTEXT_KEY}, "primitive": name,
                         "part": part, "edges": 0,
                         "latency_ms": cell_ms(context, active, fixed), "spread": 0.0,
                         "passes": 6})
    return pd.DataFrame(rows)


def _table(contexts_fixed: dict, cell_ms=_cell_ms) -> OpLatencyTable:
    return OpLatencyTable(*table_from_probes(_probes(contexts_fixed, cell_ms), SPACE), SPACE)


def test_a_reduction_cell_is_probed_on_its_stride_two_and_stride_one_edges_apart():
    normal, reduction = probe_cells(NORMAL, SPACE), probe_cells(REDUCTION, SPACE)
    assert len(normal) == SPACE.num_ops and len(reduction) == 2 * SPACE.num_ops - 1
    sep = SPACE.primitives.index("sep_conv_3x3")
    stride2 = [key[2] == 2 for key in edge_keys(REDUCTION, SPACE)]
    assert [k == sep for k in reduction[("sep_conv_3x3", "stride2")]] == stride2
    assert [k == sep for k in reduction[("sep_conv_3x3", "stride1")]] == [not s for s in stride2]


def test_in_an_additive_world_the_table_recovers_every_cost_and_prices_any_cell():
    fixed = {NORMAL: 0.05, NORMAL_OTHER_INPUTS: 0.08, REDUCTION: 0.11}
    table = _table(fixed)
    for row in table.ops.itertuples(index=False):
        assert row.latency_ms == pytest.approx(_true_cost(*row[:5]))
    assert (table.ops["repeats"] == 6).all() and table.ops["iqr_ms"].abs().max() < 1e-12
    for context, cost in fixed.items():
        assert table.fixed_ms(context) == pytest.approx(cost)
        active = list(torch.randint(0, SPACE.num_ops, (SPACE.num_edges,),
                                    generator=torch.Generator().manual_seed(3)).tolist())
        probs = np.eye(SPACE.num_ops)[active]
        assert table.block_ms(context, probs) == pytest.approx(_cell_ms(context, active, cost))


def test_an_op_cheaper_than_none_in_a_cell_still_costs_something_and_the_probes_hold():
    def skip_saves(context, active, fixed):  # skip connections cost less than zeros here
        skip = SPACE.primitives.index("skip_connect")
        return fixed + 0.01 * sum(k != skip for k in active) + 0.002 * sum(
            k == SPACE.primitives.index("sep_conv_3x3") for k in active)

    table = _table({NORMAL: 0.05}, skip_saves)
    assert (table.ops["latency_ms"] >= FLOOR_MS).all()
    assert table.op_ms("skip_connect", 4, 8, 1) == pytest.approx(FLOOR_MS)
    for active in probe_cells(NORMAL, SPACE).values():
        probs = np.eye(SPACE.num_ops)[active]
        assert table.block_ms(NORMAL, probs) == pytest.approx(skip_saves(NORMAL, active, 0.05))


def test_a_context_missing_a_probe_is_refused_by_name():
    probes = _probes({REDUCTION: 0.1})
    probes = probes[~((probes["primitive"] == "max_pool_3x3") & (probes["part"] == "stride1"))]
    with pytest.raises(ValueError, match="max_pool_3x3"):
        table_from_probes(probes, SPACE)


class _StubClock:
    """A reference clock whose ratio is the number of convolutions in the cell plus one."""

    device, threads = "cpu", 1

    def __init__(self):
        self.cells, self.pairs, self.started = 0, 0, []

    def start_block(self, bank):
        self.started.append(bank.context)

    def sampled(self, bank, active):
        self.cells += 1
        return active

    def time_against(self, active, input_shapes):
        self.pairs += 1
        ratio = 1.0 + sum(SPACE.primitives[k].endswith(("3x3", "5x5")) and "conv" in
                          SPACE.primitives[k] for k in active)
        return ratio, ratio


def test_probes_are_timed_as_labels_are_in_the_reference_cells_milliseconds():
    clock = _StubClock()
    probes = time_probes([REDUCTION, NORMAL, REDUCTION], clock, 0.5, cells=3, pairs=2, rounds=2,
                         progress=False)
    # A context listed twice is probed once a round; the second round runs backwards.
    assert clock.started == [REDUCTION, NORMAL, NORMAL, REDUCTION]
    probes = probes[probes["reduction"]]
    assert len(probes) == 2 * SPACE.num_ops - 1
    assert clock.cells == 2 * 3 * (len(probes) + SPACE.num_ops)
    assert clock.pairs == 2 * clock.cells
    by_probe = probes.set_index(["primitive", "part"])
    assert by_probe.loc[("none", "all"), "latency_ms"] == pytest.approx(0.5)
    assert by_probe.loc[("none", "all"), "edges"] == SPACE.num_edges
    assert by_probe.loc[("sep_conv_5x5", "stride2"), "edges"] == 8
    assert by_probe.loc[("sep_conv_5x5", "stride2"), "latency_ms"] == pytest.approx(0.5 * 9)
    assert by_probe.loc[("sep_conv_5x5", "stride1"), "latency_ms"] == pytest.approx(0.5 * 7)
    assert (probes["spread"] == 0).all() and (probes["passes"] == 2 * 3 * 2).all()


@pytest.mark.parametrize("bad", [{"cells": 0}, {"pairs": 0}, {"rounds": 0}, {"reference_ms": 0.0},
                                 {"reference_ms": float("nan")}, {"contexts": []}])
def test_bad_probe_settings_are_refused_by_name(bad):
    args = {"contexts": [NORMAL], "reference_ms": 0.5, "cells": 1, "pairs": 1, **bad}
    name = next(iter(bad))
    with pytest.raises(ValueError, match=name):
        time_probes(args.pop("contexts"), _StubClock(), args.pop("reference_ms"), **args,
                    progress=False)


def test_a_table_from_onnx_runtime_probe_cells_prices_its_context_and_records_how():
    clock = OnnxReferenceClock(session_warmup=1)
    table = measure_cell_table([REDUCTION], clock, 0.1, cells=2, pairs=5, progress=False,
                               reference_from="pool.csv")
    assert table.contexts() == [REDUCTION]
    assert (table.ops["latency_ms"] >= FLOOR_MS).all()
    assert table.meta["settings"]["method"] == "probe cells"
    assert table.meta["settings"]["reference_from"] == "pool.csv"
    assert table.meta["machine"]["runtime"] == "onnxruntime"
    # The all-sep_conv_3x3 cell's four convolutions per edge outweigh the zeros.
    assert table.op_ms("sep_conv_3x3", 4, 8, 2) > table.op_ms("none", 4, 8, 2)


def test_lenna_table_probe_cells_refuse_a_torch_eager_calibration_for_onnx_runtime(tmp_path,
                                                                                     capsys):
    from lenna_core.cli.table import main

    with pytest.raises(SystemExit) as exit_:
        main(["--out", str(tmp_path / "t.csv"), "--contexts-of",
              str(DATA / "latency_dataset.csv"), "--runtime", "onnxruntime", "--probe-cells",
              "--scale-from", str(DATA / "latency_dataset.csv")])
    assert exit_.value.code == 2
    assert "same --runtime" in capsys.readouterr().err
    assert not (tmp_path / "t.csv").exists()


def test_lenna_table_scale_from_needs_probe_cells(tmp_path, capsys):
    from lenna_core.cli.table import main

    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path / "t.csv"), "--contexts-of",
              str(DATA / "latency_dataset.csv"), "--scale-from",
              str(DATA / "latency_dataset.csv")])
    assert "--probe-cells" in capsys.readouterr().err


def test_lenna_table_measures_probe_cells_of_a_files_contexts(tmp_path):
    from lenna_core.cli.table import main

    source = tmp_path / "source.csv"
    OpLatencyTable.measure([SMALL], repeats=2, warmup=0, progress=False).to_csv(source)
    out = tmp_path / "cells.csv"
    main(["--out", str(out), "--contexts-of", str(source), "--runtime", "onnxruntime",
          "--probe-cells", "--cells", "1", "--pairs", "1"])
    table = OpLatencyTable.from_csv(out)
    assert table.contexts() == [SMALL]
    assert table.meta["settings"]["cells"] == 1 and table.meta["settings"]["reference_ms"] > 0


def test_a_space_without_zeros_cannot_be_probed():
    from lenna_core.space.search_space import SearchSpace

    space = SearchSpace(primitives=("skip_connect", "sep_conv_3x3"))
    with pytest.raises(ValueError, match="lack 'none'"):
        probe_cells(NORMAL, space)


def test_a_table_from_torch_eager_probe_cells_prices_its_contexts():
    from lenna_core.latency.reference_clock import ReferenceClock

    table = measure_cell_table([NORMAL, REDUCTION], ReferenceClock(), 0.2, cells=1, pairs=3,
                               progress=False)
    assert set(table.contexts()) == {NORMAL, REDUCTION}
    assert table.meta["machine"]["device"] == "cpu" and table.meta["settings"]["threads"] == 1
    probs = np.full((SPACE.num_edges, SPACE.num_ops), 1 / SPACE.num_ops)
    assert np.isfinite(table.block_ms(REDUCTION, probs))
    # Four convolutions per edge on 14 edges outweigh a cell of zeros in torch eager too.
    assert table.op_ms("sep_conv_3x3", 4, 8, 1) > table.op_ms("none", 4, 8, 1)
