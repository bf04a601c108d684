"""Data moments: BLAS route, exact merge, streams, memory maps.

Checked against independent arithmetic: integer-valued data, whose moments NumPy's int64 products
give exactly (and float64 sums of small integers are exact too), and np.longdouble sums on
real-valued data. Memory is measured (tracemalloc, VmHWM in a subprocess), not inspected.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import textwrap
import tracemalloc

import numpy as np
import pytest

import structdrop as sd
from structdrop.moments import DataMoments, data_moments, stream_moments

B, A, N = 7, 3, 257


def int_data(seed=0, b=B, a=A, n=N):
    rng = np.random.default_rng(seed)
    return rng.integers(-9, 10, (b, n)), rng.integers(-9, 10, (a, n))


def exact_moments(X, Y):
    """Integer arithmetic: exact, and a route independent of BLAS."""
    x, y = np.asarray(X, dtype=np.int64), np.asarray(Y, dtype=np.int64)
    return x @ x.T, y @ x.T, int(np.sum(y * y))


def longdouble_moments(X, Y):
    x, y = np.asarray(X, dtype=np.longdouble), np.asarray(Y, dtype=np.longdouble)
    return x @ x.T, y @ x.T, np.sum(y * y)


def assert_exact(m: DataMoments, X, Y):
    g, c, s = exact_moments(X, Y)
    assert m.gram.dtype == np.float64 and m.cross.dtype == np.float64
    np.testing.assert_array_equal(m.gram, g)
    np.testing.assert_array_equal(m.cross, c)
    assert m.y_sq_norm == s
    assert m.n_samples == np.shape(X)[1]


def assert_close(m: DataMoments, ref: DataMoments, rtol=1e-12):
    scale_g = np.abs(ref.gram).max()
    assert np.abs(m.gram - ref.gram).max() <= rtol * scale_g
    if ref.cross is None:
        assert m.cross is None
    else:
        assert np.abs(m.cross - ref.cross).max() <= rtol * max(np.abs(ref.cross).max(), 1e-300)
    assert abs(m.y_sq_norm - ref.y_sq_norm) <= rtol * max(abs(ref.y_sq_norm), 1e-300)
    assert m.n_samples == ref.n_samples


def layouts(a: np.ndarray):
    """The same values in every memory layout data_moments must read."""
    big = np.zeros((a.shape[0], 2 * a.shape[1]), dtype=a.dtype)
    big[:, ::2] = a
    yield "C", np.ascontiguousarray(a)
    yield "F", np.asfortranarray(a)
    yield "column-strided", big[:, ::2]
    yield "negative", np.ascontiguousarray(a[::-1, ::-1])[::-1, ::-1]
    yield "row-slice of F", np.asfortranarray(np.vstack([a, a]))[: a.shape[0]]


# ---------------------------------------------------------------- one array
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int32, np.int64])
@pytest.mark.parametrize("chunk_columns", [None, 1, 10, 1000])
def test_moments_exact_on_integer_data(dtype, chunk_columns):
    X, Y = int_data()
    for (name, x), (_, y) in zip(layouts(X.astype(dtype)), layouts(Y.astype(dtype))):
        m = data_moments(x, y, chunk_columns=chunk_columns)
        assert_exact(m, X, Y)
        assert np.array_equal(m.gram, m.gram.T), name


def test_moments_match_longdouble_on_real_data():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((20, 3000)) * np.logspace(-3, 3, 20)[:, None]
    Y = rng.standard_normal((4, 3000)) + 1e3
    g, c, s = longdouble_moments(X, Y)
    for chunk_columns in (None, 7, 512):
        m = data_moments(X, Y, chunk_columns=chunk_columns)
        np.testing.assert_allclose(
            m.gram, g.astype(float), rtol=1e-12, atol=1e-13 * float(np.abs(g).max())
        )
        np.testing.assert_allclose(
            m.cross, c.astype(float), rtol=1e-12, atol=1e-13 * float(np.abs(c).max())
        )
        assert abs(m.y_sq_norm - float(s)) <= 1e-13 * float(s)


def test_float32_input_accumulates_in_float64():
    # float32 products would lose these digits: 4097^2 needs 25 bits, the sums more.
    X = np.full((2, 1000), 4097.0, dtype=np.float32)
    X[1] = 1.0
    m = data_moments(X, X[:1])
    assert m.gram[0, 0] == 1000 * 4097.0**2 and m.gram.dtype == np.float64
    assert m.cross[0, 1] == 1000 * 4097.0 and m.y_sq_norm == 1000 * 4097.0**2


def test_float32_is_converted_per_chunk_not_copied_whole():
    X = np.random.default_rng(2).standard_normal((100, 100_000)).astype(np.float32)
    full_copy = X.size * 8
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base, _ = tracemalloc.get_traced_memory()
        m = data_moments(X, chunk_columns=5000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak - base < full_copy / 8, (peak - base) / full_copy
    assert peak - base >= 100 * 5000 * 8  # the measurement does see the chunk
    x = X.astype(np.float64)
    np.testing.assert_allclose(m.gram, x @ x.T, rtol=1e-12, atol=1e-12 * np.abs(m.gram).max())


def test_default_chunking_of_float32_is_bounded():
    X = np.ones((10, 2_000_000), dtype=np.float32)  # float64 copy: 160 MB
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base, _ = tracemalloc.get_traced_memory()
        m = data_moments(X)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak - base <= 1.05 * sd.moments.CHUNK_BYTES
    assert m.gram[0, 0] == 2_000_000


def test_bad_input_messages():
    X, Y = (a.astype(float) for a in int_data())
    for chunk_columns in (None, 10):
        for arr, name in ((X, "X"), (Y, "Y")):
            for bad_value in (np.nan, np.inf, -np.inf):
                bad = arr.copy()
                bad[1, 200] = bad_value
                args = (bad, Y) if name == "X" else (X, bad)
                with pytest.raises(ValueError, match=f"^{name} contains NaN or infinite values"):
                    data_moments(*args, chunk_columns=chunk_columns)
        with pytest.raises(ValueError, match="X is too large: X X\\^T overflows float64"):
            data_moments(X * 1e200, Y, chunk_columns=chunk_columns)
        with pytest.raises(ValueError, match="Y is too large"):
            data_moments(X, Y * 1e300, chunk_columns=chunk_columns)
    with pytest.raises(ValueError, match=r"same number of columns.*X \(7, 257\) and Y \(3, 256\)"):
        data_moments(X, Y[:, 1:])
    with pytest.raises(ValueError, match="X must be 2-D"):
        data_moments(X[0])
    with pytest.raises(ValueError, match="X must not be empty"):
        data_moments(X[:, :0])
    with pytest.raises(TypeError, match="X must be real"):
        data_moments(X.astype(complex))
    with pytest.raises(ValueError, match="chunk_columns must be >= 1"):
        data_moments(X, chunk_columns=0)


def test_moments_without_targets_and_public_names():
    X, _ = int_data()
    m = sd.data_moments(X)
    assert m.cross is None and m.y_sq_norm == 0.0 and m.out_features is None and m.in_features == B
    assert sd.objectives.DataMoments is sd.DataMoments is DataMoments
    assert sd.objectives.data_moments is sd.data_moments
    assert "stream_moments" in sd.__all__ and sd.stream_moments is stream_moments


def test_progress_bar_on_stderr(capfd):
    X, Y = int_data()
    data_moments(X, Y, chunk_columns=50, progress=True)
    stream_moments([(X, Y), (X, Y)], progress=True)
    out, err = capfd.readouterr()
    assert out == "" and "257/257" in err and "2/2" in err
    # A delay in seconds: a pass shorter than it prints nothing.
    data_moments(X, Y, chunk_columns=50, progress=30.0)
    assert capfd.readouterr().err == ""
    with pytest.raises(ValueError, match="progress must be"):
        data_moments(X, Y, progress=-1.0)


# ---------------------------------------------------------------- merge
def split_moments(X, Y, cuts):
    edges = [0, *cuts, X.shape[1]]
    return [data_moments(X[:, i:j], Y[:, i:j]) for i, j in zip(edges[:-1], edges[1:])]


def test_merge_is_exact_associative_and_order_invariant():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((6, 900)) * 10.0 ** rng.integers(-4, 5, (6, 1))
    Y = rng.standard_normal((2, 900))
    whole = data_moments(X, Y)
    parts = split_moments(X, Y, [1, 2, 100, 450, 451, 899])
    assert_close(sum(parts), whole, 1e-12)
    p, q, r = parts[:3]
    assert_close((p + q) + r, p + (q + r), 1e-12)
    for perm in itertools.islice(itertools.permutations(parts), 0, 5040, 97):
        assert_close(sum(perm), whole, 1e-12)
    assert_close(DataMoments.zeros(6, 2) + whole, whole, 0.0)
    # integer data: the merge is exact
    Xi, Yi = int_data(4)
    assert_exact(sum(split_moments(Xi, Yi, [3, 100, 101])), Xi, Yi)


def test_merge_rejects_mismatched_moments():
    X, Y = int_data()
    m = data_moments(X, Y)
    with pytest.raises(
        ValueError, match=r"gram \(7, 7\), cross \(3, 7\) and gram \(6, 6\), cross \(3, 6\)"
    ):
        m + data_moments(X[:6], Y)
    with pytest.raises(ValueError, match=r"cross \(3, 7\) and gram \(7, 7\), cross \(2, 7\)"):
        m + data_moments(X, Y[:2])
    with pytest.raises(ValueError, match=r"cross \(3, 7\) and gram \(7, 7\), no targets"):
        m + data_moments(X)
    with pytest.raises(TypeError):
        m + 1.5
    with pytest.raises(ValueError, match="overflow"):
        data_moments(X * 1e153) + data_moments(X * 1e153)
    assert (0 + m) is m and (m + 0) is m


def test_merge_rejects_overflow_of_the_targets_norm_alone():
    """||Y||^2 overflowing in the merge while X X^T and Y X^T stay finite (each part finite: a
    single sample whose target squares to 1e308). By Cauchy-Schwarz |Y X^T| <= ||Y|| ||X|| per
    part, so Y X^T cannot overflow while both norms stay finite: gram and ||Y||^2 are the checks
    that matter."""
    X, Y = np.array([[1e-10]]), np.array([[1e154]])
    part = data_moments(X, Y)
    assert np.isfinite(part.y_sq_norm) and np.isfinite(part.gram).all()
    with pytest.raises(ValueError, match="overflow"):
        part + part
    with pytest.raises(ValueError, match="overflow"):
        stream_moments([(X, Y), (X, Y)])


# ---------------------------------------------------------------- streams
def uneven_chunks(X, Y, widths):
    start = 0
    for w in widths:
        yield X[:, start : start + w], None if Y is None else Y[:, start : start + w]
        start += w
    assert start == X.shape[1]


@pytest.mark.parametrize("widths", [[N], [1] * N, [100, 0, 1, 56, 99, 1], [128, 129]])
def test_stream_equals_whole(widths):
    X, Y = int_data(5)
    assert_exact(stream_moments(uneven_chunks(X, Y, widths)), X, Y)
    rng = np.random.default_rng(6)
    Xr, Yr = rng.standard_normal((B, N)), rng.standard_normal((A, N))
    assert_close(stream_moments(uneven_chunks(Xr, Yr, widths)), data_moments(Xr, Yr), 1e-12)
    no_y = stream_moments(uneven_chunks(Xr, None, widths))
    assert no_y.cross is None and no_y.n_samples == N
    assert_close(no_y, data_moments(Xr), 1e-12)


def test_stream_mixed_dtypes_and_layouts():
    X, Y = int_data(7)
    chunks = [
        (X[:, :50].astype(np.float32), Y[:, :50]),
        (np.asfortranarray(X[:, 50:51]), Y[:, 50:51].astype(np.int16)),
        (X[:, 51:].tolist(), Y[:, 51:].astype(np.float32)),
    ]
    assert_exact(stream_moments(chunks), X, Y)


def test_stream_bad_chunks_name_index_and_shapes():
    X, Y = (a.astype(float) for a in int_data())

    def with_bad(k, which, value=np.nan):
        for i, (x, y) in enumerate(uneven_chunks(X, Y, [100, 100, 57])):
            x, y = x.copy(), y.copy()
            if i == k:
                (x if which == "X" else y)[0, 3] = value
            yield x, y

    with pytest.raises(ValueError, match="^chunk 2: X contains NaN or infinite values"):
        stream_moments(with_bad(2, "X"))
    with pytest.raises(ValueError, match="^chunk 1: Y contains NaN or infinite values"):
        stream_moments(with_bad(1, "Y", np.inf))
    with pytest.raises(ValueError, match="^chunk 0: X is too large"):
        stream_moments([(X * 1e200, Y)])
    with pytest.raises(
        ValueError,
        match=r"^chunk 1: X has 6 rows, chunk 0 had 7: got X \(6, 10\), chunk 0 X \(7, 10\)",
    ):
        stream_moments([(X[:, :10], Y[:, :10]), (X[:6, :10], Y[:, :10])])
    with pytest.raises(ValueError, match=r"^chunk 1: Y has 2 rows, chunk 0 had 3"):
        stream_moments([(X[:, :10], Y[:, :10]), (X[:, :10], Y[:2, :10])])
    with pytest.raises(
        ValueError,
        match=r"^chunk 1: X and Y must have the same number of columns.*X \(7, 10\) and Y \(3, 9\)",
    ):
        stream_moments([(X[:, :10], Y[:, :10]), (X[:, :10], Y[:, :9])])
    with pytest.raises(ValueError, match=r"^chunk 1: X must be 2-D, got an array of shape \(7,\)"):
        stream_moments([(X[:, :10], Y[:, :10]), (X[:, 0], Y[:, :1])])
    with pytest.raises(
        ValueError,
        match=(
            r"^chunk 2: Y_chunk must be None in all chunks or in none"
            r".*chunk 2 has no Y, chunk 0 had Y \(3, 10\)"
        ),
    ):
        stream_moments([(X[:, :10], Y[:, :10])] * 2 + [(X[:, :10], None)])
    with pytest.raises(
        ValueError,
        match=r"^chunk 1: Y_chunk must be None.*chunk 1 has Y \(3, 10\), chunk 0 had no Y",
    ):
        stream_moments([(X[:, :10], None), (X[:, :10], Y[:, :10])])
    with pytest.raises(ValueError, match="chunks is empty"):
        stream_moments([])
    with pytest.raises(ValueError, match="chunks is empty"):
        stream_moments(iter(()))
    with pytest.raises(TypeError, match="chunk 1: expected an \\(X_chunk, Y_chunk\\) pair"):
        stream_moments([(X, Y), X])
    with pytest.raises(TypeError, match="chunk 0: X must be real"):
        stream_moments([(X.astype(complex), Y)])


# ---------------------------------------------------------------- memory maps
@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_memmap_moments(tmp_path, order, dtype):
    rng = np.random.default_rng(8)
    X = rng.standard_normal((13, 5000)).astype(dtype)
    Y = rng.standard_normal((3, 5000)).astype(dtype)
    np.save(tmp_path / "X.npy", np.asarray(X, order=order))
    np.save(tmp_path / "Y.npy", np.asarray(Y, order=order))
    Xm = np.load(tmp_path / "X.npy", mmap_mode="r")
    Ym = np.load(tmp_path / "Y.npy", mmap_mode="r")
    assert Xm.flags.f_contiguous == (order == "F")
    ref = data_moments(np.array(X, dtype=np.float64), np.array(Y, dtype=np.float64))
    for cc in (None, 1, 333):
        assert_close(data_moments(Xm, Ym, chunk_columns=cc), ref, 1e-12)
    # views of the map: column slices (pread per row), row slices and strides (through the map)
    assert_close(
        data_moments(Xm[:, 17:], Ym[:, 17:], chunk_columns=400),
        data_moments(X[:, 17:].astype(float), Y[:, 17:].astype(float)),
        1e-12,
    )
    assert_close(
        data_moments(Xm[2:9], chunk_columns=400), data_moments(X[2:9].astype(float)), 1e-12
    )
    assert_close(
        data_moments(Xm[::-2, ::3], chunk_columns=100),
        data_moments(X[::-2, ::3].astype(float)),
        1e-12,
    )
    # np.memmap with a header offset, mode r+ and copy-on-write with unsaved changes
    raw = tmp_path / "raw.bin"
    with open(raw, "wb") as fh:
        fh.write(b"\0" * 24)
        fh.write(np.asarray(X, order=order).tobytes(order=order))
    for mode in ("r", "r+", "c"):
        mm = np.memmap(raw, dtype=dtype, mode=mode, offset=24, shape=X.shape, order=order)
        want = X.astype(np.float64)
        if mode == "c":
            mm[0, 0] = 1000.0  # only in this process's copy: must be seen
            want[0, 0] = 1000.0
        assert_close(data_moments(mm, chunk_columns=700), data_moments(want), 1e-12)


def test_memmap_nan_and_truncated_file(tmp_path):
    X = np.ones((4, 1000))
    X[2, 900] = np.nan
    np.save(tmp_path / "X.npy", X)
    with pytest.raises(ValueError, match="^X contains NaN or infinite values"):
        data_moments(np.load(tmp_path / "X.npy", mmap_mode="r"), chunk_columns=100)
    if sys.platform == "win32":
        return  # Windows refuses to shrink a file that is mapped
    path = tmp_path / "T.bin"
    np.ones((4, 1000)).tofile(path)
    mm = np.memmap(path, dtype=np.float64, mode="r", shape=(4, 1000))
    os.truncate(path, 8 * 2000)  # the file shrinks under the map
    with pytest.raises(ValueError, match="X: its file .* is shorter than the array it maps"):
        data_moments(mm, chunk_columns=100)


MEMMAP_RSS_SCRIPT = textwrap.dedent(
    """
    import sys
    import numpy as np
    import structdrop as sd

    def status(field):
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024

    X = np.load(sys.argv[1], mmap_mode="r")
    Y = np.load(sys.argv[2], mmap_mode="r")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    before = status("VmRSS")
    m = sd.data_moments(X, Y)
    print(status("VmHWM") - before, m.n_samples, float(m.gram[0, 0]), float(m.y_sq_norm))
    """
)


@pytest.mark.slow
@pytest.mark.resident_memory
@pytest.mark.parametrize("order", ["C", "F"])
def test_memmap_peak_resident_memory_is_bounded(tmp_path, order):
    """A 400 MB memory-mapped X: the resident set of the process grows by a chunk, not the file."""
    if not os.path.exists("/proc/self/clear_refs"):
        pytest.skip("needs Linux /proc/self/clear_refs")
    b, n = 500, 100_000
    x_path, y_path = tmp_path / "X.npy", tmp_path / "Y.npy"
    X = np.lib.format.open_memmap(
        x_path, mode="w+", dtype=np.float64, shape=(b, n), fortran_order=order == "F"
    )
    for start in range(0, n, 10_000):  # written in chunks: no 400 MB array in anonymous memory
        X[:, start : start + 10_000] = np.arange(start, start + 10_000) % 7
    X.flush()
    del X
    np.save(y_path, np.ones((2, n)))
    out = subprocess.run(
        [sys.executable, "-c", MEMMAP_RSS_SCRIPT, str(x_path), str(y_path)],
        capture_output=True,
        text=True,
        check=True,
    )
    growth, count, g00, ysq = (
        out.stdout.strip().splitlines()[-1].split()
    )  # last line: editable builds may log
    file_size = os.path.getsize(x_path)
    assert int(count) == n and float(ysq) == 2 * n
    assert float(g00) == sum((j % 7) ** 2 for j in range(n))
    assert int(growth) < file_size / 4, (int(growth) / 2**20, file_size / 2**20)


def test_import_structdrop_does_not_import_dask():
    code = "import structdrop, sys; print([m for m in ('dask', 'distributed') if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


# --- moments built by hand ----------------------------------------------------------------------


def _moments_family(seed):
    """Moments of adversarial data: rank-deficient X, Y inside X's row space, scales near the
    float64 ends, one sample, and Grams formed by a general product (not exactly symmetric)."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((6, 40))
    yield data_moments(X, rng.standard_normal((3, 40)))
    low = rng.standard_normal((6, 2)) @ rng.standard_normal((2, 40))  # rank 2 of 6
    yield data_moments(low, low[:2] * 3.0)  # Y in X's row space, Y X^T at its bound
    yield data_moments(X * 1e-150, X[:1] * 1e150)
    yield data_moments(X[:, :1], X[:2, :1])  # N = 1
    Xf = np.asfortranarray(rng.standard_normal((6, 5000)))
    gram = Xf @ np.ascontiguousarray(Xf.T)  # gemm with different layouts: rounding differs
    yield DataMoments(gram, None, 0.0, 5000)
    yield DataMoments(gram + 3e-3 * _rounding_bound(gram, 5000), None, 0.0, 5000)


