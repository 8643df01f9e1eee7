"""Chapter 7's anchors table: the published predictors, then each MLP scored three ways."""

from __future__ import annotations

import pandas as pd

from lenna_core.book.results_page import ANCHORS, anchors_table


def test_anchors_table_scores_each_mlp_three_ways():
    scores = {"within_10_pct": [97.66, 80.0], "mape_pct": [3.21, 9.0],
              "kendall_tau": [0.9512, 0.8]}
    ours = pd.DataFrame(scores, index=pd.Index(["MLP on lookup table", "ElasticNet"],
                                               name="model"))
    truth = pd.DataFrame({k: [v[0], v[0] + 1] for k, v in scores.items()},
                         index=pd.MultiIndex.from_tuples([("MLP on lookup table", "one"),
                                                          ("MLP on lookup table", "SIMEX")],
                                                         names=["model", "labels"]))
    table = anchors_table(ours, truth, ours)
    assert len(table) == len(ANCHORS) + 3  # ElasticNet and the absent plain MLP add none
    assert table.iloc[len(ANCHORS)]["reported"] == \
        "97.7% within ±10%, MAPE 3.21%, Kendall tau 0.951"
    simex = table.iloc[len(ANCHORS) + 1]
    assert simex["predictor"].endswith("against error-free labels (SIMEX)")
    assert simex["reported"] == "98.7% within ±10%, MAPE 4.21%, Kendall tau 1.951 (estimated)"


def test_conclusions_answer_both_questions_with_intervals():
    from test_sweep import fake_results

    from lenna_core.book.results_page import conclusions
    from lenna_core.search.sweep import summarise_sweep

    results = fake_results()
    precise = pd.DataFrame({"within_10_pct": [97.7]}, index=["MLP on lookup table"])
    text = conclusions(results, summarise_sweep(results), precise, tolerance=1.0)
    first, second = text.splitlines()
    assert first.startswith("1. **Faster cells at little accuracy cost?** Yes")
    assert "mlp at lambda 1: latency -32.3 ±" in first and "accuracy -0.50 ± 0.00" in first
    assert "came from the mlp penalty (mlp: 97.7% of held-out blocks" in second
    strict = conclusions(results, summarise_sweep(results), precise, tolerance=0.1)
    assert "No setting kept the mean accuracy within 0.1 point" in strict


def test_all_conclusions_number_the_four_answers_in_order():
    from test_sweep import fake_results

    from lenna_core.book.results_page import all_conclusions
    from lenna_core.search.sweep import summarise_sweep

    results = fake_results()
    precise = pd.DataFrame({"within_10_pct": [97.7]}, index=["MLP on lookup table"])
    lines = all_conclusions(results, summarise_sweep(results), precise).splitlines()
    assert [line[:3] for line in lines] == ["1. ", "2. ", "3. ", "4. "]
    assert "Not answered by these results" in lines[3]  # fake_results has no ONNX Runtime


def test_fit_conclusion_scores_both_models_against_the_bar():
    from test_sweep import fake_results

    from lenna_core.book.results_page import fit_conclusion

    results = fake_results().assign(
        crossfit_ms_mlp=lambda t: t["measured_ms"] * 1.08,
        predicted_ms_adapted=lambda t: t["measured_ms"] * 1.03,
        crossfit_ms_adapted=lambda t: t["measured_ms"] * 0.98)
    text = fit_conclusion(results)
    assert "the reference device's MLP: 8.0% median, 8.0% at worst through the cross-fit" in text
    assert "adapted to that machine (chapter 5): 2.0% median, 2.0% at worst" in text
    assert "(3.0% and 3.0% raw)" in text and "Over the 9 derived networks" in text
    assert text.endswith("at worst: the MLP adapted to that machine (chapter 5).")
    alone = fit_conclusion(results.drop(columns=[c for c in results if c.endswith("adapted")]))
    assert "adapted to that machine (chapter 5): not run" in alone
    assert alone.endswith("at worst: neither.")
