"""The results page's tables (chapter 6): this book's predictors beside the field's anchors."""

from __future__ import annotations

import pandas as pd

#: Published latency predictors: (predictor, what it predicts, what it reports).
ANCHORS = (
    ("nn-Meter (MobiSys 2021)", "models on a mobile CPU", "99.0% within ±10%"),
    ("LitePred (NSDI 2024)", "models, 85 edge platforms", "99.3% within ±10% (mean)"),
    ("HELP (NeurIPS 2021)", "models, new device, 10 samples", "Spearman 0.93"),
    ("LA-DNAS (arXiv 2001.06392)", "architectures on a Tesla P100", "relative error < 10%"),
    ("LENNA (2020), LightGBM", "blocks on an RTX 2060 SUPER", "RMSE ~19.9 ms on ~188 ms blocks"),
)
OURS = ("MLP", "MLP on lookup table")
WHAT = "expected block latency on this CPU"


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
