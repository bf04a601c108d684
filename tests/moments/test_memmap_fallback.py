"""Memory-mapped input on platforms without ``os.preadv`` (Windows, macOS before 11).

Every path that reads a memory map in column chunks (data_moments, dropblock_global_min on both
of its routes, MappedNpy for Dask workers, and ``structdrop solve``) runs here with ``os.preadv``
removed, and with ``os.preadv`` and ``os.pread`` removed, as on Windows. The fallback changes only
where the bytes come from, not the operands or the order of any sum, so every result is compared
bit for bit: with an in-RAM run on the same column chunks in the same memory order, and (where
this platform has ``os.preadv``) with the ``os.preadv`` route. A last check measures that the
fallback still reads from the file, not through the mapping: the resident set grows by a chunk.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import structdrop as sd
from structdrop._data.io import MappedNpy
from structdrop._data.memmap_chunks import ChunkReader
from structdrop._solver import row_space
from structdrop.cli import main
from structdrop.moments import data_moments, stream_moments

MISSING = {"no-preadv": ("preadv",), "no-preadv-no-pread": ("preadv", "pread")}


@pytest.fixture(params=sorted(MISSING))
def without(request, monkeypatch):
    """``os`` without the calls named by the parameter; returns the removed ones (None where this
    os has none already)."""
    removed = {name: getattr(os, name, None) for name in MISSING[request.param]}
    for name in removed:
        monkeypatch.delattr(os, name, raising=False)
    return removed


def on_preadv(removed, function, *args, **kwargs):
    """``function(*args, **kwargs)`` with os.preadv put back (None where this os has none)."""
    if removed["preadv"] is None:
        return None
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(os, "preadv", removed["preadv"], raising=False)
        return function(*args, **kwargs)


def assert_same_moments(got, want) -> None:
    np.testing.assert_array_equal(got.gram, want.gram)
    np.testing.assert_array_equal(got.cross, want.cross)
    assert got.y_sq_norm == want.y_sq_norm and got.n_samples == want.n_samples


def in_ram_chunks(X, Y, width, order):
    """The column chunks data_moments reads, copied in memory in the file's order: the same BLAS
    operands as the chunks read from the file."""
    return [
        (
            np.array(X[:, s : s + width], order=order),
            None if Y is None else np.array(Y[:, s : s + width], order=order),
        )
        for s in range(0, X.shape[1], width)
    ]


@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_data_moments_reads_the_file_without_preadv(tmp_path, without, order, dtype):
    rng = np.random.default_rng(19)
    X = np.asarray(rng.standard_normal((11, 3001)).astype(dtype), order=order)
    Y = np.asarray(rng.standard_normal((3, 3001)).astype(dtype), order=order)
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "Y.npy", Y)
    raw = tmp_path / "X.bin"
    with open(raw, "wb") as handle:  # a header offset that is not a multiple of the item size
        handle.write(b"\0" * 13)
        handle.write(X.tobytes(order=order))
    Ym = np.load(tmp_path / "Y.npy", mmap_mode="r")
    width = 250  # 13 chunks, the last one narrower
    for Xm in (
        np.load(tmp_path / "X.npy", mmap_mode="r"),
        np.memmap(raw, dtype=dtype, mode="r", offset=13, shape=X.shape, order=order),
    ):
        assert ChunkReader(Xm, width)._fd is not None, "read from the file, not through the map"
        got = data_moments(Xm, Ym, chunk_columns=width)
        assert_same_moments(got, stream_moments(in_ram_chunks(X, Y, width, order)))
        baseline = on_preadv(without, data_moments, Xm, Ym, chunk_columns=width)
        if baseline is not None:
            assert_same_moments(got, baseline)
        # a column slice of the map: reads at offsets that are not the start of a row
        assert_same_moments(
            data_moments(Xm[:, 7:], chunk_columns=width),
            stream_moments(in_ram_chunks(X[:, 7:], None, width, order)),
        )


@pytest.mark.parametrize("order", ["C", "F"])
def test_a_file_shorter_than_its_map_is_reported_without_preadv(tmp_path, without, order):
    if sys.platform == "win32":
        pytest.skip("Windows refuses to shrink a file that is mapped")
    path = tmp_path / "X.npy"
    np.save(path, np.ones((4, 1000), order=order))
    mapped = np.load(path, mmap_mode="r")
    os.truncate(path, os.path.getsize(path) - 8 * 1500)  # C: the last rows go; F: the last columns
    with pytest.raises(ValueError, match="X: its file .* is shorter than the array it maps"):
        data_moments(mapped, chunk_columns=100)


@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("cond", [5.0, 1e6])  # the moments route and the QR route
def test_global_min_with_a_mapped_X_without_preadv(tmp_path, monkeypatch, without, order, cond):
    rng = np.random.default_rng(int(cond))
    b, n = 25, 700
    left, _ = np.linalg.qr(rng.standard_normal((b, b)))
    right, _ = np.linalg.qr(rng.standard_normal((n, b)))
    X = np.asarray((left * np.geomspace(1.0, 1.0 / cond, b)) @ right.T, order=order)
    Y = rng.standard_normal((6, b)) @ X + 0.1 * rng.standard_normal((6, n))
    np.save(tmp_path / "X.npy", X)
    # QR chunks of 64 columns, in RAM and from the file alike: several reads at column offsets
    monkeypatch.setattr(row_space, "_QR_CHUNK_BYTES", 8 * (b + 6) * 64)
    want = sd.dropblock_global_min(Y, block_size=3, theta_bar=0.4, X=X)
    got = sd.dropblock_global_min(
        Y, block_size=3, theta_bar=0.4, X=np.load(tmp_path / "X.npy", mmap_mode="r")
    )
    assert got.route == want.route
    # one moments chunk (all columns, in the file's order) or the same QR chunks: the same bits
    assert got.objective == want.objective and got.residual == want.residual
    np.testing.assert_array_equal(got.coefficients, want.coefficients)


def test_mapped_npy_blocks_without_preadv(tmp_path, without):
    X = np.random.default_rng(3).standard_normal((9, 400))
    np.save(tmp_path / "X.npy", X)
    mapped = MappedNpy(tmp_path / "X.npy")
    np.testing.assert_array_equal(mapped[:, 37:211], X[:, 37:211])
    np.testing.assert_array_equal(mapped[2:7, 5:], X[2:7, 5:])


@pytest.mark.parametrize("order", ["C", "F"])
def test_cli_solve_with_mapped_files_without_preadv(tmp_path, capsys, without, order):
    rng = np.random.default_rng(5)
    X = np.asarray(rng.standard_normal((8, 500)), order=order)
    Y = np.asarray(
        rng.standard_normal((4, 8)) @ X + 0.1 * rng.standard_normal((4, 500)), order=order
    )
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "Y.npy", Y)
    out = tmp_path / "A.npy"
    args = ["-r", "2", "--theta", "0.6", "--json", "--out-A", str(out)]
    assert main(["solve", str(tmp_path / "Y.npy"), "--X", str(tmp_path / "X.npy"), *args]) == 0
    got = json.loads(capsys.readouterr().out)
    want = sd.dropblock_global_min(Y, block_size=2, theta_bar=0.6, X=X)
    assert got["objective"] == want.objective and got["residual"] == want.residual
    np.testing.assert_array_equal(np.load(out), want.coefficients @ X)
    assert main(["solve", str(tmp_path / "Y.npy"), "-r", "2", "--theta", "0.6", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["objective"] == sd.dropblock_global_min(Y, block_size=2, theta_bar=0.6).objective


RESIDENT_SCRIPT = textwrap.dedent(
    """
    import os, sys
    for name in ("preadv", "pread"):
        if hasattr(os, name):
            delattr(os, name)
    import numpy as np
    import structdrop as sd

    def kib(field):
        with open("/proc/self/status") as f:
            return next(int(l.split()[1]) for l in f if l.startswith(field + ":"))

    X = np.load(sys.argv[1], mmap_mode="r")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # the peak resident set starts again from here
    before = kib("VmRSS")
    m = sd.data_moments(X, chunk_columns=1000)
    print((kib("VmHWM") - before) * 1024, float(m.gram[0, 0]))
    """
)


@pytest.mark.resident_memory
@pytest.mark.parametrize("order", ["C", "F"])
def test_fallback_keeps_the_resident_set_to_a_chunk(tmp_path, order):
    """An 80 MB C-ordered map read by columns through the mapping would become resident whole;
    the fallback reads 1.6 MB chunks from the file instead."""
    if not os.path.exists("/proc/self/clear_refs"):
        pytest.skip("needs Linux /proc/self/clear_refs")
    b, n = 200, 50_000
    path = tmp_path / "X.npy"
    X = np.lib.format.open_memmap(
        path, mode="w+", dtype=np.float64, shape=(b, n), fortran_order=order == "F"
    )
    X[:] = (np.arange(n) % 5)[None, :]
    X.flush()
    del X
    out = subprocess.run(
        [sys.executable, "-c", RESIDENT_SCRIPT, str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    growth, g00 = out.stdout.strip().splitlines()[-1].split()  # last line: editable builds log
    assert float(g00) == sum((j % 5) ** 2 for j in range(n))
    assert int(growth) < os.path.getsize(path) / 4, int(growth) / 2**20
