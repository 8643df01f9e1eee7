"""The results page (chapter 7): this book's predictors beside the field's anchors, and its
conclusions, answering the introduction's two questions from the committed results."""

from __future__ import annotations

import pandas as pd

from lenna_core.search import runtimes
from lenna_core.search.sweep import (
    best_at_matched_accuracy,
    paired_differences,
    prediction_errors,
)

#: Published latency predictors: (predictor, what it predicts, what it reports).
ANCHORS = (
    ("nn-Meter (MobiSys 2021)", "models on a mobile CPU", "99.0% within ±10%"),
    ("LitePred (NSDI 2024)", "models, 85 edge platforms", "99.3% within ±10% (mean)"),
    ("HELP (NeurIPS 2021)", "models, new device, 10 samples", "Spearman 0.93"),
    ("LA-DNAS (arXiv 2001.06392)", "architectures on a Tesla P100", "relative error < 10%"),
    ("LENNA (2020), LightGBM", "blocks on an RTX 2060 SUPER", "RMSE ~19.9 ms on ~188 ms blocks"),
)
OURS = ("MLP", "MLP on lookup table")
#: The penalty estimators whose block predictors chapter 4 scores, and their rows there.
PREDICTOR_ROWS = {"mlp": "MLP on lookup table", "lookup_table": "lookup table, calibrated"}
WHAT = "expected block latency on this CPU"
#: The bar for predicting whole derived networks on the machine that timed them (%): median
#: and largest absolute error.
NETWORK_BAR = (5.0, 10.0)
#: The predictors of derived networks the third conclusion compares, as it names them.
NETWORK_PREDICTORS = {"mlp": "the reference device's MLP",
                      "adapted": "the MLP adapted to that machine (chapter 5)"}


def _scores(row: pd.Series, suffix: str = "") -> str:
    return (f"{row['within_10_pct']:.1f}% within ±10%, MAPE {row['mape_pct']:.2f}%, "
            f"Kendall tau {row['kendall_tau']:.3f}{suffix}")


def anchors_table(ours: pd.DataFrame, truth: pd.DataFrame, precise: pd.DataFrame
                  ) -> pd.DataFrame:
    """The published anchors, then each of this book's MLPs scored three ways: against the
    held-out labels (``ours``), against error-free labels estimated by SIMEX (the last
    scoring of ``truth``) and against the precise labels (``precise``)."""
    anchors = pd.DataFrame(list(ANCHORS), columns=["predictor", "what is predicted", "reported"])
    for name in [n for n in OURS if n in ours.index]:
        anchors.loc[len(anchors)] = (f"this book, {name}", WHAT, _scores(ours.loc[name]))
        anchors.loc[len(anchors)] = (f"this book, {name}, against error-free labels (SIMEX)",
                                     WHAT, _scores(truth.loc[name].iloc[-1], " (estimated)"))
        anchors.loc[len(anchors)] = (f"this book, {name}, against precise labels", WHAT,
                                     _scores(precise.loc[name]))
    return anchors


