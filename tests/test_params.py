"""Named parameter sets and the book command: sets name real parameters, and a failing
chapter stops the build naming the chapter, the cell and the parameter, deleting nothing."""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
BOOK = ROOT / "book"
spec = importlib.util.spec_from_file_location("build_book", ROOT / "scripts" / "build_book.py")
build_book = importlib.util.module_from_spec(spec)
spec.loader.exec_module(build_book)


def defaults(source: Path) -> dict:
    """The literal values of a chapter's parameters cell."""
    cell = source.read_text().split('# %% tags=["parameters"]', 1)[1].split("\n# %%", 1)[0]
    return {node.targets[0].id: ast.literal_eval(node.value)
            for node in ast.parse(cell).body if isinstance(node, ast.Assign)}


@pytest.mark.parametrize("path", sorted((BOOK / "params").glob("*.yaml")), ids=lambda p: p.stem)
def test_parameter_sets_name_existing_chapters_and_parameters(path):
    sets = yaml.safe_load(path.read_text())
    for stem, params in sets.items():
        source = BOOK / f"{stem}.py"
        assert source.exists(), f"{path.name}: no chapter {stem}"
        unknown = set(params) - build_book.chapter_parameters(source)
        assert not unknown, f"{path.name}: {stem} has no parameters {unknown}"


def test_cpu_quick_is_the_embedded_defaults():
    sets = yaml.safe_load((BOOK / "params" / "cpu-quick.yaml").read_text())
    for stem, params in sets.items():
        embedded = defaults(BOOK / f"{stem}.py")
        assert {k: embedded[k] for k in params} == params


def test_every_chapter_has_a_parameters_cell_the_builder_reads():
    for source in sorted(BOOK.glob("[0-9][0-9]_*.py")):
        assert build_book.chapter_parameters(source) == set(defaults(source)), source.name


def test_failing_chapter_names_chapter_cell_and_parameter(tmp_path):
    notebook = BOOK / "00_search_space.ipynb"
    before = notebook.read_bytes()
    figures = {p: p.stat().st_mtime_ns for p in (ROOT / "figures").glob("*.png")}
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "build_book.py"), "--only", "00",
         "-p", "search_C", "0"], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert result.returncode != 0
    message = result.stderr + result.stdout
    assert "chapter 00_search_space failed in cell" in message
    assert "ValueError: C=0: must be a positive integer" in message
    assert "parameters given: search_C=0" in message
    assert notebook.read_bytes() == before  # the committed notebook is untouched
    assert {p: p.stat().st_mtime_ns for p in (ROOT / "figures").glob("*.png")} == figures
    assert "rendering HTML" not in message


def test_unknown_parameter_is_refused_before_anything_runs():
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "build_book.py"), "-p", "lamda", "1"],
        capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert result.returncode != 0
    assert "no chapter run here has a parameter named ['lamda']" in result.stderr
