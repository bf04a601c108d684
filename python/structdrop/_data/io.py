"""Reading and writing matrices for the command line: ``.npy``, ``.npz`` and ``.csv`` files.

Every failure (missing file, unreadable or corrupt content, unsupported suffix, a missing ``.npz``
key, non-numeric text) is raised as :class:`InputError` (a ValueError) whose message names the
file and says what was expected, so that the command line can print it as one line.
Pickled objects are never loaded (``allow_pickle=False``).
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from .atomic_write import replacing
from .memmap_chunks import ChunkReader

__all__ = [
    "InputError",
    "MappedNpy",
    "SUPPORTED_SUFFIXES",
    "check_npy_payload",
    "load_matrix",
    "save_matrix",
]

SUPPORTED_SUFFIXES = (".npy", ".npz", ".csv")


class InputError(ValueError):
    """A file could not be read as a numeric array (message names the file)."""


def _suffix(path: Path, what: str) -> str:
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise InputError(
            f"{what} '{path}': unsupported file type {suffix or '(no suffix)'!r}; use .npy, .npz "
            "or .csv"
        )
    return suffix


def _read_csv(path: Path) -> np.ndarray:
    """Comma-separated numbers, one matrix row per line; '#' comments and one header line
    allowed."""
    with open(path, encoding="utf-8") as handle:
        lines = [line.split("#", 1)[0].strip() for line in handle]
    lines = [line for line in lines if line]
    if not lines:
        raise InputError(
            f"'{path}' is empty: expected comma-separated numbers, one matrix row per line"
        )

    def parse(line: str, number: int) -> list[float]:
        try:
            return [float(field) for field in line.split(",")]
        except ValueError:
            raise InputError(
                f"'{path}' line {number}: not comma-separated numbers: {line[:60]!r}"
            ) from None

    try:
        parse(lines[0], 1)
        start = 0
    except InputError:
        start = 1  # a header line
    rows = [parse(line, start + i + 1) for i, line in enumerate(lines[start:])]
    if not rows:
        raise InputError(f"'{path}' has a header line but no numbers")
    widths = {len(row) for row in rows}
    if len(widths) != 1:
        raise InputError(f"'{path}': rows have different numbers of columns {sorted(widths)}")
    return np.asarray(rows, dtype=np.float64)


def check_npy_payload(file: Path, what: str) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype from a .npy header, after checking that the file holds the whole payload.

    A header that promises more bytes than the file has (a truncated download, a header written
    for another array) is an :class:`InputError` before anything is allocated or mapped.
    """
    try:
        with open(file, "rb") as handle:
            version = np.lib.format.read_magic(handle)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(handle)
            else:
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(handle)
            offset = handle.tell()
    except (OSError, ValueError, EOFError) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"{what} '{file}': cannot read it as .npy: {detail}") from None
    if dtype.hasobject:
        raise InputError(
            f"{what} '{file}': holds Python objects (dtype {dtype}); only numeric arrays are read"
        )
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    size = file.stat().st_size - offset
    if size < expected:
        raise InputError(
            f"{what} '{file}': truncated: its header describes a "
            f"{'x'.join(map(str, shape)) or 'scalar'} {dtype} array ({expected} bytes) but the "
            f"file holds {size} bytes of data"
        )
    return tuple(shape), dtype


class MappedNpy:
    """A .npy file read lazily by memory map, that pickles as its path.

    Slicing returns an in-memory copy of the slice only. Handing this object to
    ``dask.array.from_array`` lets every worker of a cluster read its own column blocks from the
    file (same machine or a shared file system) instead of shipping the data through the scheduler.
    """

    def __init__(self, path: str | os.PathLike[str], what: str = "input") -> None:
        self.path = Path(path)
        self.shape, self.dtype = check_npy_payload(self.path, what)
        self.ndim = len(self.shape)
        self._array: np.ndarray | None = None

    def _mapped(self) -> np.ndarray:
        if self._array is None:
            self._array = np.load(self.path, mmap_mode="r", allow_pickle=False)
        return self._array

    def __getitem__(self, index: tuple[slice, ...] | slice) -> np.ndarray:
        view = self._mapped()[index]
        if isinstance(view, np.ndarray) and view.ndim == 2:
            # Read the block with pread: touching a C-ordered map by columns would make most of
            # the file resident in the worker (see structdrop._data.memmap_chunks).
            reader = ChunkReader(view, view.shape[1])
            try:
                return np.array(reader.read(str(self.path), slice(0, view.shape[1])))
            finally:
                reader.release()
                reader.close()
        return np.array(view)

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (MappedNpy, (str(self.path),))


