"""Compare what a chapter wrote in a scratch copy (scripts/nbval.sh) with the committed files.

    python scripts/check_reproduction.py SCRATCH_DIR

Chapter 4's metric tables and chapter 6's derived genotypes and accuracies depend on the
CPU's float kernels, not only on the seeds: nbval compares only what holds on every CPU, and
this script compares the rest bit for bit when this CPU is of the kind that computed the
committed files (``lenna_core.latency.device_identity.same_float_kernels``). Exits 1 on a
difference.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd

from lenna_core.latency.device_identity import same_float_kernels

ROOT = Path(__file__).resolve().parent.parent
METRICS = ("predictor_metrics.csv", "predictor_metrics_truth.csv", "predictor_metrics_precise.csv")


def differences(committed: Path, written: Path, columns: list[str] | None = None) -> list[str]:
    """Cells of ``columns`` (default: all) where the two CSV files differ, as text."""
    a, b = pd.read_csv(committed), pd.read_csv(written)
    if columns:
        a, b = a[columns], b[columns]
    if a.shape != b.shape or list(a.columns) != list(b.columns):
        return [f"shape {a.shape} -> {b.shape}"]
    diff = a.compare(b)
    return [diff.to_string()] if not diff.empty else []


def main() -> int:
    """Check every committed result file the chapter rewrote in the scratch copy."""
    scratch = Path(sys.argv[1])
    checks = []
    model_meta = json.loads((ROOT / "data" / "mlp_latency.json").read_text())
    for name in METRICS:
        checks.append((name, model_meta["fitted_on"], None))
    results = pd.read_csv(ROOT / "data" / "search_results.csv")
    checks.append(("search_results.csv", results.iloc[0].to_dict(),
                   ["run_id", "genotype", "test_acc"]))
    failed = False
    for name, machine, columns in checks:
        committed, written = ROOT / "data" / name, scratch / "data" / name
        if written.read_bytes() == committed.read_bytes():
            continue  # not rewritten by this chapter (or rewritten identically)
        if not same_float_kernels(machine):
            print(f"{name}: rewritten; not compared bit for bit (computed on "
                  f"{machine.get('device_name')}, torch {machine.get('torch')}; this CPU "
                  "takes other float kernels)")
            continue
        found = differences(committed, written, columns)
        if found:
            failed = True
            print(f"{name}: differs from the committed file on a CPU of the same kind:\n"
                  + "\n".join(found))
        else:
            print(f"{name}: reproduced")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