def _rounding_bound(gram, n):
    u = np.finfo(np.float64).eps / 2
    root = np.sqrt(np.diagonal(gram))
    return np.triu(n * u * np.outer(root, root), 1)  # a one-sided (asymmetric) perturbation


@pytest.mark.parametrize("seed", range(3))
def test_moments_of_any_data_are_accepted(seed):
    for moments in _moments_family(seed):
        rebuilt = DataMoments(moments.gram, moments.cross, moments.y_sq_norm, moments.n_samples)
        rebuilt.check_semidefinite()
        if rebuilt.cross is not None:
            with np.errstate(over="ignore"):  # the error estimate overflows at scale 1e-150
                sd.global_min_from_moments(rebuilt, block_size=1, theta_bar=0.5, warn=False)


def test_impossible_moments_are_refused():
    rng = np.random.default_rng(4)
    X = rng.standard_normal((3, 50))
    Y = rng.standard_normal((2, 50))
    good = data_moments(X, Y)
    G, C, s, n = good.gram, good.cross, good.y_sq_norm, good.n_samples
    bad_nan = G.copy()
    bad_nan[0, 1] = np.nan
    asymmetric = G.copy()
    asymmetric[0, 1] += 1e-6 * np.sqrt(G[0, 0] * G[1, 1])
    # Indefinite with every 2 x 2 minor semidefinite: only the eigenvalues tell.
    indefinite = np.array([[1.0, 0.9, 0.9], [0.9, 1.0, -0.9], [0.9, -0.9, 1.0]])
    assert np.linalg.eigvalsh(indefinite)[0] < -0.5
    cases = [
        ((bad_nan, C, s, n), ValueError, "gram contains NaN"),
        ((G, np.where(C > 0, np.inf, C), s, n), ValueError, "cross contains NaN or infinite"),
        ((G, C, np.nan, n), ValueError, "y_sq_norm"),
        ((G, C, -1.0, n), ValueError, "y_sq_norm must be >= 0"),
        ((G, C, s, -5), ValueError, "n_samples must be >= 0"),
        ((G, C, s, 49.5), TypeError, "n_samples must be an integer"),
        ((G, C, s, 0), ValueError, "n_samples = 0 samples must be zero"),
        ((G[:, :2], C, s, n), ValueError, "gram must be square"),
        ((G, C[:, :2], s, n), ValueError, "cross must be a x b with b = 3"),
        ((G, C.T, s, n), ValueError, "cross must be a x b"),
        ((asymmetric, C, s, n), ValueError, "gram is not symmetric"),
        ((-G, C, s, n), ValueError, "negative diagonal"),
        ((G + 3 * np.abs(G).max() * (1 - np.eye(3)), C, s, n), ValueError, "not positive semi"),
        ((G, C, 1e-3 * s, n), ValueError, "cross and y_sq_norm are inconsistent"),
    ]
    for args, error, message in cases:
        with pytest.raises(error, match=message):
            DataMoments(*args)
    moments = DataMoments(indefinite, np.zeros((1, 3)), 1.0, 10)  # passes the O(b^2) checks
    with pytest.raises(ValueError, match="not positive semidefinite: smallest eigenvalue"):
        sd.global_min_from_moments(moments, block_size=1, theta_bar=0.5)
    with pytest.raises(ValueError, match="not positive semidefinite: smallest eigenvalue"):
        sd.objective_terms(sd.Dropout(0.5), np.ones((1, 1)), np.ones((3, 1)), moments)


