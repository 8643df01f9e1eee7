"""The book command's working copy: what it copies, refreshes and refuses."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("build_book", ROOT / "scripts" / "build_book.py")
build_book = importlib.util.module_from_spec(spec)
spec.loader.exec_module(build_book)


@pytest.fixture
def repo(tmp_path, monkeypatch):
    """A tiny repository: one chapter, one data file, one figure; the builder pointed at it."""
    (tmp_path / "book").mkdir()
    (tmp_path / "book" / "00_a.py").write_text("# %%\nx = 1\n")
    (tmp_path / "book" / "00_a.ipynb").write_text("{}")
    for name in ("data", "figures", "benchmarks"):
        (tmp_path / name).mkdir()
    (tmp_path / "data" / "model.json").write_text("committed")
    (tmp_path / "figures" / "00_a.png").write_bytes(b"committed")
    for name in build_book.RENDERED:
        (tmp_path / name).write_text("")
    monkeypatch.setattr(build_book, "ROOT", tmp_path)
    monkeypatch.setattr(build_book, "BOOK", tmp_path / "book")
    return tmp_path


def test_unknown_chapter_number_is_refused(repo):
    with pytest.raises(SystemExit, match="no chapter numbered '99'; the chapters are 00"):
        build_book.chosen_chapters(["99"], None)
    with pytest.raises(SystemExit, match="no chapter numbered '7'"):
        build_book.chosen_chapters([], "7")
    assert [p.name for p in build_book.chosen_chapters(["0"], None)] == ["00_a.py"]


def test_partial_build_keeps_the_last_outputs_but_takes_newer_committed_files(repo):
    work = repo / "_build" / "run"
    build_book.prepare_work(work, fresh=True)
    (work / "data" / "model.json").write_text("built here")
    (work / "figures" / "00_a.png").write_bytes(b"built here")
    # A pull brings a newer committed figure; the model was not touched in the repository.
    later = (work / "figures" / "00_a.png").stat().st_mtime + 10
    os.utime(repo / "figures" / "00_a.png", (later, later))
    build_book.prepare_work(work, fresh=False)
    assert (work / "data" / "model.json").read_text() == "built here"
    assert (work / "figures" / "00_a.png").read_bytes() == b"committed"
    build_book.prepare_work(work, fresh=True)
    assert (work / "data" / "model.json").read_text() == "committed"
    assert (repo / "data" / "model.json").read_text() == "committed"


def test_refresh_copies_what_the_build_wrote_without_run_timings(repo):
    work = repo / "_build" / "run"
    build_book.prepare_work(work, fresh=True)
    started = (work / "data" / "model.json").stat().st_mtime + 1
    executed = {"metadata": {"papermill": {"duration": 3.0}, "kernelspec": {"name": "python3"}},
                "cells": [{"cell_type": "code", "source": "x = 1", "outputs": [],
                           "metadata": {"tags": ["parameters"], "execution": {"a": 1},
                                        "papermill": {"duration": 0.1}}}]}
    (work / "book" / "00_a.ipynb").write_text(json.dumps(executed))
    (work / "figures" / "00_a.png").write_bytes(b"new figure")
    os.utime(work / "figures" / "00_a.png", (started + 1, started + 1))
    written = build_book.refresh_reference(work, [work / "book" / "00_a.py"], started)
    assert sorted(p.relative_to(repo).as_posix() for p in written) == [
        "book/00_a.ipynb", "figures/00_a.png"]  # data/model.json predates the build
    notebook = json.loads((repo / "book" / "00_a.ipynb").read_text())
    assert notebook["metadata"] == {"kernelspec": {"name": "python3"}}
    assert notebook["cells"][0]["metadata"] == {"tags": ["parameters"]}
    assert (repo / "figures" / "00_a.png").read_bytes() == b"new figure"


def test_refresh_reference_refuses_parameters(repo):
    with pytest.raises(SystemExit, match="--refresh-reference records the embedded defaults"):
        build_book.main(["--refresh-reference", "-p", "x", "2"])
