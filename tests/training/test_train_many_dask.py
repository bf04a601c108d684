"""train_many(..., client=...) on a dask.distributed LocalCluster.

The oracle is the local, single-run :func:`structdrop.train` with the same settings: every run done
on the cluster's worker processes (results pickled back) must equal it bit for bit, whatever the
batching, the worker that ran it or the threads per task. Skipped cleanly without distributed.
"""

from __future__ import annotations

import logging
import pickle
import subprocess
import sys

import numpy as np
import pytest

import structdrop
from structdrop.schemes import DropBlock, DropConnect, Dropout, NoDropout, OverlappingDropBlock

try:
    import distributed
except ImportError:  # pragma: no cover - exercised only without the dask extra
    distributed = None
needs_distributed = pytest.mark.skipif(
    distributed is None, reason="needs dask.distributed (the dask extra)"
)


def _same_result(local, remote) -> None:
    for name in ("U", "V", "record_iterations", "stochastic_objective", "deterministic_objective"):
        a, b = getattr(local, name), getattr(remote, name)
        assert a.dtype == b.dtype and a.shape == b.shape, name
        assert a.tobytes() == b.tobytes(), name


def _problem(seed=0, a=3, b=5, N=40):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((b, N)), rng.standard_normal((a, N)), rng


@pytest.fixture(scope="module")
def client():
    # Worker processes (not threads): the runs' settings and results really are pickled.
    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
            silence_logs=logging.ERROR,
        ) as cluster,
        distributed.Client(cluster) as c,
    ):
        yield c


