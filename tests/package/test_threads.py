"""Thread safety of the GIL-released kernels.

Many Python threads call the compiled kernels at once on shared, read-only inputs; every answer
must be bit-identical to the serial call made beforehand (the oracle), and the shared inputs must
be unchanged. train_many with 1, 2 and many worker threads must equal independent serial train()
calls exactly.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import structdrop
from structdrop import _core
from structdrop.schemes import DropBlock, DropConnect, Dropout, NoDropout, OverlappingDropBlock

WORKERS = 8
REPEATS = 4


def _same(a, b) -> None:
    if isinstance(a, (tuple, list)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _same(x, y)
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape
        assert a.tobytes() == b.tobytes()
    elif hasattr(a, "__dataclass_fields__"):
        for name in a.__dataclass_fields__:
            if name != "seconds":
                _same(getattr(a, name), getattr(b, name))
    else:
        assert a == b or (a != a and b != b)


def _hammer(calls):
    """Serial answers first, then every call REPEATS times from WORKERS threads at once."""
    serial = [f() for f in calls]
    jobs = [(i, f) for _ in range(REPEATS) for i, f in enumerate(calls)]
    with ThreadPoolExecutor(WORKERS) as pool:
        futures = [(i, pool.submit(f)) for i, f in jobs]
        for i, fut in futures:
            _same(serial[i], fut.result())


@pytest.fixture(scope="module")
def shared():
    rng = np.random.default_rng(8)
    m = np.sort(rng.exponential(size=4000))[::-1].copy()
    m.setflags(write=False)
    X = rng.standard_normal((6, 200))
    Y = rng.standard_normal((3, 200))
    for a in (X, Y):
        a.setflags(write=False)
    return m, X, Y


def test_prox_kernels_threaded(shared):
    m, _, _ = shared
    before = m.copy()
    calls = []
    for r in (1, 3, 50, 4000):
        for beta in (0.0, 0.1, 2.0, 1e6):
            calls.append(lambda r=r, b=beta: _core.prox_sweep(m, r, b))
            calls.append(lambda r=r, b=beta: _core.prox_search(m[:300].copy(), r, b))
            calls.append(lambda r=r, b=beta: structdrop.prox_ksupport_sq(m, r, b))
    calls.append(lambda: _core.ksupport_norm_sq_sorted(m, 17))
    _hammer(calls)
    assert np.array_equal(m, before)


def test_batch_sweeps_threaded(shared):
    m, X, Y = shared
    rs = np.array([1, 2, 5, 40, 400] * 20, dtype=np.int64)
    betas = np.linspace(0.0, 5.0, rs.size)
    calls = [lambda t=t: _core.prox_batch(m, rs, betas, t) for t in (1, 2, 4)] + [
        lambda: structdrop.sweep_global_min(
            m, block_sizes=[1, 3, 9], theta_bars=[0.2, 0.5, 1.0], threads=2
        ),
        lambda: structdrop.sweep_global_min(
            Y, block_sizes=[1, 2], theta_bars=[0.3, 0.9], X=X, threads=1
        ),
        lambda: structdrop.width_sweep(Y, [2, 4, 8], block_size=2, theta_bar=0.6, threads=2),
    ]
    _hammer(calls)
    # the batch solver's answer does not depend on its own thread count either
    _same(_core.prox_batch(m, rs, betas, 1), _core.prox_batch(m, rs, betas, 3))


SCHEMES = [
    NoDropout(),
    Dropout(0.7),
    DropBlock(2, theta=0.6),
    OverlappingDropBlock(2, gamma=0.3),
    DropConnect(0.8),
]


def test_objectives_threaded(shared):
    _, X, Y = shared
    rng = np.random.default_rng(3)
    U = rng.standard_normal((3, 4))
    V = rng.standard_normal((6, 4))
    moments = structdrop.data_moments(X, Y)
    calls = [lambda: structdrop.data_moments(X, Y)]
    for s in SCHEMES:
        calls.append(lambda s=s: structdrop.objective_terms(s, U, V, moments))
        calls.append(lambda s=s: s.objective_terms(X, Y, U, V))
    _hammer(calls)


def _train_args(shared):
    _, X, Y = shared
    rng = np.random.default_rng(5)
    U0 = rng.standard_normal((3, 4)) * 0.1
    V0 = rng.standard_normal((6, 4)) * 0.1
    return X, Y, U0, V0


def test_train_threaded(shared):
    X, Y, U0, V0 = _train_args(shared)
    calls = [
        lambda s=s, seed=seed: structdrop.train(
            X, Y, U0, V0, s, 1e-3, 150, batch_size=2, record_every=50, seed=seed
        )
        for s in SCHEMES[1:4]
        for seed in (0, 1)
    ]
    _hammer(calls)


def test_train_many_thread_counts(shared):
    X, Y, U0, V0 = _train_args(shared)
    schemes = [SCHEMES[i % len(SCHEMES)] for i in range(10)]
    seeds = list(range(10))
    serial = [
        structdrop.train(X, Y, U0, V0, s, 1e-3, 200, batch_size=3, record_every=40, seed=k)
        for s, k in zip(schemes, seeds)
    ]
    for threads in (1, 2, 16):
        runs = structdrop.train_many(
            X,
            Y,
            U0,
            V0,
            schemes,
            1e-3,
            200,
            batch_size=3,
            record_every=40,
            seed=seeds,
            threads=threads,
        )
        _same(serial, runs)
    # several train_many calls at once from Python threads
    with ThreadPoolExecutor(4) as pool:
        futures = [
            pool.submit(
                structdrop.train_many,
                X,
                Y,
                U0,
                V0,
                schemes,
                1e-3,
                200,
                batch_size=3,
                record_every=40,
                seed=seeds,
                threads=t,
            )
            for t in (1, 2, 3, None)
        ]
        for fut in futures:
            _same(serial, fut.result())
