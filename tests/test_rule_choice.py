"""Chapter 2's verdict: the chosen rule says which criterion it met, never silently less."""

from __future__ import annotations

import pandas as pd
import pytest

from lenna_core.rule_choice import UNMATCHED, choose_rule


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
