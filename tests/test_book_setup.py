"""The chapters' common set-up records what their numbers depend on, and the CPU code path
that scripts/cpu_isa.sh pins is the one torch runs on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lenna_core.book.chapter import setup_book

ROOT = Path(__file__).resolve().parent.parent
PIN = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS")


def setup_record_after_sourcing_pin(**env: str) -> dict:
    """setup_book's record in a fresh Python started from a shell that sourced cpu_isa.sh."""
    clean = {k: v for k, v in os.environ.items() if k not in PIN} | env
    probe = ("import json, os, tempfile; from lenna_core.book.chapter import setup_book; "
             "run = setup_book(0, figures_dir=tempfile.mkdtemp()); "
             f"print(json.dumps([run['cpu_capability'], [os.environ.get(k) for k in {PIN!r}]]))")
    out = subprocess.run(["bash", "-c", f'source scripts/cpu_isa.sh && "{sys.executable}" -c '
                          f'"{probe}"'], cwd=ROOT, env=clean, capture_output=True, text=True,
                         timeout=120, check=True).stdout
    capability, values = json.loads(out.strip().splitlines()[-1])
    return {"capability": capability, "env": dict(zip(PIN, values))}


def test_sourced_pin_puts_torch_on_the_avx2_path():
    record = setup_record_after_sourcing_pin()
    assert record["env"] == {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2",
                             "MKL_ENABLE_INSTRUCTIONS": "AVX2"}
    assert record["capability"] == "AVX2"


def test_native_switch_leaves_the_cpu_its_own_kernels():
    record = setup_record_after_sourcing_pin(LENNA_NATIVE_ISA="1")
    assert record["env"] == dict.fromkeys(PIN)


def test_setup_records_seed_and_threads(tmp_path):
    run = setup_book(3, figures_dir=tmp_path / "figs")
    assert run["seed"] == 3 and run["torch_threads"] == 1
    assert (tmp_path / "figs").is_dir()


def test_setup_refuses_a_bad_seed_or_thread_count(tmp_path):
    with pytest.raises(ValueError, match="seed=-1"):
        setup_book(-1, figures_dir=tmp_path)
    with pytest.raises(ValueError, match="threads=0"):
        setup_book(0, threads=0, figures_dir=tmp_path)


def test_the_book_reports_devices_itself_not_as_warnings(tmp_path):
    import warnings

    from lenna_core.latency.device_identity import DeviceMismatchWarning

    setup_book(0, figures_dir=tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.warn("from another device", DeviceMismatchWarning, stacklevel=1)
    assert caught == []
