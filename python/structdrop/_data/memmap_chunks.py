"""Column chunks of a NumPy memory map, read with pread instead of through the mapping.

Reading a memory-mapped b x N array through its mapping makes every touched page resident in the
process, and on current Linux kernels (large page-cache folios) touching one element of each row
of a C-ordered file maps practically the whole file: the resident set grows to the file's size
even when reading a narrow column chunk. Those pages are file-backed (reclaimable page cache, not
anonymous memory), but they count in the resident set, which is what memory limits and users see.

So, where the layout allows, chunks are read from the file itself into one reused chunk buffer:
the resident set then grows by one chunk only. The reads go straight into the buffer, with
``os.preadv`` where the platform has it (Linux, BSD, macOS 11 and later) and otherwise (Windows)
with a seek and ``readinto`` on the unbuffered file: no intermediate bytes object, no second copy.
Layouts handled:

  * rows contiguous (C-ordered files, and column slices of them): one pread per row per chunk;
  * Fortran-contiguous (F-ordered files): one pread per chunk.

Other layouts (and copy-on-write maps, mode 'c', whose in-memory changes the file does not have)
are read through the mapping, whose pages are dropped from the process after each chunk
(``madvise(MADV_DONTNEED)``: the data stay in the page cache and on disk).

:func:`column_chunks` is the one loop over column chunks (the moments, the QR route's pass, the
command line's writing of A* and the scan for NaN/inf all use it).
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Iterator, Sequence
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

__all__ = ["ChunkReadError", "ChunkReader", "Matrix2D", "column_chunks", "is_memory_mapped"]


@runtime_checkable
class Matrix2D(Protocol):
    """Data read in column chunks: anything with a shape, a dtype and NumPy-style slicing, such as
    an ndarray, a memory map or a dask array (``isinstance`` checks these three attributes)."""

    @property
    def shape(self) -> tuple[int, ...]: ...

    @property
    def dtype(self) -> Any: ...

    def __getitem__(self, key: Any, /) -> Any: ...


# Modes whose mapping is shared with the file: what pread returns is what the array holds.
_SHARED_MODES = ("r", "r+", "w+")


def _root_memmap(array: object) -> np.memmap | None:
    obj: object = array
    while obj is not None:
        if isinstance(obj, np.memmap):
            return obj
        obj = getattr(obj, "base", None)
    return None


def is_memory_mapped(array: np.ndarray) -> bool:
    """True when ``array`` is (a view of) a NumPy memory map or another mmap."""
    obj: object = array
    while obj is not None:
        if isinstance(obj, (np.memmap, mmap.mmap)):
            return True
        obj = getattr(obj, "base", None)
    return False


class ChunkReader:
    """Reads column chunks of one memory-mapped 2-D array (see the module docstring)."""

    def __init__(self, array: Matrix2D, width: int) -> None:
        self.array = array
        self._fd: int | None = None
        self._handle: mmap.mmap | None = None
        if not isinstance(array, np.ndarray):
            return  # not a NumPy array (a dask array...): sliced as it is
        root = _root_memmap(array)
        handle = getattr(root, "_mmap", None) if root is not None else None
        if root is None or not isinstance(handle, mmap.mmap) or root.mode not in _SHARED_MODES:
            return  # plain array, or copy-on-write: read in place
        self._handle = handle if hasattr(mmap, "MADV_DONTNEED") else None
        rows, cols = array.shape
        item = array.itemsize
        s0, s1 = array.strides
        order: Literal["C", "F"]
        if s1 == item and s0 >= item * cols:
            order = "C"
        elif s0 == item and s1 == item * rows:
            order = "F"
        else:
            return  # other strides: through the mapping, pages released per chunk
        filename = getattr(root, "filename", None)
        if not filename:
            return
        # The mapping starts at the file offset rounded down to the allocation granularity
        # (np.memmap's construction); the array's first element lies that many bytes further in.
        base = np.frombuffer(handle, dtype=np.uint8).ctypes.data
        start = root.offset - root.offset % mmap.ALLOCATIONGRANULARITY
        self._position = start + (array.ctypes.data - base)
        self._order = order
        self._item, self._row_stride = item, s0
        self._buffer = np.empty((rows, min(width, cols)), dtype=array.dtype, order=order)
        # Unbuffered and binary (O_BINARY on Windows, where os.open would default to text mode).
        self._file = open(filename, "rb", buffering=0)  # noqa: SIM115 - closed by close()
        self._fd = self._file.fileno()
        self._preadv = getattr(os, "preadv", None)

    def read(self, name: str, cols: slice) -> np.ndarray:
        """The columns ``cols`` of the array (a view of the reused buffer when read from the
        file)."""
        if self._fd is None:
            return self.array[:, cols]
        rows = self.array.shape[0]
        item = self._item
        width = cols.stop - cols.start
        out = self._buffer[:, :width]
        if self._order == "F":
            views = [out.reshape(-1, order="F").view(np.uint8).data]
            offsets = [self._position + cols.start * rows * item]
        else:
            views = [out[i].view(np.uint8).data for i in range(rows)]
            offsets = [
                self._position + i * self._row_stride + cols.start * item for i in range(rows)
            ]
        for view, offset in zip(views, offsets):
            if not self._read_at(view, offset):
                raise ValueError(
                    f"{name}: its file {self._root_name()} is shorter than the array it maps"
                )
        return out

    def _read_at(self, view: memoryview, offset: int) -> bool:
        """Fill ``view`` from the file at ``offset``; False when the file ends first. A read may
        return fewer bytes than asked (at most about 2 GiB per call on Linux and Windows)."""
        done = 0
        while done < view.nbytes:
            part = view[done:]
            if self._preadv is not None:
                got = self._preadv(self._fd, [part], offset + done)
            else:
                self._file.seek(offset + done)
                got = self._file.readinto(part)
            if not got:
                return False
            done += got
        return True

    def _root_name(self) -> str:
        root = _root_memmap(self.array)
        return repr(getattr(root, "filename", None))

    def release(self) -> None:
        """Drop the mapped pages read so far from the process (reading through the mapping only)."""
        if self._fd is None and self._handle is not None:
            try:
                self._handle.madvise(mmap.MADV_DONTNEED)
            except (OSError, ValueError):  # pragma: no cover - platform without madvise support
                pass

    def close(self) -> None:
        if self._fd is not None:
            self._file.close()
            self._fd = None


class ChunkReadError(OSError):
    """Reading a chunk of an input failed (an I/O error of its file): "NAME: cannot read it"."""


def column_chunks(
    arrays: Sequence[tuple[str, Matrix2D | None]], width: int
) -> Iterator[tuple[slice, list[Any]]]:
    """The columns of ``arrays`` (name, array or None; all with the same column count) in chunks
    of at most ``width`` columns: yields (columns, [chunk of each array, None for None]).

    Each array is read through a :class:`ChunkReader` (memory maps with pread into one reused
    buffer: a chunk is only valid until the next one is asked for). The mapped pages a chunk used
    are dropped once the caller asks for the next chunk, and the files are closed when the loop
    ends, breaks or raises. An I/O error while reading raises :class:`ChunkReadError` naming the
    array.
    """
    readers = [(name, None if a is None else ChunkReader(a, width)) for name, a in arrays]
    n = next(a.shape[1] for _, a in arrays if a is not None)
    try:
        for start in range(0, n, width):
            cols = slice(start, min(n, start + width))
            chunks = []
            for name, reader in readers:
                try:
                    chunks.append(None if reader is None else reader.read(name, cols))
                except OSError as exc:
                    raise ChunkReadError(f"{name}: cannot read it: {exc.strerror or exc}") from exc
            yield cols, chunks
            del chunks
            for _, reader in readers:
                if reader is not None:
                    reader.release()
    finally:
        for _, reader in readers:
            if reader is not None:
                reader.close()
