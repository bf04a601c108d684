"""``train_many(..., client=...)``: the runs spread over a ``dask.distributed`` cluster.

Imported only when a client is given, so ``import structdrop`` imports neither dask nor
distributed. Each task runs a batch of consecutive runs in the C++ engine on its worker
(:func:`structdrop.training._run_batch`, handed in by ``train_many``: the code path of a local
call), so a run's result does not depend on where it ran: the engine draws its random numbers from
(seed, step, slot) only. This module never imports ``training`` (that would be an import cycle).

What travels: X and Y once to every worker (``scatter(broadcast=True)``), each batch's validated
runs (``_core.SgdJob`` objects, which pickle with their U0/V0), and back
:class:`~structdrop.training.TrainResult` objects or a
:class:`~structdrop.training.TrainingDiverged` (both pickle, with their fields).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from ._progress import progress_bar

if TYPE_CHECKING:  # pragma: no cover
    from . import _core
    from .training import TrainingDiverged, TrainResult

    RunBatch = Callable[
        [np.ndarray, np.ndarray, list[_core.SgdJob], int, int, int],
        "list[TrainResult] | TrainingDiverged",
    ]

__all__ = ["check_client", "run_on_client"]

# Tasks per worker thread: enough for dynamic load balance when runs differ in length and for a
# progress bar that moves, few enough that the per-task overhead (milliseconds) stays negligible.
TASKS_PER_THREAD = 4


def check_client(client: object) -> None:
    """TypeError unless ``client`` is a synchronous ``dask.distributed.Client``."""
    try:
        from distributed import Client
    except ImportError as exc:
        raise ImportError(
            "train_many(client=...) needs dask.distributed: pip install 'structdrop[dask]'"
        ) from exc
    if not isinstance(client, Client):
        raise TypeError(
            "client must be a dask.distributed.Client (or None to run here), "
            f"got {type(client).__name__}: {client!r}"
        )
    if client.asynchronous:
        raise TypeError(
            "client must be a synchronous dask.distributed.Client, got an asynchronous one"
        )


def batches(count: int, slots: int) -> list[tuple[int, int]]:
    """Split runs ``0 .. count-1`` into at most ``TASKS_PER_THREAD * slots`` ranges of consecutive
    runs whose sizes differ by at most one."""
    tasks = max(1, min(count, TASKS_PER_THREAD * max(1, slots)))
    bounds = [round(k * count / tasks) for k in range(tasks + 1)]
    return [(lo, hi) for lo, hi in zip(bounds[:-1], bounds[1:]) if hi > lo]


def _train_batch(
    run: RunBatch,
    X: np.ndarray,
    Y: np.ndarray,
    jobs: list[_core.SgdJob],
    threads: int,
    first: int,
    total: int,
) -> list[TrainResult] | TrainingDiverged:
    """The task: runs ``first .. first + len(jobs) - 1`` of a call with ``total`` runs, on a worker,
    through ``run`` (:func:`structdrop.training._run_batch`: a divergence comes back as a value)."""
    return run(X, Y, jobs, threads, first, total)


def run_on_client(
    client: Any,
    run: RunBatch,
    X: np.ndarray,
    Y: np.ndarray,
    jobs: list[_core.SgdJob],
    threads: int | None,
    delay: float | None,
    label: str,
) -> list[TrainResult]:
    """Run the validated ``jobs`` on ``client``'s cluster with ``run`` (see :func:`_train_batch`);
    results in run order. ``threads``: C++
    threads per task (None: one); ``delay``: seconds before the progress bar shows (None: none)."""
    from distributed import as_completed

    count = len(jobs)
    slots = sum(client.nthreads().values())
    # A worker already runs one task per thread: one C++ thread per task unless asked otherwise.
    per_task = 1 if threads is None else threads
    data = client.scatter([X, Y], broadcast=True, hash=False)
    ranges = {}
    for lo, hi in batches(count, slots):
        future = client.submit(
            _train_batch, run, data[0], data[1], jobs[lo:hi], per_task, lo, count, pure=False
        )
        ranges[future] = (lo, hi)

    finished: dict[int, list[TrainResult]] = {}  # first run's index -> the batch's results
    bar = progress_bar(count, label, delay, unit="run")
    try:
        for future in as_completed(list(ranges)):
            lo, hi = ranges[future]
            try:
                batch = future.result()
            except Exception as exc:
                hint = (
                    " (is structdrop installed on the workers?)"
                    if isinstance(exc, ImportError)
                    else ""
                )
                raise RuntimeError(
                    f"runs {lo}..{hi - 1} (seeds {jobs[lo].seed}..{jobs[hi - 1].seed}) failed on "
                    f"the Dask cluster{hint}: {type(exc).__name__}: {exc}"
                ) from exc
            if isinstance(batch, BaseException):  # a TrainingDiverged, returned by the task
                raise batch  # names the run (its index in this call), its seed and the step
            finished[lo] = batch
            bar.update(hi - lo)
    except BaseException:
        client.cancel(list(ranges))  # an error or Ctrl-C: stop the call's remaining tasks
        raise
    finally:
        bar.close()
    return [result for lo in sorted(finished) for result in finished[lo]]
