"""Chapter 2's tables and figures from recorded streams, on a tiny block."""

from __future__ import annotations

import torch

from lenna_core.blocks import CellContext
from lenna_core.convergence import LennaRule, label_block
from lenna_core.convergence_plots import plot_lenna_rule
from lenna_core.rule_replay import record_stream, stream_overview, timings_per_reset
from lenna_core.search_space import DARTS_SPACE


def test_tables_and_figure_from_a_tiny_block():
    context = CellContext(False, False, 4, 4, 2, 4, 1)
    probs = torch.full((DARTS_SPACE.num_edges, DARTS_SPACE.num_ops), 1 / DARTS_SPACE.num_ops)
    generator = torch.Generator().manual_seed(0)
    streams = [record_stream(context, probs, 6, 3, generator=generator, warmup=0,
                             tags={"temperature": 1.0, "entropy": 2.079})]
    overview = stream_overview(streams)
    assert overview.loc[0, "distinct cells"] <= 6 and overview.loc[0, "ms per reset"] > 0
    table = timings_per_reset(streams, 3, [[1, 1], [3, 0]])
    assert list(table.columns[-2:]) == ["bound 1+1", "bound 3+0"]
    assert (table["build (passes)"] >= 0).all()
    rule = LennaRule(timings_per_reset=2, patience=2, max_resets=5)
    demo = label_block(context, probs, rule, generator=generator)
    fig = plot_lenna_rule(demo, rule, "demo")
    assert len(fig.axes) == 3 and fig.texts[0].get_text() == "demo"
