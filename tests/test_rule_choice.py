"""Chapter 2's verdict: the chosen rule says which criterion it met, never silently less."""

from __future__ import annotations

import pandas as pd
import pytest

from lenna_core.latency.rule_choice import UNMATCHED, choose_rule


def _pooled(rows):
    return pd.DataFrame(rows, columns=["rule", "passes_mean", "err_p90", "err_common_p90"])


LENNA = ("LENNA", 300.0, 0.02, 0.03)


def test_the_cheapest_rule_matched_on_both_references_wins():
    pooled = _pooled([LENNA, ("a", 50.0, 0.019, 0.05),   # cheaper, but worse on the common one
                      ("b", 80.0, 0.018, 0.029), ("c", 120.0, 0.01, 0.01)])
    choice = choose_rule(pooled, "LENNA", ["a", "b", "c"])
    assert (choice.name, choice.matched_on, choice.matched_both) == ("b", "both references", True)
    assert choice.saving == pytest.approx(300 / 80)


def test_falls_back_to_the_own_reference_and_says_so():
    pooled = _pooled([LENNA, ("a", 50.0, 0.019, 0.05), ("b", 40.0, 0.03, 0.01)])
    choice = choose_rule(pooled, "LENNA", ["a", "b"])
    assert (choice.name, choice.matched_on, choice.matched_both) == (
        "a", "its own reference only", False)


def test_without_any_match_the_most_precise_rule_is_named_as_unmatched():
    pooled = _pooled([LENNA, ("a", 50.0, 0.05, 0.05), ("b", 40.0, 0.04, 0.06)])
    choice = choose_rule(pooled, "LENNA", ["a", "b"])
    assert (choice.name, choice.matched_on) == ("b", UNMATCHED)


def test_bad_candidates_are_named():
    pooled = _pooled([LENNA, ("a", 50.0, 0.01, 0.01)])
    with pytest.raises(ValueError, match="candidates is empty"):
        choose_rule(pooled, "LENNA", [])
    with pytest.raises(ValueError, match="zzz"):
        choose_rule(pooled, "LENNA", ["zzz"])


def test_the_sweep_names_its_rules_per_setting():
    from lenna_core.latency.convergence import LennaRule
    from lenna_core.latency.rule_choice import standard_error_sweep
    sweep, by_setting = standard_error_sweep({"LENNA": LennaRule()}, [(1, 0), (3, 1)], [8, 30],
                                             (0.01, 0.1), 3)
    assert list(by_setting) == [(1, 0, 8), (1, 0, 30), (3, 1, 8), (3, 1, 30)]
    assert len(sweep) == 1 + 4 * 3 and all(len(v) == 3 for v in by_setting.values())
    rule = sweep[by_setting[3, 1, 30][-1]]
    assert (rule.timings_per_reset, rule.warmup_per_reset, rule.min_resets) == (3, 1, 30)
    assert rule.target_rel_error == pytest.approx(0.1)


def test_matched_settings_table_has_a_row_per_criterion_and_setting():
    from lenna_core.latency.convergence import LennaRule, StandardErrorRule
    from lenna_core.latency.rule_choice import matched_settings
    a, b = StandardErrorRule(0.02), StandardErrorRule(0.05)
    pooled = _pooled([LENNA, (a.name, 50.0, 0.019, 0.05), (b.name, 20.0, 0.04, 0.01)])
    sweep = {"LENNA": LennaRule(), a.name: a, b.name: b}
    table, matched = matched_settings(pooled.assign(resets_mean=10.0), "LENNA",
                                      {(1, 0, 8): [a.name, b.name]}, sweep)
    assert list(table["matched on"]) == ["own", "own + common"]
    assert matched["own", 1, 0, 8].name == a.name and matched["own + common", 1, 0, 8] is None
    assert table.loc[0, "LENNA / these passes"] == pytest.approx(300 / 50)
    assert table.loc[1, ["target", "passes per label"]].isna().all()
