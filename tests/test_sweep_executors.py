"""Sweeps on other executors: a dask.distributed cluster of two worker processes and submitit's
local executor find what the local pool finds, into the same resumable results.csv."""

from __future__ import annotations

import threading

import pandas as pd
import pytest
import submitit
from distributed import Client, LocalCluster, get_task_stream
from test_sweep import tiny_sweep

from lenna_core.search.executors import finished_runs
from lenna_core.search.sweep import run_sweep, sweep_points

# What a run finds, whatever the machine's speed: its timings are left out.
FOUND = ["run_id", "estimator", "lam", "seed", "genotype", "test_acc", "final_train_loss",
         "search_predicted"]


@pytest.fixture(scope="module")
def pooled(tmp_path_factory) -> tuple[list, pd.DataFrame]:
    """Two runs of the tiny sweep in the default local pool of two processes."""
    config, estimators, kwargs = tiny_sweep()
    points = sweep_points({"flops": [3.0]}, [0])
    folder = tmp_path_factory.mktemp("pooled")
    return points, run_sweep(points, config, estimators, folder, workers=2, **kwargs)


def found(results: pd.DataFrame) -> pd.DataFrame:
    """The columns of a results table that do not depend on timings (op counts sorted: the
    run that finishes first puts its ops first; plain DARTS predicts nothing: None in a fresh
    table, NaN read back from results.csv)."""
    ops = sorted(c for c in results.columns if c.startswith("ops/"))
    return results[FOUND + ops].astype({"search_predicted": float})


def test_a_dask_cluster_of_two_worker_processes_finds_what_the_pool_finds(pooled, tmp_path):
    points, reference = pooled
    config, estimators, kwargs = tiny_sweep()
    with LocalCluster(processes=True, n_workers=2, threads_per_worker=1,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        assert len(client.scheduler_info()["workers"]) == 2
        with get_task_stream(client) as stream:
            on_dask = run_sweep(points, config, estimators, tmp_path, **kwargs,
                                executor=client.get_executor())
    assert len(stream.data) == len(points)  # the runs went through the scheduler
    pd.testing.assert_frame_equal(found(on_dask), found(reference))
    saved = pd.read_csv(tmp_path / "results.csv")
    assert sorted(saved["run_id"]) == sorted(p.run_id for p in points)
    assert all((tmp_path / p.run_id / "result.json").exists() for p in points)


def test_submitit_jobs_find_what_the_pool_finds_and_a_rerun_submits_nothing(pooled, tmp_path):
    points, reference = pooled
    config, estimators, kwargs = tiny_sweep()
    executor = submitit.LocalExecutor(folder=tmp_path / "jobs")
    executor.update_parameters(timeout_min=5)
    on_submitit = run_sweep(points, config, estimators, tmp_path / "sweep", **kwargs,
                            executor=executor)
    pd.testing.assert_frame_equal(found(on_submitit), found(reference))
    results = sorted((tmp_path / "jobs").glob("*_result.pkl"))
    assert len(results) == len(points)  # each run was a submitit job of its own
    again = run_sweep(points, config, estimators, tmp_path / "sweep", **kwargs,
                      executor=executor)
    assert sorted((tmp_path / "jobs").glob("*_result.pkl")) == results  # resumed: no new job
    pd.testing.assert_frame_equal(found(again), found(on_submitit))


class _Job:
    """A job in submitit's shape (result, done, cancel; not a concurrent.futures.Future):
    the run of item 0 fails, the others wait until cancelled."""

    def __init__(self, item: int) -> None:
        self.item, self.cancelled = item, threading.Event()

    def result(self) -> dict:
        if self.item == 0:
            raise RuntimeError("run 0 failed")
        self.cancelled.wait(timeout=60)
        return {"item": self.item}

    def done(self) -> bool:
        return self.cancelled.is_set()

    def cancel(self) -> None:
        self.cancelled.set()


class _Executor:
    def __init__(self) -> None:
        self.jobs: list[_Job] = []

    def submit(self, fn, run, item, payload, threads) -> _Job:
        self.jobs.append(_Job(item))
        return self.jobs[-1]


def test_a_failed_run_cancels_the_runs_still_pending():
    executor = _Executor()
    with pytest.raises(RuntimeError, match="run 0 failed"), \
            finished_runs(dict, [0, 1, 2], {}, executor=executor) as rows:
        list(rows)
    assert [job.cancelled.is_set() for job in executor.jobs] == [True, True, True]


def test_bad_executor_arguments_are_refused_before_anything_runs(tmp_path):
    config, estimators, kwargs = tiny_sweep()
    points = sweep_points({"flops": [3.0]}, [0])
    with pytest.raises(ValueError, match="executor=.*has no submit"):
        run_sweep(points, config, estimators, tmp_path / "a", executor=object(), **kwargs)
    with pytest.raises(ValueError, match="workers=2 with executor="):
        run_sweep(points, config, estimators, tmp_path / "b", workers=2,
                  executor=_Executor(), **kwargs)
    with pytest.raises(ValueError, match="threads=0"):
        run_sweep(points, config, estimators, tmp_path / "c", threads=0, **kwargs)
    assert not any(tmp_path.iterdir())


def test_dask_executor_opens_a_local_cluster_by_name_and_refuses_bad_addresses():
    from lenna_core.search.executors import dask_executor

    with dask_executor(None) as nothing:
        assert nothing is None
    with dask_executor("local:1") as executor:
        assert executor.submit(pow, 2, 10).result() == 1024
    for bad, match in (("local:0", "local:N with N >= 1"), ("somewhere", "scheduler address")):
        with pytest.raises(ValueError, match=match), dask_executor(bad):
            pass
