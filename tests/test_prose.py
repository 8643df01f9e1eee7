"""A chapter's prose types no number that a run can change: measured figures are printed from
the chapter's own variables. What markdown may still state is listed here, with the reason:
a quote from a paper, a setting the chapter fixes, or a property the unit tests check.
"""

from __future__ import annotations

import re
from pathlib import Path

import jupytext
import pytest

BOOK = Path(__file__).resolve().parent.parent / "book"
CHAPTERS = sorted(BOOK.glob("[0-9][0-9]_*.py"))

# A number with a unit a measurement has (%, a multiplier, ms, seconds), or a decimal with two
# or more places (a Kendall tau, a ratio); not a chapter's number, an arXiv id or a version.
MEASURED = re.compile(r"(?<![\w.`:-])(?<!chapter )(?<!chapters )"
                      r"(\d+(?:\.\d+)?(?:-\d+(?:\.\d+)?)?\s*(?:%|x\b|ms\b|s\b|times\b)"
                      r"|\d+\.\d{2,})")
# Names of metrics, not results: "within ±10%" and "5-95% band".
METRIC_NAMES = re.compile(r"±\s*\d+%|\d+-\d+% (?:bootstrap )?band")

ALLOWED = {
    "01": {"99.8%": "quoted: LENNA's additivity check on a GPU",
           "0.998": "quoted: the same, as a ratio"},
    "02": {"40%": "LENNA's rule as published: the 40% quantile per reset",
           "1%": "LENNA's rule as published: the 1% tolerance",
           "2%": "a setting: the standard-error rules the chapter starts with",
           "4%": "a setting: the reference labeller's standard-error target"},
    "03": {"4%": "a setting: the reference labeller's standard-error target",
           "1%": "a setting: the precise labels' standard-error target"},
    "04": {"1%": "a setting: the precise labels' standard-error target",
           "4%": "a setting: the reference labeller's standard-error target",
           "0.02": "a property tests/test_label_noise.py checks",
           "99%": "quoted: nn-Meter's published accuracy"},
    "07": {"1%": "a setting: the precise labels' standard-error target",
           "95%": "a setting: the confidence of the conclusions' intervals"},
}


def typed_numbers(source: Path) -> list[tuple[int, str, str]]:
    """(cell, number, sentence) for every measured-looking number in ``source``'s markdown,
    outside code, math, links and tables (the parameter tables state ranges)."""
    found = []
    for index, cell in enumerate(jupytext.read(source).cells):
        if cell.cell_type != "markdown":
            continue
        text = "\n".join(line for line in cell.source.splitlines()
                         if not line.lstrip().startswith("|"))
        text = re.sub(r"```.*?```|`[^`]*`|\$\$.*?\$\$|\$[^$]*\$|\]\([^)]*\)", " ", text,
                      flags=re.S)
        text = METRIC_NAMES.sub(" ", text)
        for sentence in re.split(r"(?<=[.!?])\s+|\n\s*[-*] ", text):
            for match in MEASURED.finditer(sentence):
                found.append((index, match.group(0).strip(), " ".join(sentence.split())))
    return found


@pytest.mark.parametrize("source", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_prose_types_no_measured_number(source: Path):
    allowed = ALLOWED.get(source.stem[:2], {})
    typed = [f"cell {cell}: {number!r} in {sentence[:120]!r}"
             for cell, number, sentence in typed_numbers(source)
             if re.sub(r"\s*(times|x)$", "", number) not in allowed and number not in allowed]
    assert not typed, (f"{source.name} types numbers a run can change; print them from the "
                       "chapter's variables (or list a quote or a setting in ALLOWED):\n"
                       + "\n".join(typed))


def test_the_check_finds_a_typed_measurement(tmp_path):
    chapter = tmp_path / "09_demo.py"
    chapter.write_text("# %% [markdown]\n# The MLP reaches 97.7% within ±10% and tau 0.905,"
                       " 1.2x the floor; see `0.5 ms` and chapter 5 times.\n")
    assert [number for _, number, _ in typed_numbers(chapter)] == ["97.7%", "0.905", "1.2x"]
