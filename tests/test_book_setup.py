"""The chapters' common set-up records what their numbers depend on."""

from __future__ import annotations

import os

import pytest

from lenna_core.book import setup_book


def test_setup_records_seed_threads_and_the_cpu_code_path(tmp_path, one_thread):
    run = setup_book(3, figures_dir=tmp_path / "figs")
    assert run["seed"] == 3 and run["torch_threads"] == 1
    assert (tmp_path / "figs").is_dir()
    pinned = os.environ.get("ATEN_CPU_CAPABILITY")
    if pinned:  # scripts/cpu_isa.sh set it: torch must be on that path
        assert run["cpu_capability"].lower() == pinned.lower()
    else:
        assert run["cpu_capability"]


def test_setup_refuses_a_bad_seed_or_thread_count(tmp_path):
    with pytest.raises(ValueError, match="seed=-1"):
        setup_book(-1, figures_dir=tmp_path)
    with pytest.raises(ValueError, match="threads=0"):
        setup_book(0, threads=0, figures_dir=tmp_path)
