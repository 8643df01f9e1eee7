"""Stopping rules for latency labels, their offline replay, and live labelling (no timing
assertions: only counts, accounting and errors)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from lenna_core.latency.blocks import CellContext
from lenna_core.latency.convergence import (
    LennaRule,
    StandardErrorRule,
    control_variate_mean,
    label_block,
    relative_standard_error,
)
from lenna_core.latency.rule_replay import (
    RecordedStream,
    cheapest_matching,
    compare_rules,
    mean_entropy,
    probabilities_with_temperature,
    record_stream,
    replay,
    summarise_replays,
)
from lenna_core.space.search_space import DARTS_SPACE


def tiny_context(reduction: bool = False) -> CellContext:
    return CellContext(reduction, False, 8, 8, 4, 8)


# ------------------------------------------------------------------ rules on streams


def test_lenna_rule_stops_a_constant_stream_after_patience_plus_one():
    rule = LennaRule(patience=10)
    assert rule.stopping_point([5.0] * 10) is None
    assert rule.stopping_point([5.0] * 11) == 11
    assert rule.stopping_point([5.0] * 50) == 11
    assert not rule.should_stop([5.0] * 10) and rule.should_stop([5.0] * 11)
    assert rule.converged([5.0] * 11)


def test_lenna_rule_counts_consecutive_small_changes():
    rule = LennaRule(tolerance=0.01, patience=3)
    # cumulative averages 10, 10, 12, 12, ... : the jump at reset 3 resets the run.
    values = [10.0, 10.0, 16.0, 12.0, 12.0, 12.0, 12.0]
    changes = rule.relative_changes(values)
    assert changes[0] == 0 and changes[1] == pytest.approx(0.2)
    assert changes[2] == 0  # reset 4: (10 + 10 + 16 + 12) / 4 is still 12
    assert rule.stopping_point(values) == 6  # changes at resets 4, 5, 6 are below 1%
    assert rule.stopping_point(values[:5]) is None


def test_lenna_rule_with_a_slow_drift_stops_once_the_average_moves_slowly():
    # The average of 100 * (1 + 0.01 r) grows by ~0.5% per reset at first: never 1% at once.
    drift = 100 * (1 + 0.01 * np.arange(200))
    rule = LennaRule(tolerance=0.01, patience=10)
    assert rule.stopping_point(drift) == 11
    # A faster drift (3% per reset) keeps the changes above 1% until the average is large.
    fast = 100 * (1 + 0.03 * np.arange(2000))
    changes = rule.relative_changes(fast)
    stop = rule.stopping_point(fast)
    assert stop is not None and stop > 11
    assert (changes[stop - 1 - 10:stop - 1] < 0.01).all() and changes[stop - 12] >= 0.01


def test_rules_stop_at_max_resets_without_converging():
    alternating = [1.0, 3.0] * 50
    lenna = LennaRule(tolerance=0.001, patience=5, max_resets=20)
    assert lenna.stopping_point(alternating) == 20 and not lenna.converged(alternating)
    assert lenna.stopping_point(alternating[:19]) is None
    se = StandardErrorRule(target_rel_error=0.001, min_resets=4, max_resets=30)
    assert se.stopping_point(alternating) == 30 and not se.converged(alternating)


def test_standard_error_rule_stops_a_constant_stream_at_min_resets():
    rule = StandardErrorRule(min_resets=8)
    assert rule.stopping_point([2.0] * 7) is None
    assert rule.stopping_point([2.0] * 8) == 8


def test_standard_error_rule_stops_near_the_predicted_count():
    # sd / mean = 0.2, target 2%: the standard error hits the target near n = (0.2/0.02)^2.
    rng = np.random.default_rng(0)
    stops = []
    for _ in range(20):
        values = 10.0 * (1 + 0.2 * rng.standard_normal(1000))
        stops.append(StandardErrorRule(target_rel_error=0.02).stopping_point(values))
    assert 70 <= np.median(stops) <= 130


def test_relative_standard_errors_match_the_direct_formula():
    values = np.array([3.0, 4.0, 8.0, 5.0, 6.5])
    rule = StandardErrorRule()
    running = rule.relative_standard_errors(values)
    assert math.isnan(running[0])
    for n in range(2, 6):
        assert running[n - 1] == pytest.approx(relative_standard_error(values[:n]))
    assert relative_standard_error(values) == pytest.approx(
        values.std(ddof=1) / np.sqrt(5) / values.mean())


def test_reset_values_use_the_rule_statistic_on_the_first_timings():
    timings = np.array([[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 100.0]])
    assert LennaRule().reset_values(timings)[0] == pytest.approx(np.quantile(timings[0, :10], .4))
    assert StandardErrorRule(timings_per_reset=3).reset_value(timings[0]) == 2.0
    assert StandardErrorRule(timings_per_reset=2, statistic="mean").reset_value([1, 4]) == 2.5
    with pytest.raises(ValueError, match="at least 10 timings"):
        LennaRule().reset_value([1.0, 2.0])


# ------------------------------------------------------------------------ replay


def test_replay_uses_only_the_first_timings_a_rule_takes():
    # Timings after the third are huge: a 3-timing rule must never see them.
    timings = np.full((50, 10), 1000.0)
    timings[:, :3] = [[1.0, 2.0, 3.0]]
    rule = StandardErrorRule(timings_per_reset=3, min_resets=5)
    result = replay(rule, timings)
    assert result.estimate_ms == 2.0 and result.resets == 5 and result.stopped_by == "rule"
    assert result.forward_passes == 5 * (1 + 3)
    # With one more warm-up pass than recorded, the first timed pass counts as warm-up.
    shifted = replay(StandardErrorRule(timings_per_reset=3, min_resets=5, warmup_per_reset=2),
                     timings)
    assert shifted.estimate_ms == 3.0 and shifted.forward_passes == 5 * (2 + 3)


def test_replay_follows_the_order_and_reports_the_end_of_the_stream():
    timings = np.arange(1.0, 21.0)[:, None] * np.ones((1, 10))
    rule = LennaRule(patience=3)
    result = replay(rule, timings, order=[4, 4, 4, 4, 0])
    assert result.resets == 4 and result.estimate_ms == 5.0 and result.stopped_by == "rule"
    short = replay(LennaRule(patience=10), timings, order=[0, 1, 2])
    assert short.stopped_by == "end of stream" and short.resets == 3
    assert short.forward_passes == 3 * 11
    with pytest.raises(ValueError, match="order"):
        replay(rule, timings, order=[20])
    with pytest.raises(ValueError, match="timings per reset"):
        replay(LennaRule(timings_per_reset=11), timings)
    with pytest.raises(ValueError, match="warm"):
        replay(StandardErrorRule(warmup_per_reset=0), timings)


def synthetic_stream(spread: float, seed: int, reduction: bool = False,
                     resets: int = 300) -> RecordedStream:
    rng = np.random.default_rng(seed)
    level = 5.0 * (1 + spread * rng.standard_normal(resets)).clip(0.2)[:, None]
    timings = level * (1 + 0.03 * rng.standard_normal((resets, 10))).clip(0.5)
    return RecordedStream(tiny_context(reduction), timings, np.zeros((resets, 14), dtype=int),
                          np.zeros(resets), warmup=1, tags={"spread": spread})


def test_compare_rules_reports_errors_against_both_references():
    streams = [synthetic_stream(0.3, 0), synthetic_stream(0.0, 1, reduction=True)]
    rules = {"lenna": LennaRule(), "se": StandardErrorRule(target_rel_error=0.02)}
    table = compare_rules(streams, rules, replicates=20, seed=0)
    assert len(table) == 4 and set(table["rule"]) == {"lenna", "se"}
    assert list(table["block_type"]) == ["normal", "normal", "reduction", "reduction"]
    assert "spread" in table.columns
    lenna = table[table["rule"] == "lenna"].set_index("block")
    assert (lenna["passes_mean"] >= 11 * 11).all()  # never before reset patience + 1
    se = table[table["rule"] == "se"].set_index("block")
    assert se.loc[1, "passes_mean"] == 8 * 4  # no gate spread: stops at min_resets
    assert se.loc[0, "err_p90"] < 0.05  # 1.645 x 2% plus a margin
    raw = compare_rules(streams, rules, replicates=20, seed=0, per_replicate=True)
    assert len(raw) == 80
    assert summarise_replays(raw).equals(table)
    again = compare_rules(streams, rules, replicates=20, seed=0)
    assert again.equals(table)
    perm = compare_rules(streams, rules, replicates=5, seed=0, resample="permutation",
                         per_replicate=True)
    assert (perm["resets"] <= 300).all()


def test_contiguous_replays_read_resets_in_recorded_order():
    stream = synthetic_stream(0.3, 2, resets=50)
    rule = LennaRule(patience=3)
    raw = compare_rules([stream], {"lenna": rule}, replicates=10, seed=1,
                        resample="contiguous", per_replicate=True)
    values = rule.reset_values(stream.timings_ms)
    expected = set()
    for start in range(50):
        result = replay(rule, stream.timings_ms, (start + np.arange(50)) % 50)
        expected.add(round(result.estimate_ms, 9))
    assert set(raw["estimate_ms"].round(9)) <= expected
    assert (raw["resets"] <= 50).all() and values.size == 50


def test_variance_components_and_the_best_number_of_timings():
    rng = np.random.default_rng(0)
    between = 1 + 0.2 * rng.standard_normal((4000, 1))
    timings = 10 * between * (1 + 0.1 * rng.standard_normal((4000, 10)))
    stream = RecordedStream(tiny_context(), timings, np.zeros((4000, 14), dtype=int),
                            np.zeros(4000), warmup=1)
    within, between_var = stream.variance_components()
    assert within == pytest.approx(0.1**2, rel=0.1)
    assert between_var == pytest.approx(0.2**2, rel=0.1)
    # sqrt(4 passes x 0.01 / 0.04) = 1 timing per reset
    assert stream.optimal_timings_per_reset(4.0) == pytest.approx(1.0, rel=0.1)
    with pytest.raises(ValueError, match="fixed_cost_passes"):
        stream.optimal_timings_per_reset(0)


def test_cheapest_matching_respects_every_error_column():
    pooled = pd.DataFrame({
        "rule": ["lenna", "a", "b", "c"], "passes_mean": [500.0, 50.0, 100.0, 200.0],
        "err_p90": [0.06, 0.05, 0.05, 0.04], "err_common_p90": [0.07, 0.09, 0.06, 0.05]})
    best = cheapest_matching(pooled, "lenna", ["a", "b", "c"])
    assert best.name == "b"  # "a" is cheaper but worse against the common reference
    assert cheapest_matching(pooled, "lenna", ["a"]) is None
    assert cheapest_matching(pooled, "lenna", ["a"], error_columns=["err_p90"]).name == "a"
    with pytest.raises(ValueError, match="not in the table"):
        cheapest_matching(pooled, "lenna", ["z"])


# ----------------------------------------------------------------- live labelling


def test_label_block_with_one_hot_probabilities_always_samples_the_same_cell():
    generator = torch.Generator().manual_seed(0)
    probs = probabilities_with_temperature(DARTS_SPACE, 0.0, generator)
    rule = StandardErrorRule(target_rel_error=0.2, timings_per_reset=2, min_resets=3,
                             max_resets=6)
    result = label_block(tiny_context(), probs, rule, generator=generator)
    assert 3 <= result.resets <= 6
    assert len(set(result.active)) == 1
    assert result.active[0] == tuple(probs.argmax(dim=1).tolist())
    assert math.isfinite(result.label_ms) and result.label_ms > 0
    assert result.forward_passes == result.resets * 3
    assert len(result.values_ms) == len(result.timings_ms) == result.resets
    assert all(len(t) == 2 for t in result.timings_ms)
    assert result.label_ms == pytest.approx(np.mean(result.values_ms))


def test_record_stream_shapes_and_replay_of_the_recording():
    generator = torch.Generator().manual_seed(1)
    probs = probabilities_with_temperature(DARTS_SPACE, 1.0, generator)
    stream = record_stream(tiny_context(True), probs, 4, 3, generator=generator,
                           tags={"temperature": 1.0})
    assert stream.timings_ms.shape == (4, 3) and stream.active.shape == (4, 14)
    assert stream.resets == 4 and stream.block_type == "reduction"
    assert (stream.timings_ms > 0).all() and (stream.seconds > 0).all()
    assert 1 <= stream.distinct_cells() <= 4
    result = replay(StandardErrorRule(timings_per_reset=3, min_resets=2, max_resets=4),
                    stream.timings_ms)
    assert 2 <= result.resets <= 4


# ----------------------------------------------------------------------- alphas


def test_temperature_spans_uniform_to_one_hot():
    generator = torch.Generator().manual_seed(0)
    entropies = [mean_entropy(probabilities_with_temperature(DARTS_SPACE, t, generator))
                 for t in (math.inf, 10.0, 1.0, 0.1, 0.0)]
    assert entropies[0] == pytest.approx(1.0) and entropies[-1] == 0.0
    assert all(a > b for a, b in zip(entropies, entropies[1:]))
    probs = probabilities_with_temperature(DARTS_SPACE, 0.5, generator)
    DARTS_SPACE.check_probabilities(probs)


# ----------------------------------------------------------------------- errors


@pytest.mark.parametrize("make, name", [
    (lambda: LennaRule(quantile=1.5), "quantile"),
    (lambda: LennaRule(timings_per_reset=0), "timings_per_reset"),
    (lambda: LennaRule(tolerance=0.0), "tolerance"),
    (lambda: LennaRule(patience=0), "patience"),
    (lambda: LennaRule(max_resets=1), "max_resets"),
    (lambda: LennaRule(warmup_per_reset=-1), "warmup_per_reset"),
    (lambda: StandardErrorRule(target_rel_error=0.0), "target_rel_error"),
    (lambda: StandardErrorRule(timings_per_reset=-3), "timings_per_reset"),
    (lambda: StandardErrorRule(min_resets=1), "min_resets"),
    (lambda: StandardErrorRule(min_resets=10, max_resets=5), "max_resets"),
    (lambda: StandardErrorRule(statistic="mode"), "statistic"),
    (lambda: StandardErrorRule(timings_per_reset=2.5), "timings_per_reset"),
    (lambda: probabilities_with_temperature(DARTS_SPACE, -1.0), "temperature"),
    (lambda: record_stream(tiny_context(), torch.full((14, 8), 1 / 8), 0, 3), "resets"),
    (lambda: record_stream(tiny_context(), torch.full((14, 8), 1 / 8), 5, 0),
     "timings_per_reset"),
    (lambda: compare_rules([synthetic_stream(0.1, 0)], [LennaRule()], replicates=0),
     "replicates"),
    (lambda: compare_rules([synthetic_stream(0.1, 0)], [LennaRule()], resample="jackknife"),
     "resample"),
    (lambda: LennaRule().stopping_point([1.0, -2.0]), "positive"),
    (lambda: label_block(tiny_context(), torch.ones(14, 8), LennaRule()), "sum to 1"),
])
def test_bad_arguments_raise_value_errors_that_name_them(make, name):
    with pytest.raises(ValueError, match=name):
        make()


def test_control_variate_keeps_the_mean_and_removes_what_the_control_explains():
    rng = np.random.default_rng(0)
    estimates, plain = [], []
    for _ in range(400):
        drawn = rng.choice([1.0, 3.0, 6.0], size=30, p=[0.5, 0.3, 0.2])  # which op was drawn
        values = drawn * (1 + 0.05 * rng.standard_normal(30))  # timing noise on top
        estimate, adjusted = control_variate_mean(values, drawn, control_mean=2.6)
        estimates.append(estimate)
        plain.append(values.mean())
        assert adjusted.mean() == pytest.approx(estimate)
    assert np.mean(estimates) == pytest.approx(2.6, rel=0.003)  # unbiased: E[values] = 2.6
    assert np.std(estimates) < np.std(plain) / 8


def test_control_variate_leaves_values_alone_without_variation_to_use():
    values = np.array([1.0, 1.2, 0.9, 1.1])
    assert control_variate_mean(values, [2.0] * 4, 2.0)[0] == pytest.approx(values.mean())
    assert control_variate_mean(values[:2], [1.0, 2.0], 1.5)[0] == pytest.approx(1.1)
    with pytest.raises(ValueError, match="controls"):
        control_variate_mean(values, [1.0, 2.0], 1.5)
    with pytest.raises(ValueError, match="control_mean"):
        control_variate_mean(values, values, float("nan"))


def test_adjusted_values_below_zero_are_judged_by_their_mean():
    # A control-variate adjustment can push one reset below zero; the rule takes the values.
    rule = StandardErrorRule(target_rel_error=0.5, min_resets=3, max_resets=50)
    assert rule.stopping_point([1.0, 1.2, -0.1, 1.1]) == 4
    # A running mean at or below zero is no estimate yet: its "relative error" is negative,
    # which must not count as converged.
    assert StandardErrorRule(target_rel_error=0.5, min_resets=2,
                             max_resets=50).stopping_point([-3.0, -3.1, 10.0, 10.0]) is None
    assert np.isinf(rule.relative_standard_errors([-3.0, -3.1, 10.0])[1])
