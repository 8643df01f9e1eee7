"""Every CUDA path of the package, once, in a few minutes: the script to run when a GPU is lent.

    .venv/bin/python benchmarks/gpu_paths.py --out /tmp/gpu_check            # on the GPU machine
    .venv/bin/python benchmarks/gpu_paths.py --device cpu --out /tmp/cpu     # the same, on CPU

It prints, per step, what it measured and how long it took, and goes on after a failing step
(naming it), so one run shows every path that works and every one that does not:

1. the profiler with CUDA events (the DARTS_V2 network, batch 1 and 64);
2. a tiny latency-aware search with the MLP penalty, and training its cells;
3. the reference cell and a LatencyMeter on the device (network and reference ratio);
4. labelling a few blocks on the device (``profile_device``);
5. adapting the reference model to the device from them (``transfer_to_this_device``).
Exit status 1 if a step failed.
"""

from __future__ import annotations

import argparse
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import torch

import lenna_core as lc
from lenna_core.latency.device_profiling import profile_device, transfer_to_this_device
from lenna_core.latency.mlp_model import MLPLatency
from lenna_core.latency.profiler import clock_for, measure_latency, resolve_device
from lenna_core.search.estimators import MLPEstimator, TargetConfig
from lenna_core.search.evaluation import LatencyMeter, train_genotype
from lenna_core.search.loop import LatencyAwareSearch, SearchConfig
from lenna_core.search.penalty import LinearPenalty

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "data" / "mlp_latency"


def profiler(device: str, out: Path) -> str:
    """The DARTS_V2 target network timed by the device's pass clock."""
    net = lc.NetworkCIFAR(16, 10, 8, False, lc.DARTS_V2).eval()
    lines = [f"clock: {type(clock_for(device)).__name__}"]
    for batch in (1, 64):
        result = measure_latency(net, (batch, 3, 32, 32), repeats=30, warmup=10, device=device)
        lines.append(f"batch {batch}: median {result.median:.3f} ms, iqr {result.iqr:.3f} ms")
    return "; ".join(lines)


def search_and_train(device: str, out: Path) -> str:
    """Two epochs of a small search with the MLP penalty, then its cells trained one epoch."""
    config = SearchConfig(C=4, layers=3, epochs=2, steps_per_epoch=4, mode="softmax",
                          device=device, seed=0)
    estimator = MLPEstimator(MLPLatency.load(MODEL, check_device_here=False),
                             TargetConfig(16, 8, 32, 1))
    search = LatencyAwareSearch(config, out / "search", estimator, LinearPenalty(1.0))
    result = search.run(progress=False)
    splits = lc.data.load_dataset("digits", seed=0)
    trained = train_genotype(result.genotype, splits, C=4, layers=3, epochs=1, device=device)
    return (f"genotype {result.genotype.to_json()}; search {result.seconds:.1f} s; "
            f"test accuracy {trained['test_acc']:.1f}% after one epoch")


def meter(device: str, out: Path) -> str:
    """The target network against the reference cell, both timed on the device."""
    latency = LatencyMeter(passes=10, device=device)
    timing = latency.measure(TargetConfig(16, 8, 32, 1).build(lc.DARTS_V2).eval(),
                             [(1, 3, 32, 32)])
    return (f"reference cell {latency.reference_ms:.3f} ms; network {timing['latency_ms']:.3f} "
            f"ms reference-scaled, {timing['raw_ms']:.3f} ms raw")


def labelling(device: str, out: Path) -> str:
    """A few blocks labelled on the device with the reference labeller."""
    frame, seconds = profile_device(out / "label" / "blocks.csv", blocks=8, budget_s=240,
                                    seed=1, device=device)
    return (f"{len(frame)} blocks in {seconds:.1f} s; latency "
            f"{frame['latency_ms'].min():.3f}-{frame['latency_ms'].max():.3f} ms")


def transfer(device: str, out: Path) -> str:
    """The reference (CPU) model adapted to the device from blocks labelled there."""
    adapted = transfer_to_this_device(MODEL, out / "transfer", blocks=20, budget_s=240,
                                      device=device)
    scores = {r["method"]: round(r["cv_mape_pct"], 1)
              for r in adapted.provenance["cross_validation"]}
    return f"chose {adapted.method}; cross-validated MAPE (%) {scores}"


STEPS: dict[str, Callable[[str, Path], str]] = {
    "profiler (CUDA events)": profiler, "search and training": search_and_train,
    "reference cell and meter": meter, "labelling blocks": labelling,
    "transfer CPU -> device": transfer,
}


def main() -> int:
    """Run every step on ``--device``; print what each measured or why it failed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu")
    parser.add_argument("--out", type=Path, required=True, help="a new folder for the outputs")
    args = parser.parse_args()
    try:
        resolve_device(args.device, "--device")
    except ValueError as err:
        print(f"nothing checked: {err}")
        return 1
    if args.device.startswith("cuda"):
        print("device:", torch.cuda.get_device_name(torch.device(args.device)))
    args.out.mkdir(parents=True, exist_ok=True)
    failed = []
    for name, step in STEPS.items():
        started = time.perf_counter()
        try:
            print(f"[ok]     {name}: {step(args.device, args.out)} "
                  f"({time.perf_counter() - started:.1f} s)", flush=True)
        except Exception:  # report every path, then the next one
            failed.append(name)
            print(f"[FAILED] {name} after {time.perf_counter() - started:.1f} s:\n"
                  f"{traceback.format_exc()}", flush=True)
    print(f"{len(STEPS) - len(failed)} of {len(STEPS)} steps passed" +
          (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
