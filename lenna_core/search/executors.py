"""Where the runs of a sweep execute: in this process, in a local pool, or on any executor.

A sweep is a list of independent runs, each seeded on its own, so where and in which order they
run changes nothing in their results; :func:`finished_runs` hands back each result as soon as
its run ends, wherever that was:

- ``workers=1``: in this process, one after the other;
- ``workers=N``: in a local pool of N fresh (spawned) processes, which receive the shared state
  (data splits, estimators, meter) once each, through the pool's initializer;
- ``executor=``: on anything with ``submit(fn, *args)`` that returns futures with ``result()``.
  A :class:`concurrent.futures.Executor` qualifies (``ProcessPoolExecutor``, or dask's
  ``distributed.Client(...).get_executor()``), and so do submitit's executors
  (``submitit.AutoExecutor`` for Slurm, ``submitit.LocalExecutor``), although their jobs are
  not :class:`concurrent.futures.Future`: a thread here waits on each such job's ``result()``
  (:func:`as_completed_results`), so their results are collected as they come as well.
  An executor has no initializer, so each task carries the shared state itself, pickled once
  here; with large data (CIFAR-10's splits) every task ships a copy, and the workers must
  reach the sweep's folder (a shared file system on a cluster) for the runs' checkpoints.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import pickle
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch

from lenna_core.latency.profiler import cpu_threads
from lenna_core.validation import check_int

#: ``run(item, **shared)`` -> one row of results; a module-level function, so it pickles.
Run = Callable[..., dict]


@contextmanager
def finished_runs(run: Run, items: Sequence, shared: dict, *, workers: int = 1,
                  executor: Any = None, threads: int | None = None) -> Iterator[Iterator[dict]]:
    """``run(item, **shared)`` for every item, yielded in the order the runs finish.

    ``threads`` is the torch thread count of each run in a pool or on an executor (default:
    this process's, whose float rounding the runs then share). Leaving the block early (an
    error, an interrupt) stops the pool's other runs and cancels the executor's pending ones.
    """
    check_placement(workers, executor, threads)
    threads = torch.get_num_threads() if threads is None else threads
    if executor is not None:
        payload = pickle.dumps(shared)  # once here, not once per task
        futures: list = []
        try:
            for item in items:
                futures.append(executor.submit(_run_task, run, item, payload, threads))
            yield as_completed_results(futures)
        finally:
            _cancel_pending(futures)
        return
    if workers == 1 or len(items) <= 1:
        yield (run(item, **shared) for item in items)
        return
    # Spawned, not forked: a forked torch process can hang in its thread pools.
    pool = multiprocessing.get_context("spawn").Pool(
        min(workers, len(items)), initializer=_start_worker, initargs=(run, shared, threads))
    try:
        yield pool.imap_unordered(_run_in_worker, items)
        pool.close()
    finally:
        pool.terminate()  # on an interrupt or an error: stop the other searches now
        pool.join()


def check_placement(workers: int, executor: Any, threads: int | None) -> None:
    """Refuse a bad ``workers``, ``executor`` or ``threads`` (a ValueError naming it)."""
    check_int("workers", workers, hint=" (1 runs the searches in this process, one after "
              "the other)")
    check_int("threads", threads, optional=True)
    if executor is None:
        return
    if workers != 1:
        raise ValueError(f"workers={workers} with executor={executor!r}: workers sizes the "
                         "local pool; the executor decides how many runs go side by side")
    if not callable(getattr(executor, "submit", None)):
        raise ValueError(f"executor={executor!r} has no submit(fn, *args): give a "
                         "concurrent.futures.Executor, distributed.Client(...).get_executor() "
                         "or a submitit executor")


def as_completed_results(futures: Iterable) -> Iterator:
    """The results of ``futures`` as they complete; a future that is not a
    :class:`concurrent.futures.Future` (a submitit job) is waited on by a thread of its own."""
    futures = list(futures)
    plain = [f for f in futures if isinstance(f, cf.Future)]
    others = [f for f in futures if not isinstance(f, cf.Future)]
    waiter = cf.ThreadPoolExecutor(max_workers=len(others)) if others else None
    try:
        waited = [waiter.submit(job.result) for job in others] if waiter else []
        for future in cf.as_completed(plain + waited):
            yield future.result()
    finally:
        if waiter:
            waiter.shutdown(wait=False, cancel_futures=True)


def _cancel_pending(futures: Sequence) -> None:
    for future in futures:
        done = getattr(future, "done", None)
        cancel = getattr(future, "cancel", None)
        if cancel is not None and not (done and done()):
            try:
                cancel()
            except Exception:  # a job that cannot be cancelled any more ends on its own
                pass


def _run_task(run: Run, item: Any, payload: bytes, threads: int) -> dict:
    """One run on an executor's worker, with the shared state it carries."""
    with cpu_threads(threads):
        return run(item, **pickle.loads(payload))


_WORKER_STATE: dict = {}


def _start_worker(run: Run, shared: dict, threads: int) -> None:
    torch.set_num_threads(threads)
    _WORKER_STATE.update(run=run, shared=shared)


def _run_in_worker(item: Any) -> dict:
    return _WORKER_STATE["run"](item, **_WORKER_STATE["shared"])


@contextmanager
def dask_executor(address: str | None) -> Iterator[Any]:
    """An executor on the Dask scheduler at ``address`` (``tcp://host:8786``) or on a local
    cluster of N worker processes (``local:N``), closed on leaving; None yields None (the
    sweep's local pool). What a chapter parameter can name, where an executor object cannot be."""
    if address is None:
        yield None
        return
    from distributed import Client, LocalCluster  # the optional `cluster` extra

    if address.startswith("local:"):
        count = address.removeprefix("local:")
        if not count.isdigit() or int(count) < 1:
            raise ValueError(f"address={address!r}: write local:N with N >= 1 worker processes")
        with LocalCluster(n_workers=int(count), threads_per_worker=1, processes=True,
                          dashboard_address=None) as cluster, Client(cluster) as client:
            yield client.get_executor()
        return
    if "://" not in address:
        raise ValueError(f"address={address!r}: give a scheduler address such as "
                         "tcp://host:8786, local:N for N local workers, or None")
    with Client(address) as client:
        yield client.get_executor()
