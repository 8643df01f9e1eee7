"""The committed chapter notebooks are executed, complete, and in sync with their .py sources."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jupytext
import nbformat
import pytest

BOOK = Path(__file__).resolve().parents[1] / "book"
SOURCES = sorted(BOOK.glob("[0-9][0-9]_*.py"))


def test_every_chapter_is_found():
    assert SOURCES, "no chapter sources book/NN_*.py found"


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_notebook_matches_source(source: Path):
    notebook_path = source.with_suffix(".ipynb")
    assert notebook_path.exists(), f"{notebook_path.name} missing: run scripts/build_book.sh"
    executed = nbformat.read(notebook_path, as_version=4)
    text = jupytext.read(source)
    code = [c.source for c in text.cells if c.cell_type == "code"]
    committed = [c.source for c in executed.cells if c.cell_type == "code"
                 and "injected-parameters" not in c.metadata.get("tags", [])]
    assert committed == code, f"{notebook_path.name} is stale: re-run scripts/build_book.sh"


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_notebook_is_executed_with_one_parameters_cell(source: Path):
    executed = nbformat.read(source.with_suffix(".ipynb"), as_version=4)
    code = [c for c in executed.cells if c.cell_type == "code"]
    # nbval skips cells without an execution count, so an unexecuted notebook tests nothing.
    assert all(c.execution_count is not None for c in code), "unexecuted code cells"
    assert not any(o.get("output_type") == "error" for c in code for o in c.outputs)
    tagged = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, "each chapter has exactly one cell tagged 'parameters'"


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_notebook_keeps_its_figures(source: Path):
    # A kernel started with MPLBACKEND=Agg runs plt.show() silently: the chapter still
    # executes, but the notebook and the rendered book lose every figure.
    executed = nbformat.read(source.with_suffix(".ipynb"), as_version=4)
    images = [o for c in executed.cells if c.cell_type == "code" for o in c.outputs
              if "image/png" in o.get("data", {})]
    assert images, f"{source.with_suffix('.ipynb').name} holds no figure output"


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_notebook_cell_tags_match_source(source: Path):
    # nbval reads the tags from the .ipynb: a cell tagged nbval-ignore-output in the .py
    # source only is still compared in CI.
    def tags(cells):
        return [c.metadata.get("tags", []) for c in cells if c.cell_type == "code"
                and "injected-parameters" not in c.metadata.get("tags", [])]

    executed = nbformat.read(source.with_suffix(".ipynb"), as_version=4)
    assert tags(executed.cells) == tags(jupytext.read(source).cells), (
        f"{source.with_suffix('.ipynb').name}: cell tags differ from {source.name}")


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_pair_is_in_sync_as_jupytext_sees_it(source: Path):
    # JupyterLab refuses to open a paired notebook newer than its .py when jupytext finds a
    # difference, and papermill's per-cell timings are one: the book command strips them.
    notebook = source.with_suffix(".ipynb")
    diff = subprocess.run([sys.executable, "-m", "jupytext", "--diff", str(source),
                           str(notebook)], capture_output=True, text=True, check=True)
    assert diff.stdout.strip() == "", f"{notebook.name} differs from {source.name}:\n" \
        f"{diff.stdout[:2000]}"
    cells = json.loads(notebook.read_text())["cells"]
    volatile = {key for cell in cells for key in cell["metadata"]
                if key in ("papermill", "execution", "ExecuteTime")}
    assert not volatile, f"{notebook.name} keeps run timings in its cells: {sorted(volatile)}"


def test_every_committed_figure_is_named_after_its_chapter():
    chapters = {source.name[:3] for source in SOURCES}  # "00_", "01_", ...
    figures = sorted((BOOK.parent / "figures").glob("*.png"))
    assert figures
    stray = [f.name for f in figures if f.name[:3] not in chapters]
    assert not stray, f"figures not named NN_* after the chapter that draws them: {stray}"


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_chapter_code_cells_stay_short(source: Path):
    code = [c for c in jupytext.read(source).cells if c.cell_type == "code"]
    first = next(i for i, c in enumerate(code) if "parameters" in c.metadata.get("tags", []))
    long = [i for i, c in enumerate(code)
            if i not in (first, first + 1) and len(c.source.splitlines()) > 15]
    # The parameters cell and the imports cell after it aside, no code cell is over 15 lines.
    assert not long, (
        f"{source.name}: code cells {long} are over 15 lines; move their logic into lenna_core")
