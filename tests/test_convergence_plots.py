"""Chapter 2's tables and figures from recorded streams, on a tiny block."""

from __future__ import annotations

import torch

from lenna_core.book.convergence_plots import plot_lenna_rule
from lenna_core.latency.blocks import CellContext
from lenna_core.latency.convergence import LennaRule, label_block
from lenna_core.latency.rule_replay import record_stream, stream_overview, timings_per_reset
from lenna_core.space.search_space import DARTS_SPACE


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


def test_verdict_live_labels_and_findings_from_tiny_blocks():
    from lenna_core.book.convergence_report import convergence_findings, rule_verdict, span
    from lenna_core.latency.convergence import StandardErrorRule
    from lenna_core.latency.rule_replay import compare_rules, live_labels, summarise_replays
    contexts = {"normal": CellContext(False, False, 4, 4, 2, 4, 1)}
    generator = torch.Generator().manual_seed(0)
    alphas = {("normal", 1.0): torch.full((DARTS_SPACE.num_edges, DARTS_SPACE.num_ops),
                                          1 / DARTS_SPACE.num_ops),
              ("normal", 0.0): torch.eye(DARTS_SPACE.num_ops)[
                  torch.zeros(DARTS_SPACE.num_edges, dtype=torch.long)]}
    streams = [record_stream(contexts[kind], probs, 8, 3, generator=generator, warmup=0,
                             tags={"temperature": t, "entropy": 0.0})
               for (kind, t), probs in alphas.items()]
    lenna = LennaRule(timings_per_reset=2, patience=2, max_resets=6)
    se = StandardErrorRule(0.5, timings_per_reset=1, min_resets=2, max_resets=6)
    sweep = {"LENNA": lenna, "LENNA code": LennaRule(timings_per_reset=2, patience=3,
                                                     max_resets=6), se.name: se}
    raw = compare_rules(streams, sweep, 3, 0, per_replicate=True)
    pooled = summarise_replays(raw, by=["rule"])
    verdict = rule_verdict(pooled, raw, streams, sweep, [se.name], "LENNA", 3, 0)
    assert verdict.choice.name == se.name and "rule to use: " + se.name in verdict.report
    live = live_labels(streams, alphas, contexts, {"LENNA": lenna, "chosen": se},
                       generator=generator)
    assert list(live.rule) == ["LENNA", "chosen"] * 2 and (live["label (ms)"] > 0).all()
    totals = live.groupby("rule", sort=False)[["forward passes", "seconds"]].sum()
    totals["median error"] = live.groupby("rule", sort=False)["error"].median()
    overview = stream_overview(streams)
    repeat = {"results": [{"protocol": p, "cell": c, "relative_difference": 0.01}
                          for p in ("sequential", "interleaved") for c in ("normal", "reduction")]}
    text = convergence_findings(
        overview=overview, per_block=summarise_replays(raw), pooled=pooled, reference="LENNA",
        code_rule="LENNA code", k_star=timings_per_reset(streams, 3, [[1, 0]]),
        first_setting=(1, 0), verdict=verdict, totals=totals, labels=len(streams),
        repeatability=repeat, repeatability_chunk=5, block="a tiny block", seconds=1.0)
    assert text.count("\n- ") == 6 and "a tiny block" in text
    assert span([1.0, 2.0]) == "1.00 to 2.00" and span([3.0, 3.0]) == "3.00"
    assert span([-0.12, 0.3], "{:.1f}") == "-0.1 to 0.3"
    assert span([0.4, float("inf")], "{:.1f}") == "0.4 to unbounded"
    assert span([0.021, 0.024]) == "0.02"  # ends that print alike are one number
