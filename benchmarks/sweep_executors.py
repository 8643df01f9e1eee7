"""Wall time of one 4-search sweep on a Dask cluster of 1 and of 2 worker processes.

The sweep is plain DARTS and the FLOPs penalty (lambda 1) for seeds 0 and 1 on the digits
task, each run searched, trained and timed (``lenna_core.search.sweep.run_sweep`` with
``executor=distributed.Client(...).get_executor()``). Each cluster is a
``distributed.LocalCluster`` on this machine (one thread per worker, torch with ``--threads``
threads per run), started before the clock; every sweep writes into a fresh folder. Printed:
the seconds to start the cluster, the sweep's wall time, its speed-up over one worker, and
whether the runs found the same genotypes and accuracies as with one worker (they must: every
run is seeded on its own).

    .venv/bin/python benchmarks/sweep_executors.py                  # 1 and 2 workers
    .venv/bin/python benchmarks/sweep_executors.py --workers 1,2,4 --epochs 2
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import pandas as pd

FOUND = ["run_id", "genotype", "test_acc"]


def sweep_once(workers: int, args: argparse.Namespace, folder: Path) -> tuple[float, float,
                                                                              pd.DataFrame]:
    """Seconds to start a cluster of ``workers``, seconds of the sweep on it, its results."""
    from distributed import Client, LocalCluster

    from lenna_core import load_dataset
    from lenna_core.search.estimators import FlopsEstimator, TargetConfig
    from lenna_core.search.evaluation import LatencyMeter
    from lenna_core.search.loop import SearchConfig
    from lenna_core.search.sweep import run_sweep, sweep_points

    target = TargetConfig(C=4, layers=3, image_size=8)
    config = SearchConfig(C=4, layers=3, epochs=args.epochs, batch_size=32,
                          steps_per_epoch=args.steps, mode="softmax", gate_gradient="full")
    points = sweep_points({"flops": [1.0]}, [0, 1])
    started = time.perf_counter()
    with LocalCluster(processes=True, n_workers=workers, threads_per_worker=1,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        client.wait_for_workers(workers)
        ready = time.perf_counter()
        results = run_sweep(points, config, {"flops": FlopsEstimator(target)}, folder,
                            splits=load_dataset("digits"),
                            meter=LatencyMeter(7.0, passes=3, warmup=1), target=target,
                            overhead_ms=0.0, evaluation={"C": 4, "layers": 3, "epochs": 1},
                            progress=False, executor=client.get_executor(),
                            threads=args.threads)
        done = time.perf_counter()
    return ready - started, done - ready, results


def main() -> None:
    """Run the sweep on each cluster size and print the wall times side by side."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", default="1,2",
                        help="cluster sizes to compare, comma-separated (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=2, help="search epochs per run")
    parser.add_argument("--steps", type=int, default=6, help="search steps per epoch")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads of each run (default: %(default)s)")
    args = parser.parse_args()
    sizes = [int(n) for n in args.workers.split(",")]
    rows, first = [], None
    with tempfile.TemporaryDirectory() as scratch:
        for n in sizes:
            start_s, sweep_s, results = sweep_once(n, args, Path(scratch) / f"workers{n}")
            first = results if first is None else first
            same = results[FOUND].equals(first[FOUND])
            rows.append({"dask workers": n, "searches": len(results),
                         "cluster start (s)": round(start_s, 1),
                         "sweep wall time (s)": round(sweep_s, 1),
                         "same results as first": same})
    table = pd.DataFrame(rows)
    table["speed-up"] = (table["sweep wall time (s)"].iloc[0]
                         / table["sweep wall time (s)"]).round(2)
    print(table.to_string(index=False))


if __name__ == "__main__":
    main()