def test_import_structdrop_imports_neither_dask_nor_distributed():
    code = (
        "import sys, numpy as np, structdrop\n"
        "from structdrop.schemes import Dropout\n"
        "X, Y = np.ones((2, 3)), np.ones((1, 3))\n"
        "structdrop.train_many(X, Y, np.ones((1, 2)), np.ones((2, 2)), Dropout(0.5), 0.01, 5,"
        " seed=[0, 1])\n"
        "print(sorted(m for m in ('dask', 'distributed', 'tqdm') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_results_and_errors_pickle_with_their_fields():
    X, Y, rng = _problem()
    result = structdrop.train(
        X,
        Y,
        0.3 * rng.standard_normal((3, 4)),
        0.3 * rng.standard_normal((5, 4)),
        Dropout(0.5),
        0.01,
        30,
        record_every=7,
        seed=3,
    )
    _same_result(result, pickle.loads(pickle.dumps(result)))
    error = pickle.loads(
        pickle.dumps(structdrop.TrainingDiverged("run 4 (seed 9): diverged", step=17, run=4))
    )
    assert isinstance(error, structdrop.TrainingDiverged) and isinstance(error, FloatingPointError)
    assert (str(error), error.step, error.run) == ("run 4 (seed 9): diverged", 17, 4)


@needs_distributed
@pytest.mark.parametrize("threads", [None, 2])
def test_every_run_on_the_cluster_is_bit_identical_to_local_train(client, threads):
    X, Y, rng = _problem(1)
    schemes = [
        NoDropout(),
        Dropout(0.6),
        DropBlock(2, theta=0.5),
        OverlappingDropBlock(2, gamma=0.2),
        DropConnect(0.7),
    ]
    R = 13  # not a multiple of the batch count: uneven batches
    widths = [4, 6] * 6 + [4]
    U0 = [0.3 * rng.standard_normal((3, d)) for d in widths]
    V0 = [0.3 * rng.standard_normal((5, d)) for d in widths]
    settings = {
        "scheme": [schemes[j % 5] for j in range(R)],
        "lr": [0.01 + 0.002 * j for j in range(R)],
        "iterations": [200 + 17 * j for j in range(R)],
        "batch_size": [1 + j % 3 for j in range(R)],
        "record_every": [10 + j for j in range(R)],
        "seed": [1000 * j + 7 for j in range(R)],
        "lr_decay": [None if j % 2 else 50.0 for j in range(R)],
    }
    with distributed.get_task_stream(client) as stream:
        remote = structdrop.train_many(X, Y, U0, V0, threads=threads, client=client, **settings)
    assert len(remote) == R
    for j, result in enumerate(remote):
        local = structdrop.train(X, Y, U0[j], V0[j], **{k: v[j] for k, v in settings.items()})
        _same_result(local, result)
    # the batches really were spread over both worker processes
    workers = {task["worker"] for task in stream.data if task["key"].startswith("_train_batch")}
    assert workers == set(client.nthreads())


@needs_distributed
def test_shared_factors_and_many_small_batches(client):
    X, Y, rng = _problem(2)
    U0, V0 = 0.3 * rng.standard_normal((3, 4)), 0.3 * rng.standard_normal((5, 4))
    remote = structdrop.train_many(
        X, Y, U0, V0, DropBlock(2, theta=0.5), 0.02, 150, seed=range(20), client=client
    )
    for seed, result in enumerate(remote):
        _same_result(
            structdrop.train(X, Y, U0, V0, DropBlock(2, theta=0.5), 0.02, 150, seed=seed), result
        )


@needs_distributed
def test_divergence_on_a_worker_names_the_run_and_the_step(client):
    X, Y, rng = _problem(3)
    U0, V0 = 0.3 * rng.standard_normal((3, 4)), 0.3 * rng.standard_normal((5, 4))
    lrs = [0.01] * 10
    lrs[7] = 1e3
    with pytest.raises(structdrop.TrainingDiverged, match=r"run 7 \(seed 107\)") as info:
        structdrop.train_many(
            X, Y, U0, V0, Dropout(0.5), lrs, 300, seed=range(100, 110), client=client
        )
    with pytest.raises(structdrop.TrainingDiverged) as local:
        structdrop.train(X, Y, U0, V0, Dropout(0.5), 1e3, 300, seed=107)
    assert info.value.run == 7 and info.value.step == local.value.step
    # the client is still usable after the cancelled call
    again = structdrop.train_many(X, Y, U0, V0, Dropout(0.5), 0.01, 20, seed=[1, 2], client=client)
    _same_result(structdrop.train(X, Y, U0, V0, Dropout(0.5), 0.01, 20, seed=2), again[1])


@needs_distributed
def test_progress_counts_runs_on_stderr(client, capsys):
    X, Y, rng = _problem(4)
    U0, V0 = 0.3 * rng.standard_normal((3, 4)), 0.3 * rng.standard_normal((5, 4))
    structdrop.train_many(
        X, Y, U0, V0, Dropout(0.5), 0.01, 50, seed=range(9), client=client, progress=True
    )
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "structdrop.train_many" in captured.err and "9/9" in captured.err


@needs_distributed
def test_client_must_be_a_dask_client():
    X, Y, rng = _problem(5)
    U0, V0 = np.ones((3, 2)), np.ones((5, 2))
    for bad in ("tcp://127.0.0.1:8786", object(), 2):
        with pytest.raises(TypeError, match="client must be a dask.distributed.Client"):
            structdrop.train_many(X, Y, U0, V0, Dropout(0.5), 0.01, 5, client=bad)


@needs_distributed
def test_a_failed_task_names_its_runs(monkeypatch):
    from structdrop import _dask_training

    def broken(*args, **kwargs):
        raise MemoryError("no room on this worker")

    # In-process workers, so that the patched task function is the one they run.
    monkeypatch.setattr(_dask_training, "_train_batch", broken)
    X, Y, rng = _problem(6)
    with (
        distributed.LocalCluster(
            n_workers=1,
            threads_per_worker=1,
            processes=False,
            dashboard_address=":0",
            silence_logs=logging.CRITICAL,
        ) as cluster,
        distributed.Client(cluster) as c,
    ):
        with pytest.raises(
            RuntimeError,
            match=r"runs 0\.\.\d+ \(seeds 5\.\.\d+\) failed on the Dask cluster: "
            r"MemoryError: no room",
        ) as info:
            structdrop.train_many(
                X,
                Y,
                np.ones((3, 2)),
                np.ones((5, 2)),
                Dropout(0.5),
                0.01,
                5,
                seed=range(5, 8),
                client=c,
            )
    assert isinstance(info.value.__cause__, MemoryError)


def test_batches_cover_the_runs_once_in_order():
    from structdrop._dask_training import TASKS_PER_THREAD, batches

    for count in (1, 2, 7, 13, 64, 1000):
        for slots in (0, 1, 2, 5):
            ranges = batches(count, slots)
            assert ranges[0][0] == 0 and ranges[-1][1] == count
            assert all(hi == lo2 for (_, hi), (lo2, _) in zip(ranges[:-1], ranges[1:]))
            sizes = [hi - lo for lo, hi in ranges]
            assert min(sizes) >= 1 and max(sizes) - min(sizes) <= 1
            assert len(ranges) == min(count, TASKS_PER_THREAD * max(1, slots))