def conclusions(results: pd.DataFrame, summary: pd.DataFrame, precise: pd.DataFrame,
                tolerance: float = 1.0) -> str:
    """Markdown answering the introduction's two questions from chapter 6's runs (``results``,
    ``summary``) and chapter 4's scores against precise labels (``precise``); every change
    with its 95% interval over paired seeds. Settings searching for another runtime (ONNX
    Runtime's model) are left to :func:`runtime_conclusion`."""
    summary = summary[~summary["estimator"].isin(runtimes.OTHER_RUNTIME_PENALTIES)]
    matched = best_at_matched_accuracy(summary, tolerance)
    if matched.empty:
        return (f"1. **Faster cells?** No setting kept the mean accuracy within {tolerance:g} "
                "point of plain DARTS in this sweep, so the question stays open here.")
    changes = {row["estimator"]: {"lam": row["lam"],
                                  **paired_differences(results, row["estimator"], row["lam"])}
               for _, row in matched.iterrows()}
    described = "; ".join(
        f"{name} at lambda {d['lam']:g}: latency {d['latency_change_pct']:+.1f} ± "
        f"{d['latency_ci']:.1f}%, accuracy {d['acc_change']:+.2f} ± {d['acc_ci']:.2f} points"
        for name, d in changes.items())
    resolved = any(d["latency_change_pct"] + d["latency_ci"] < 0 for d in changes.values())
    first = (f"1. **Faster cells at little accuracy cost?** "
             f"{'Yes' if resolved else 'Not resolved'} on this sweep, against plain DARTS of "
             f"the same seed (mean of {max(d['seeds'] for d in changes.values())} paired "
             f"seeds, 95% intervals): {described}. A change is resolved when its interval "
             "excludes zero; an accuracy change inside its interval is no loss this sweep can "
             "see.")
    ranked = sorted(changes, key=lambda name: changes[name]["latency_change_pct"])
    scores = [f"{name}: {precise.loc[row, 'within_10_pct']:.1f}% of held-out blocks within "
              f"±10% of precise labels" for name, row in PREDICTOR_ROWS.items()
              if name in changes and row in precise.index]
    best, runner = changes[ranked[0]], changes[ranked[-1]]
    overlap = (best["latency_change_pct"] + best["latency_ci"]
               >= runner["latency_change_pct"] - runner["latency_ci"])
    second = (f"2. **How accurate must the predictor be?** The fastest cells at matched "
              f"accuracy came from the {ranked[0]} penalty"
              + (f" ({'; '.join(scores)})" if scores else "")
              + (". The estimators' latency changes overlap within their intervals: on this "
                 "sweep the penalties cannot be told apart, so a predictor more accurate than "
                 "the simplest one did not decide the search." if overlap else
                 f", and its interval does not reach the {ranked[-1]} penalty's."))
    return "\n".join([first, second])


def fit_conclusion(results: pd.DataFrame, bar: tuple[float, float] = NETWORK_BAR) -> str:
    """Markdown: how closely the reference model and the adapted one predict the derived
    networks on the machine that timed them, raw and through the cross-fit, against ``bar``
    (median and largest absolute error, %)."""
    errors = prediction_errors(results).set_index(["estimator", "prediction"])
    parts, meets = [], []
    for name, label in NETWORK_PREDICTORS.items():
        if (name, "crossfit") not in errors.index:
            parts.append(f"{label}: not run")
            continue
        fit, raw = errors.loc[(name, "crossfit")], errors.loc[(name, "predicted")]
        parts.append(f"{label}: {fit['median_abs_error_pct']:.1f}% median, "
                     f"{fit['max_abs_error_pct']:.1f}% at worst through the cross-fit "
                     f"({raw['median_abs_error_pct']:.1f}% and {raw['max_abs_error_pct']:.1f}% "
                     "raw)")
        if fit["median_abs_error_pct"] <= bar[0] and fit["max_abs_error_pct"] <= bar[1]:
            meets.append(label)
    networks = int(errors["networks"].iloc[0])
    verdict = (f"Within the bar of {bar[0]:g}% median and {bar[1]:g}% at worst: "
               + (", ".join(meets) if meets else "neither") + ".")
    return (f"3. **Does the latency model fit the machine that timed the networks?** Over the "
            f"{networks} derived networks, {'; '.join(parts)}. {verdict}")


def runtime_conclusion(results: pd.DataFrame, tolerance: float = 1.0,
                       bar_pct: float = 30.0) -> str:
    """Markdown: does each runtime's own search find faster cells there (against ``bar_pct``
    percent), and does its gain hold in the other runtime? Says plainly when chapter 6's
    results were not timed in ONNX Runtime."""
    question = "4. **Does a search's gain carry across runtimes?** "
    missing = [r for r in runtimes.RUNTIMES if r not in runtimes.timed_runtimes(results)]
    if missing:
        return (question + "Not answered by these results: chapter 6 timed its networks in "
                f"{runtimes.TORCH.label} only (no {missing[0].column} column); run it with "
                "the ONNX Runtime model (`onnxruntime_mlp_path`) to answer it.")
    return question + " ".join(runtimes.findings(results, tolerance, bar_pct))


def all_conclusions(results: pd.DataFrame, summary: pd.DataFrame, precise: pd.DataFrame,
                    tolerance: float = 1.0, bar_pct: float = 30.0) -> str:
    """Chapter 7's four answers as one Markdown list: :func:`conclusions`' two, then
    :func:`fit_conclusion` and :func:`runtime_conclusion`."""
    return "\n".join([conclusions(results, summary, precise, tolerance),
                      fit_conclusion(results),
                      runtime_conclusion(results, tolerance, bar_pct)])
