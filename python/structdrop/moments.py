"""Data moments X X^T, Y X^T, ||Y||^2: computed at BLAS speed, merged exactly, streamed
and distributed.

Every deterministic objective of the package (Lemma 1, Lemma 10, the corrected DropConnect
identity) and the global minimum depend on the data X (b x N) and targets Y (a x N) only through

    X X^T (b x b),   Y X^T (a x b),   ||Y||_F^2,   N.

These are sums over the samples (the columns), so moments of disjoint sets of samples add exactly
(up to floating-point rounding): :class:`DataMoments` supports ``+`` and ``sum(...)``, which is what
streaming (:func:`stream_moments`), chunked reading of memory-mapped files and the Dask adapter
are built on.

Arithmetic: float64 throughout. The Gram matrix is a symmetric rank-k update (BLAS syrk, half the
multiply-adds of a general product; NumPy dispatches ``Xc @ Xc.T`` on one buffer to it), Y X^T a
general product (gemm), both multithreaded by NumPy's BLAS. Inputs that are not float64 (float32,
integers) are converted one column chunk at a time, never as a float64 copy of all of X.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable, Iterator, Sized
from dataclasses import dataclass

import numpy as np

from ._memmap_chunks import ChunkReader, is_memory_mapped
from ._progress import ProgressBar, progress_bar, progress_delay
from ._results import ResultEquality
from ._validation import as_float_array, as_int, as_nonnegative_float, as_real_array

__all__ = ["DataMoments", "data_moments", "stream_moments"]

# Entries of gram checked at once by DataMoments (row blocks: bounded temporaries for a large b).
_CHECK_ENTRIES = 1 << 20

#: Default size (bytes) of one float64 column chunk of X and Y together, when chunks are needed.
CHUNK_BYTES = 64 * 2**20


@dataclass(frozen=True, eq=False)
class DataMoments(ResultEquality):
    """Sufficient statistics of data X (b x N) and targets Y (a x N) for every
    deterministic objective.

    Moments of disjoint sets of samples merge exactly with ``+`` (Grams, cross products, squared
    norms and sample counts add), and ``sum(list_of_moments)`` works.

    Moments built by hand are checked when constructed (O(b^2 + a b)): finite float arrays of
    matching shapes, an integer N >= 0 (all moments zero when N = 0), ||Y||^2 >= 0, and the
    properties every X X^T and Y X^T have up to the rounding of forming them from N samples
    (each entry a dot product of length N, error at most gamma_N = N u / (1 - N u) times the
    product of the norms, u = 2^-53): X X^T symmetric, ``|(X X^T)_ij|`` <= sqrt(G_ii G_jj)
    and ``|(Y X^T)_ij|`` <= sqrt(||Y||^2 G_jj) (Cauchy-Schwarz), each to 2 gamma_N of that
    bound. Whether X X^T is positive semidefinite needs its eigenvalues (O(b^3));
    :meth:`check_semidefinite` does that once per object, and the objectives and the global
    minimum call it.

    Attributes:
        gram: X X^T, shape (b, b).
        cross: Y X^T, shape (a, b); None when the moments were computed without targets.
        y_sq_norm: ||Y||_F^2 (0.0 without targets).
        n_samples: N, the number of columns of X.

    Raises:
        TypeError: non-numeric arrays, or a sample count that is not an integer.
        ValueError: NaN/inf, a gram that is not square, a cross whose column count is not b,
            y_sq_norm < 0, n_samples < 0, nonzero moments of no samples, or moments that no data
            can have (an asymmetric gram, or an entry beyond the Cauchy-Schwarz bound).

    Example:
        >>> import numpy as np, structdrop as sd
        >>> m = sd.DataMoments(np.eye(2), np.ones((1, 2)), y_sq_norm=2.0, n_samples=2)
        >>> m.in_features
        2
    """

    gram: np.ndarray
    cross: np.ndarray | None
    y_sq_norm: float
    n_samples: int

    def __post_init__(self) -> None:
        gram = as_float_array("gram", self.gram, ndim=2, allow_empty=True)
        if gram.shape[0] != gram.shape[1] or gram.shape[0] == 0:
            raise ValueError(f"gram must be square b x b with b >= 1, got shape {gram.shape}")
        cross = self.cross
        if cross is not None:
            cross = as_float_array("cross", cross, ndim=2, allow_empty=True)
            if cross.shape[1] != gram.shape[0] or cross.shape[0] == 0:
                raise ValueError(
                    f"cross must be a x b with b = {gram.shape[0]} (the size of gram) and "
                    f"a >= 1, got shape {cross.shape}"
                )
        y_sq = as_nonnegative_float("y_sq_norm", self.y_sq_norm)  # finite, >= 0
        n = as_int("n_samples", self.n_samples, minimum=0)
        object.__setattr__(self, "gram", gram)
        object.__setattr__(self, "cross", cross)
        object.__setattr__(self, "y_sq_norm", y_sq)
        object.__setattr__(self, "n_samples", n)
        object.__setattr__(self, "_semidefinite", False)
        if n == 0:
            if gram.any() or (cross is not None and cross.any()) or y_sq != 0.0:
                raise ValueError(
                    "moments of n_samples = 0 samples must be zero (gram, cross and y_sq_norm)"
                )
            return
        if np.diagonal(gram).min() < 0.0:
            raise ValueError("gram has a negative diagonal entry: it is not X X^T for any X")
        slack = 4.0 * _rounding_gamma(n)  # 2 gamma_N / (1 - gamma_N) with room for the diagonal
        root = np.sqrt(np.diagonal(gram))
        rows = max(1, _CHECK_ENTRIES // gram.shape[0])  # row blocks: O(b) extra memory per row
        for start in range(0, gram.shape[0], rows):
            block = slice(start, start + rows)
            bound = np.outer(root[block], root)
            if (np.abs(gram[block] - gram[:, block].T) > slack * bound).any():
                raise ValueError(
                    "gram is not symmetric (beyond the rounding of forming X X^T from "
                    f"n_samples = {n} samples): it is not X X^T for any X"
                )
            if (np.abs(gram[block]) > (1.0 + slack) * bound).any():
                raise ValueError(
                    "gram is not positive semidefinite: an entry exceeds sqrt(G_ii G_jj) (beyond "
                    "rounding), so it is not X X^T for any X"
                )
        if cross is not None and (np.abs(cross) > (1.0 + slack) * math.sqrt(y_sq) * root).any():
            raise ValueError(
                "cross and y_sq_norm are inconsistent: |(Y X^T)_ij| exceeds "
                "sqrt(||Y||^2 (X X^T)_jj) (beyond rounding), so no data have these moments"
            )

    def check_semidefinite(self) -> None:
        """Raise unless gram is positive semidefinite up to rounding (once per object, O(b^3)).

        A computed X X^T differs from the exact one by E with ``|E_ij|`` <= gamma_N sqrt(G_ii G_jj),
        so ||E||_2 <= gamma_N trace(G); the eigenvalue solver adds about b u ||G||_2 <= b u
        trace(G). Eigenvalues below -2 (gamma_N + b u) trace(G) cannot come from any data.

        Raises:
            ValueError: gram has an eigenvalue below that bound.

        Example:
            >>> import numpy as np, structdrop as sd
            >>> sd.DataMoments(np.eye(2), None, 0.0, 2).check_semidefinite()
        """
        if getattr(self, "_semidefinite", False):  # set in __post_init__ and below
            return
        gram = self.gram
        smallest = float(np.linalg.eigvalsh(gram)[0]) if gram.size else 0.0
        u = np.finfo(np.float64).eps / 2
        limit = 2.0 * (_rounding_gamma(self.n_samples) + gram.shape[0] * u) * np.trace(gram)
        if smallest < -limit:
            raise ValueError(
                f"gram is not positive semidefinite: smallest eigenvalue {smallest:.3e} is below "
                f"-{limit:.3e}, the rounding of forming X X^T from n_samples = "
                f"{self.n_samples} samples, so it is not X X^T for any X"
            )
        object.__setattr__(self, "_semidefinite", True)

    @property
    def in_features(self) -> int:
        """b, the number of rows of X."""
        return int(self.gram.shape[0])

    @property
    def out_features(self) -> int | None:
        """a, the number of rows of Y (None without targets)."""
        return None if self.cross is None else int(self.cross.shape[0])

    @classmethod
    def zeros(cls, in_features: int, out_features: int | None = None) -> DataMoments:
        """The moments of no samples (the neutral element of ``+``) for b = ``in_features`` rows of
        X and a = ``out_features`` rows of Y (None: without targets)."""
        b = as_int("in_features", in_features, minimum=1)
        cross = None
        if out_features is not None:
            cross = np.zeros((as_int("out_features", out_features, minimum=1), b))
        return cls(gram=np.zeros((b, b)), cross=cross, y_sq_norm=0.0, n_samples=0)

    def _describe(self) -> str:
        cross = "no targets" if self.cross is None else f"cross {self.cross.shape}"
        return f"gram {self.gram.shape}, {cross}"

    def __add__(self, other: object) -> DataMoments:
        if isinstance(other, int) and not isinstance(other, bool) and other == 0:
            return self
        if not isinstance(other, DataMoments):
            return NotImplemented
        if (
            self.gram.shape != other.gram.shape
            or (self.cross is None) != (other.cross is None)
            or (
                self.cross is not None
                and other.cross is not None
                and self.cross.shape != other.cross.shape
            )
        ):
            raise ValueError(
                "cannot merge moments of differently shaped data: "
                f"{self._describe()} and {other._describe()}"
            )
        gram = self.gram + other.gram
        cross = None if self.cross is None else self.cross + other.cross
        y_sq = self.y_sq_norm + other.y_sq_norm
        if not (
            np.isfinite(gram).all()
            and (cross is None or np.isfinite(cross).all())
            and np.isfinite(y_sq)
        ):
            raise ValueError("the merged moments overflow float64")
        return DataMoments(
            gram=gram,
            cross=cross,
            y_sq_norm=float(y_sq),
            n_samples=self.n_samples + other.n_samples,
        )

    def __radd__(self, other: object) -> DataMoments:
        # sum() starts from 0; anything else is the same commutative merge.
        return self.__add__(other)


def _rounding_gamma(n: int) -> float:
    """gamma_n = n u / (1 - n u): the relative error bound of a float64 dot product of length n
    (Higham, Accuracy and Stability, 3.1), for any summation order; inf once n u >= 1/2."""
    nu = n * np.finfo(np.float64).eps / 2
    return nu / (1.0 - nu) if nu < 0.5 else math.inf


# ----------------------------------------------------------------------------- array checks
def _blas_ready(array: np.ndarray) -> bool:
    """True when BLAS can read the float64 ``array`` in place (one unit stride, the other a
    multiple)."""
    if array.dtype != np.float64 or not array.flags.aligned:
        return False
    item = array.itemsize
    s0, s1 = array.strides
    rows, cols = array.shape
    if s1 == item and s0 % item == 0 and s0 >= item * max(cols, 1):
        return True
    return s0 == item and s1 % item == 0 and s1 >= item * max(rows, 1)


def _as_float64_block(block: np.ndarray) -> np.ndarray:
    # One column chunk: converted (float32, integers) or made BLAS-readable (negative or doubly
    # strided views); bounded by the chunk size, never a copy of all of X.
    if block.dtype != np.float64:
        return block.astype(np.float64)
    return block if _blas_ready(block) else np.ascontiguousarray(block)


def _is_dask(value: object) -> bool:
    # Never imports dask: a dask array can only exist when dask is already imported.
    return "dask" in sys.modules and type(value).__module__.split(".")[0] == "dask"


# ----------------------------------------------------------------------------- accumulation
class _Accumulator:
    """Running X X^T, Y X^T, ||Y||^2, N over column blocks (float64, BLAS)."""

    def __init__(self, b: int, a: int | None) -> None:
        self.gram = np.zeros((b, b))
        self.cross = None if a is None else np.zeros((a, b))
        self.y_sq = 0.0
        self.n = 0
        self._scratch = np.empty((b, b))

    def add(self, xb: np.ndarray, yb: np.ndarray | None) -> None:
        # Overflow and NaN are detected afterwards and raised as ValueErrors, not warned about.
        with np.errstate(all="ignore"):
            # xb @ xb.T on one buffer is a syrk in NumPy (the full symmetric result is filled in).
            np.matmul(xb, xb.T, out=self._scratch)
            self.gram += self._scratch
            if yb is not None:
                self.cross += yb @ xb.T
                self.y_sq += float(np.einsum("ij,ij->", yb, yb))
        self.n += xb.shape[1]

    def diagonal_finite(self) -> tuple[bool, bool]:
        """(X part finite, Y part finite): a NaN or inf entry of X always reaches diag(X X^T), one
        of Y always reaches ||Y||^2, so these O(b) checks detect bad input without scanning it."""
        x_ok = bool(np.isfinite(np.diagonal(self.gram)).all())
        return x_ok, bool(np.isfinite(self.y_sq))

    def result(self, prefix: str = "") -> DataMoments:
        # Cauchy-Schwarz bounds the off-diagonal entries by the diagonal, but rounding can still
        # overflow right at the edge: the final, O(b^2 + ab), check covers that.
        if not np.isfinite(self.gram).all():
            raise ValueError(f"{prefix}X is too large: X X^T overflows float64")
        if self.cross is not None and not (
            np.isfinite(self.cross).all() and np.isfinite(self.y_sq)
        ):
            raise ValueError(f"{prefix}Y is too large: Y X^T or ||Y||^2 overflows float64")
        return DataMoments(
            gram=self.gram, cross=self.cross, y_sq_norm=float(self.y_sq), n_samples=int(self.n)
        )


def _column_chunks(n: int, width: int) -> Iterator[slice]:
    for start in range(0, n, width):
        yield slice(start, min(n, start + width))


def _default_chunk_columns(x: np.ndarray, y: np.ndarray | None) -> int:
    a = 0 if y is None else y.shape[0]
    in_place = not is_memory_mapped(x) and (y is None or not is_memory_mapped(y))
    if in_place and _blas_ready(x) and (y is None or _blas_ready(y)):
        return max(1, x.shape[1])  # float64 in RAM, readable by BLAS: one call, no extra memory
    return max(1, CHUNK_BYTES // (8 * (x.shape[0] + a)))


def _has_nonfinite(name: str, array: np.ndarray, width: int) -> bool:
    """Scan ``array`` (column chunks, bounded memory) for NaN/inf; only run after a failure."""
    reader = ChunkReader(array, width)
    try:
        for cols in _column_chunks(array.shape[1], width):
            bad = not np.isfinite(reader.read(name, cols)).all()
            reader.release()
            if bad:
                return True
        return False
    finally:
        reader.close()


def _accumulate(
    acc: _Accumulator,
    x: np.ndarray,
    y: np.ndarray | None,
    width: int,
    prefix: str = "",
    bar: ProgressBar | None = None,
) -> None:
    """Add the moments of (x, y) to ``acc`` in column chunks of ``width``; raise on
    NaN/inf/overflow."""
    x_reader = ChunkReader(x, width)
    y_reader = None if y is None else ChunkReader(y, width)
    readers = [x_reader] if y_reader is None else [x_reader, y_reader]
    try:
        for cols in _column_chunks(x.shape[1], width):
            xb = _as_float64_block(x_reader.read(f"{prefix}X", cols))
            yb = None if y_reader is None else _as_float64_block(y_reader.read(f"{prefix}Y", cols))
            acc.add(xb, yb)
            del xb, yb  # free this chunk's conversion before the next one is made
            for reader in readers:
                reader.release()
            if bar is not None:
                bar.update(cols.stop - cols.start)
    finally:
        for reader in readers:
            reader.close()
    x_ok, y_ok = acc.diagonal_finite()
    if not x_ok:
        if _has_nonfinite(f"{prefix}X", x, width):
            raise ValueError(f"{prefix}X contains NaN or infinite values")
        raise ValueError(f"{prefix}X is too large: X X^T overflows float64")
    if not y_ok:
        if y is not None and _has_nonfinite(f"{prefix}Y", y, width):
            raise ValueError(f"{prefix}Y contains NaN or infinite values")
        raise ValueError(f"{prefix}Y is too large: Y X^T or ||Y||^2 overflows float64")


def _progress_bar(
    progress: bool | float, total: int | None, desc: str, unit: str
) -> ProgressBar | None:
    delay = progress_delay(progress)
    return (
        None
        if delay is None
        else progress_bar(total, desc, True, unit=unit, delay=delay, unit_scale=False)
    )


# ----------------------------------------------------------------------------- public API
def data_moments(
    X: object,
    Y: object | None = None,
    *,
    chunk_columns: int | None = None,
    progress: bool | float = False,
) -> DataMoments:
    """Moments X X^T, Y X^T, ||Y||^2 of data X (b x N) and targets Y (a x N), at BLAS speed.

    One pass over the samples, O((a + b/2) b N) multiply-adds: X X^T by a symmetric rank-k update
    (syrk), Y X^T by a general product (gemm), both multithreaded by NumPy's BLAS, accumulated in
    float64. Cache the result and pass it to :func:`structdrop.objective_terms` to evaluate
    objectives at a cost independent of N.

    Inputs:
        * float64 NumPy arrays in RAM that BLAS can read (C- or Fortran-ordered, or views with
          one unit stride) are read in place in one call: no extra memory beyond the outputs.
        * float32, integer or boolean arrays, and views BLAS cannot read (negative or doubled
          strides), are converted/copied one column chunk at a time, never as a whole.
        * NumPy memory maps (``np.memmap``, ``np.load(..., mmap_mode="r")``) are read in column
          chunks straight from the file (pread into one reused chunk buffer) for C- and F-ordered
          files and column slices of them, so neither anonymous memory nor the resident set grows
          with the file; other strides are read through the mapping, whose pages are dropped from
          the process after each chunk (they stay in the page cache).
        * dask arrays (X, Y or both), with any chunking along either axis: per-block products
          reduced by Dask as a tree, on whatever scheduler is active (a ``dask.distributed``
          client included); see :func:`structdrop._dask_moments.dask_moments`. dask is imported
          only when such an array is passed.
        * anything else array-like goes through ``np.asarray``.

    Peak extra memory: O(b^2 + a b) for the results and, when reading in chunks, one float64 chunk
    of X and Y, (a + b) * ``chunk_columns`` * 8 bytes (:data:`CHUNK_BYTES` = 64 MiB by default),
    plus for a memory map its read buffer in the file's dtype (at most as much again): at most about
    128 MiB beyond the inputs, whatever N (measured in tests/moments/test_moments.py and
    bench/moments.py).

    Args:
        X: b x N data, samples as columns.
        Y: a x N targets (optional).
        chunk_columns: samples per chunk; default: all at once for float64 data in RAM, else as
            many as fit in 64 MiB of float64 (X and Y together).
        progress: show a tqdm progress bar on stderr (samples done); a number of seconds shows it
            only once the pass has taken that long.

    Raises:
        ValueError: X or Y not 2-D or empty, column counts differ, NaN/inf entries (naming X or Y),
            or moments that overflow float64 ("X is too large: X X^T overflows float64").
        TypeError: complex or non-numeric input.
    """
    if _is_dask(X) or _is_dask(Y):
        from ._dask_moments import dask_moments

        return dask_moments(X, Y, progress=progress)
    x = as_real_array("X", X, ndim=2)
    y = None
    if Y is not None:
        y = as_real_array("Y", Y, ndim=2)
        if y.shape[1] != x.shape[1]:
            raise ValueError(
                f"X and Y must have the same number of columns (samples), got X {x.shape} and Y "
                f"{y.shape}"
            )
    if chunk_columns is None:
        width = _default_chunk_columns(x, y)
    else:
        width = as_int("chunk_columns", chunk_columns, minimum=1)
    acc = _Accumulator(x.shape[0], None if y is None else y.shape[0])
    bar = _progress_bar(progress, x.shape[1], "moments", "sample")
    try:
        _accumulate(acc, x, y, width, bar=bar)
    finally:
        if bar is not None:
            bar.close()
    return acc.result()


def stream_moments(
    chunks: Iterable[tuple[object, object | None]], progress: bool | float = False
) -> DataMoments:
    """Moments of data arriving in chunks of samples: the exact sum of every chunk's moments.

    ``chunks`` is any iterable (a generator reading files, a DataLoader-like object, a list) of
    ``(X_chunk, Y_chunk)`` pairs with samples as columns: X_chunk is b x n_k, Y_chunk is a x n_k or
    None. The row counts b (and a) must be the same in every chunk, and Y_chunk must be None in all
    chunks or in none. A chunk may have zero columns, but not all of them (as :func:`data_moments`
    refuses an X without columns). Each chunk is processed as by
    :func:`data_moments` (float32 converted, memory maps read in column chunks) and then released,
    so memory is bounded by one chunk plus O(b^2 + a b).

    Args:
        chunks: iterable of (X_chunk, Y_chunk) pairs.
        progress: show a tqdm progress bar on stderr (chunks done); a number of seconds shows it
            only once the stream has taken that long.

    Raises:
        ValueError: an empty iterable, or no samples in any chunk; a chunk that is not 2-D,
            whose row count differs from the first chunk's, whose X and Y column counts differ, or
            which has Y where the first had none (or vice versa), naming the chunk's 0-based index
            and the shapes involved; NaN/inf in a chunk (naming the chunk and X or Y); overflow of
            the accumulated moments.
        TypeError: an item that is not a pair, or non-numeric arrays.
    """
    acc: _Accumulator | None = None
    first: tuple[tuple[int, ...], tuple[int, ...] | None] | None = None
    total = len(chunks) if isinstance(chunks, Sized) else None
    bar = _progress_bar(progress, total, "moments", "chunk")
    try:
        for index, item in enumerate(chunks):
            x, y = _stream_item(index, item)
            if first is None:
                first = (x.shape, None if y is None else y.shape)
                acc = _Accumulator(x.shape[0], None if y is None else y.shape[0])
            else:
                _check_like_first(index, x, y, first)
            assert acc is not None
            width = _default_chunk_columns(x, y)
            _accumulate(acc, x, y, width, prefix=f"chunk {index}: ")
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    if acc is None:
        raise ValueError(
            "chunks is empty: stream_moments needs at least one (X_chunk, Y_chunk) pair"
        )
    if acc.n == 0:  # as data_moments refuses an X with no columns
        raise ValueError("X must not be empty: every chunk has zero columns (samples)")
    return acc.result()


def _stream_item(index: int, item: object) -> tuple[np.ndarray, np.ndarray | None]:
    if not isinstance(item, (tuple, list)) or len(item) != 2:
        raise TypeError(
            f"chunk {index}: expected an (X_chunk, Y_chunk) pair, got {type(item).__name__}"
        )
    x = as_real_array(f"chunk {index}: X", item[0], ndim=2, allow_empty=True)
    y = (
        None
        if item[1] is None
        else as_real_array(f"chunk {index}: Y", item[1], ndim=2, allow_empty=True)
    )
    if x.shape[0] == 0:
        raise ValueError(f"chunk {index}: X must have at least one row, got X {x.shape}")
    if y is not None:
        if y.shape[0] == 0:
            raise ValueError(f"chunk {index}: Y must have at least one row, got Y {y.shape}")
        if y.shape[1] != x.shape[1]:
            raise ValueError(
                f"chunk {index}: X and Y must have the same number of columns (samples), "
                f"got X {x.shape} and Y {y.shape}"
            )
    return x, y


def _check_like_first(
    index: int,
    x: np.ndarray,
    y: np.ndarray | None,
    first: tuple[tuple[int, ...], tuple[int, ...] | None],
) -> None:
    x0, y0 = first
    if (y is None) != (y0 is None):
        have = "no Y" if y is None else f"Y {y.shape}"
        had = "no Y" if y0 is None else f"Y {y0}"
        raise ValueError(
            f"chunk {index}: Y_chunk must be None in all chunks or in none; chunk {index} has "
            f"{have}, chunk 0 had {had}"
        )
    if x.shape[0] != x0[0]:
        raise ValueError(
            f"chunk {index}: X has {x.shape[0]} rows, chunk 0 had {x0[0]}: got X {x.shape}, chunk "
            f"0 X {x0}"
        )
    if y is not None and y0 is not None and y.shape[0] != y0[0]:
        raise ValueError(
            f"chunk {index}: Y has {y.shape[0]} rows, chunk 0 had {y0[0]}: got Y {y.shape}, chunk "
            f"0 Y {y0}"
        )