def load_matrix(
    path: str | os.PathLike[str],
    key: str | None = None,
    what: str = "input",
    *,
    mmap: bool = False,
) -> np.ndarray:
    """Read a numeric array from ``path`` (.npy, .npz or .csv).

    Args:
        path: the file. ``.npz`` archives give their array ``key``, or their first array when
            ``key`` is None; ``.csv`` is comma-separated numbers, one row per line (an optional
            header line and ``#`` comments are skipped).
        key: name of the array inside a ``.npz`` archive (only for ``.npz``).
        what: how the message of an error names the file (e.g. ``"Y"``).
        mmap: map a ``.npy`` file read-only instead of reading it (pages are read on demand and
            are page cache, not anonymous memory); other formats are read whole.

    Returns:
        The array as stored (no dtype conversion here; the API validates it).

    Raises:
        InputError: the file cannot be read or parsed; the message names the file and the problem.
    """
    file = Path(path)
    suffix = _suffix(file, what)
    if key is not None and suffix != ".npz":
        raise InputError(f"{what} '{file}': a key ({key!r}) only applies to .npz archives")
    if not file.exists():
        raise InputError(f"{what} '{file}': no such file")
    if file.is_dir():
        raise InputError(f"{what} '{file}' is a directory, not a file")
    try:
        if suffix == ".csv":
            return _read_csv(file)
        if suffix == ".npy":
            check_npy_payload(file, what)
            if mmap:
                return np.load(file, mmap_mode="r", allow_pickle=False)
            return np.asarray(np.load(file, allow_pickle=False))
        with np.load(file, allow_pickle=False) as archive:
            names = list(archive.files)
            if not names:
                raise InputError(f"{what} '{file}': the .npz archive holds no arrays")
            if key is None:
                return np.asarray(archive[names[0]])
            if key not in names:
                raise InputError(
                    f"{what} '{file}': no array named {key!r} (the archive holds "
                    f"{', '.join(names)})"
                )
            return np.asarray(archive[key])
    except InputError as exc:
        if str(exc).startswith(f"{what} "):
            raise
        raise InputError(f"{what} {exc}") from None
    except MemoryError:
        raise InputError(
            f"{what} '{file}': too large to read into memory; store it as .npy to have it mapped"
        ) from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, UnicodeDecodeError) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"{what} '{file}': cannot read it as {suffix}: {detail}") from None


def save_matrix(path: str | os.PathLike[str], array: np.ndarray, key: str = "A") -> Path:
    """Write ``array`` to ``path`` by its suffix: .npy, .npz (under ``key``) or .csv
    (full precision).

    The file is written beside ``path`` and renamed onto it when complete, so a failure leaves
    any earlier file at ``path`` untouched.

    Returns:
        The path written.

    Raises:
        InputError: unsupported suffix or the file cannot be written.
    """
    file = Path(path)
    suffix = _suffix(file, "output")
    try:
        # Through an open handle: given a name, np.save and np.savez append their own suffix
        # when the name lacks it in lower case.
        with replacing(file) as partial, open(partial, "wb") as handle:
            if suffix == ".npy":
                np.save(handle, array)
            elif suffix == ".npz":
                # np.savez's stub types the keyword arrays like its allow_pickle flag (bool).
                arrays: dict[str, Any] = {key: array}
                np.savez(handle, **arrays)
            else:
                np.savetxt(handle, np.atleast_2d(array), delimiter=",", fmt="%.17g")
    except OSError as exc:
        raise InputError(f"output '{file}': cannot write it: {exc.strerror or exc}") from None
    return file
