"""Data moments of dask arrays: tree reduction, any chunking, any scheduler.

The in-process NumPy route and exact integer arithmetic are the references; skipped cleanly
without dask (and the cluster test without distributed).
"""

from __future__ import annotations

import numpy as np
import pytest

da = pytest.importorskip("dask.array")

import structdrop as sd  # noqa: E402
from structdrop._data.dask_moments import dask_moments, moment_graph  # noqa: E402

B, A, N = 9, 4, 1000


def rel_close(m, ref, rtol=1e-12):
    assert m.n_samples == ref.n_samples
    assert np.abs(m.gram - ref.gram).max() <= rtol * np.abs(ref.gram).max()
    assert np.array_equal(m.gram, m.gram.T)
    if ref.cross is None:
        assert m.cross is None and m.y_sq_norm == 0.0
    else:
        assert np.abs(m.cross - ref.cross).max() <= rtol * np.abs(ref.cross).max()
        assert abs(m.y_sq_norm - ref.y_sq_norm) <= rtol * ref.y_sq_norm


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((B, N)) * np.logspace(-2, 2, B)[:, None]
    Y = rng.standard_normal((A, N))
    return X, Y, sd.data_moments(X, Y)


# rows split into several chunks (uneven), columns into uneven chunks; Y chunked differently
CHUNKINGS = [
    ((B, N), (A, N)),
    ((B, 100), (A, 100)),
    (((2, 3, 4), (1, 299, 300, 400)), ((1, 3), (500, 500))),
    pytest.param((1, 7), (A, 1), marks=pytest.mark.slow),  # 1000 column chunks: ~15 s
    ((4, (N - 1, 1)), (2, 333)),
]


@pytest.mark.parametrize("x_chunks, y_chunks", CHUNKINGS)
def test_dask_matches_in_process(data, x_chunks, y_chunks):
    X, Y, ref = data
    m = sd.data_moments(da.from_array(X, chunks=x_chunks), da.from_array(Y, chunks=y_chunks))
    rel_close(m, ref)
    rel_close(sd.data_moments(da.from_array(X, chunks=x_chunks)), sd.data_moments(X))


def test_dask_exact_on_integer_data_float32_and_mixed_operands():
    rng = np.random.default_rng(1)
    X, Y = rng.integers(-9, 10, (B, N)), rng.integers(-9, 10, (A, N))
    g, c, s = X @ X.T, Y @ X.T, int(np.sum(Y * Y))  # int64: exact
    for x, y in [
        (
            da.from_array(X.astype(np.float32), chunks=(4, 128)),
            da.from_array(Y.astype(np.float32), chunks=(3, 200)),
        ),
        (da.from_array(X, chunks=(5, 250)), Y),  # dask X, NumPy Y
        (X.astype(float), da.from_array(Y, chunks=(A, 64))),  # NumPy X, dask Y
    ]:
        m = sd.data_moments(x, y)
        np.testing.assert_array_equal(m.gram, g)
        np.testing.assert_array_equal(m.cross, c)
        assert m.y_sq_norm == s and m.n_samples == N


def test_tree_reduction(data):
    X, Y, ref = data
    x = da.from_array(X, chunks=(5, 10))  # 100 column chunks, 2 row chunks
    y = da.from_array(Y, chunks=(A, 10))
    rel_close(dask_moments(x, y, split_every=2), ref)
    # the reduction over the 100 column chunks is a binary tree: no task sums more than 2 partials
    from dask.core import get_dependencies

    for lazy in moment_graph(x, y, split_every=2):
        graph = dict(lazy.__dask_graph__())
        fan_in = [len(get_dependencies(graph, key)) for key in graph]
        assert max(fan_in) == 2 and len(graph) > 100


def test_dask_on_distributed_cluster(data):
    distributed = pytest.importorskip("distributed")
    X, Y, ref = data
    x = da.from_array(X, chunks=((4, 5), (250, 250, 300, 200)))
    y = da.from_array(Y, chunks=(2, 100))
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
    ) as cluster:
        with distributed.Client(cluster) as client:
            m = sd.data_moments(x, y)
            assert client.run(lambda: 1)  # the cluster is the active scheduler
    rel_close(m, ref)


def test_dask_bad_input():
    X = np.ones((3, 50))
    bad = X.copy()
    bad[1, 40] = np.nan
    with pytest.raises(ValueError, match="^X contains NaN or infinite values"):
        sd.data_moments(da.from_array(bad, chunks=(2, 10)))
    with pytest.raises(ValueError, match="^Y contains NaN or infinite values"):
        sd.data_moments(da.from_array(X, chunks=(2, 10)), da.from_array(bad, chunks=(2, 10)))
    with pytest.raises(ValueError, match="X is too large"):
        sd.data_moments(da.from_array(X * 1e200, chunks=(2, 10)))
    with pytest.raises(ValueError, match=r"same number of columns.*X \(3, 50\) and Y \(3, 40\)"):
        sd.data_moments(da.from_array(X, chunks=(2, 10)), da.from_array(X[:, :40]))
    with pytest.raises(ValueError, match="X must be 2-D"):
        sd.data_moments(da.from_array(X[0]))
    with pytest.raises(TypeError, match="X must be real"):
        sd.data_moments(da.from_array(X.astype(complex)))
    unknown = da.from_array(X, chunks=(3, 10))
    unknown = unknown[:, unknown[0] > 0]
    with pytest.raises(ValueError, match="unknown chunk sizes"):
        sd.data_moments(unknown)


def test_dask_progress_bar(data, capfd):
    X, Y, ref = data
    rel_close(
        sd.data_moments(
            da.from_array(X, chunks=(B, 100)), da.from_array(Y, chunks=(A, 100)), progress=True
        ),
        ref,
    )
    assert "100%" in capfd.readouterr().err


def test_dask_progress_delay_in_seconds(data, capfd):
    """A number is a delay, as for NumPy data: 0 shows the bar at once, a long delay never."""
    X, Y, ref = data
    dx, dy = da.from_array(X, chunks=(B, 100)), da.from_array(Y, chunks=(A, 100))
    rel_close(sd.data_moments(dx, dy, progress=0.0), ref)
    assert "100%" in capfd.readouterr().err
    rel_close(sd.data_moments(dx, dy, progress=3600.0), ref)
    assert "100%" not in capfd.readouterr().err
    with pytest.raises(ValueError, match="progress must be"):
        sd.data_moments(dx, dy, progress=-1.0)