def test_stream_of_empty_chunks_is_refused_as_data_moments_refuses_no_samples():
    X = np.ones((3, 0))
    with pytest.raises(ValueError, match="X must not be empty"):
        data_moments(X, np.ones((2, 0)))
    with pytest.raises(ValueError, match="X must not be empty"):
        stream_moments([(X, np.ones((2, 0))), (X, np.ones((2, 0)))])
    with pytest.raises(ValueError, match="X must not be empty"):
        stream_moments([(X, None)])
    one = stream_moments([(X, None), (np.ones((3, 2)), None), (X, None)])  # some empty: fine
    assert one.n_samples == 2


@pytest.mark.parametrize("entries", [1, 7, 1 << 20])
def test_moment_checks_in_row_blocks_see_every_entry(monkeypatch, entries):
    """The O(b^2) checks run in row blocks (bounded temporaries): a bad entry in any block, on
    either side of the diagonal, is found whatever the block size."""
    import structdrop.moments as moments_module

    monkeypatch.setattr(moments_module, "_CHECK_ENTRIES", entries)
    rng = np.random.default_rng(8)
    good = data_moments(rng.standard_normal((5, 30)))
    DataMoments(good.gram, None, 0.0, 30)
    for i, j in [(0, 4), (4, 0), (2, 3), (4, 3)]:
        bad = good.gram.copy()
        bad[i, j] += 1e-6 * np.sqrt(bad[i, i] * bad[j, j])
        with pytest.raises(ValueError, match="not symmetric"):
            DataMoments(bad, None, 0.0, 30)
