"""The one loop over column chunks (moments, the QR route, the CLI's A* writer): coverage,
files closed however the loop ends, and read errors that name the array."""

from __future__ import annotations

import errno

import numpy as np
import pytest

from structdrop._data import memmap_chunks
from structdrop._data.memmap_chunks import ChunkReader, ChunkReadError, column_chunks


@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("n, width", [(1, 1), (7, 3), (12, 4), (5, 9)])
def test_chunks_cover_every_column_once_in_order(tmp_path, order, n, width):
    rng = np.random.default_rng(n * width)
    X = np.asarray(rng.standard_normal((3, n)), order=order)
    np.save(tmp_path / "X.npy", X)
    mapped = np.load(tmp_path / "X.npy", mmap_mode="r")
    Y = rng.standard_normal((2, n))
    seen = []
    for cols, (xc, yc, nothing) in column_chunks([("X", mapped), ("Y", Y), ("Z", None)], width):
        assert nothing is None and 0 < cols.stop - cols.start <= width
        np.testing.assert_array_equal(xc, X[:, cols])  # pread from the file
        np.testing.assert_array_equal(yc, Y[:, cols])
        seen.extend(range(cols.start, cols.stop))
    assert seen == list(range(n))


def test_files_are_closed_when_the_loop_breaks(tmp_path, monkeypatch):
    np.save(tmp_path / "X.npy", np.ones((2, 10)))
    mapped = np.load(tmp_path / "X.npy", mmap_mode="r")
    closed = []
    original = ChunkReader.close
    monkeypatch.setattr(ChunkReader, "close", lambda self: (closed.append(1), original(self)))
    chunks = column_chunks([("X", mapped)], 3)
    for _ in chunks:
        break
    chunks.close()  # what CPython does as soon as the loop's iterator is dropped
    assert closed == [1]


def test_a_read_error_names_the_array(tmp_path, monkeypatch):
    np.save(tmp_path / "X.npy", np.ones((2, 10)))
    mapped = np.load(tmp_path / "X.npy", mmap_mode="r")

    def failing(self, name, cols):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(memmap_chunks.ChunkReader, "read", failing)
    with pytest.raises(ChunkReadError, match="^X: cannot read it: Input/output error$"):
        for _ in column_chunks([("X", mapped)], 4):
            pass
