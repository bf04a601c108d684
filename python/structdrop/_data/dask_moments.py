"""Data moments of dask arrays: per-block products, reduced by Dask as a tree (imported lazily).

For X (b x N) split into row chunks i and column chunks k, and Y (a x N) into row chunks p,

    X X^T   = sum_k [X_ik X_jk^T]_(i, j),
    Y X^T   = sum_k [Y_pk X_jk^T]_(p, j),
    ||Y||^2 = sum_k sum_p ||Y_pk||^2.

Each term is one task on the blocks of ONE column chunk k (no rechunking of rows, no data moved
between column chunks; a diagonal block X_ik X_ik^T is a syrk). The sums over k are Dask
reductions (``Array.sum(axis=0, split_every=...)``), i.e. trees of depth log_{split_every}(#chunks),
so no worker ever holds more than ``split_every`` partial b x b blocks. Unlike dask's tsqr there
is no restriction to a single column chunk. Everything is computed with one ``dask.compute`` call
(the blocks of X are read once for both products) on whatever scheduler is active, a
``dask.distributed.Client`` included.

Float32 (or integer) blocks are converted to float64 inside each task, one block at a time.
The sums come back as plain arrays (:class:`MomentSums`); ``moments.data_moments`` wraps them in a
``DataMoments`` (this module does not import ``moments``: that would be an import cycle).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .._progress import dask_progress, progress_delay
from .._validation import check_real_dtype

__all__ = ["MomentSums", "dask_moments"]


class MomentSums(NamedTuple):
    """X X^T, Y X^T, ||Y||^2 and N, in the order of ``DataMoments``'s fields."""

    gram: np.ndarray
    cross: np.ndarray | None
    y_sq_norm: float
    n_samples: int


def _as_float64(block: np.ndarray) -> np.ndarray:
    return block if block.dtype == np.float64 else block.astype(np.float64)


def _product_block(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """left @ right^T of one column chunk, as a (1, rows_left, rows_right) partial sum."""
    with np.errstate(
        all="ignore"
    ):  # overflow and NaN are raised as ValueErrors after the reduction
        if left is right:  # a diagonal block: one buffer, so NumPy uses a syrk
            lf = _as_float64(left)
            return (lf @ lf.T)[None]
        return (_as_float64(left) @ _as_float64(right).T)[None]


def _row_squares_block(block: np.ndarray) -> np.ndarray:
    """Per-row sums of squares of one block, as a (1, rows) partial sum."""
    bf = _as_float64(block)
    with np.errstate(all="ignore"):
        return np.einsum("ij,ij->i", bf, bf)[None]


def _from_numpy(value: object, like):
    """A NumPy operand as a dask array chunked like the dask operand ``like`` along the samples."""
    import dask.array as da

    array = np.asarray(value)
    if array.ndim == 2 and array.shape[1] == like.shape[1]:
        return da.from_array(array, chunks=(array.shape[0], like.chunks[1]))
    return da.from_array(array)  # wrong shape: reported by _checked


def _checked(name: str, value):
    check_real_dtype(name, value.dtype)
    if value.ndim != 2:
        raise ValueError(f"{name} must be 2-D, got an array of shape {value.shape}")
    if any(np.isnan(size) for size in value.shape):
        raise ValueError(
            f"{name} has unknown chunk sizes {value.shape}; call {name}.compute_chunk_sizes() first"
        )
    if value.size == 0:
        raise ValueError(f"{name} must not be empty, got shape {value.shape}")
    return value


def moment_graph(x, y, split_every: int | None = None) -> list:
    """The lazy dask arrays [X X^T] or [X X^T, Y X^T, ||Y||^2] (validated dask arrays in)."""
    import dask.array as da

    reduce = {"axis": 0, "split_every": split_every}

    def partials(func, out_ind, *args):
        return da.blockwise(
            func,
            out_ind,
            *args,
            adjust_chunks={"k": 1},
            dtype=np.float64,
            meta=np.empty((0,) * len(out_ind), dtype=np.float64),
        ).sum(**reduce)

    lazy = [partials(_product_block, "kij", x, "ik", x, "jk")]
    if y is not None:
        lazy += [
            partials(_product_block, "kij", y, "ik", x, "jk"),
            partials(_row_squares_block, "ki", y, "ik").sum(),
        ]
    return lazy


def dask_moments(
    X: object,
    Y: object | None = None,
    *,
    split_every: int | None = None,
    progress: bool | float = False,
) -> MomentSums:
    """X X^T, Y X^T, ||Y||^2 of dask arrays, the sums :func:`structdrop.data_moments` returns.

    Args:
        X: b x N dask array (or a NumPy array when Y is a dask array), any chunking.
        Y: a x N dask or NumPy array, or None; chunked differently from X is fine (Dask aligns the
            column chunks).
        split_every: fan-in of the tree reduction over column chunks (Dask's default when None).
        progress: show dask's local progress bar (``dask.diagnostics.ProgressBar``, stderr); a
            number of seconds shows it only once the computation has taken that long (as for
            :func:`structdrop.data_moments`). On a distributed cluster watch the dashboard instead.

    Peak memory per task: one block of X (and of Y) converted to float64 plus one b x b (or a x b)
    partial block; per reduction task ``split_every`` partial blocks.
    """
    import dask
    import dask.array as da

    if isinstance(X, da.Array):
        x = _checked("X", X)
        y = (
            None
            if Y is None
            else _checked("Y", Y if isinstance(Y, da.Array) else _from_numpy(Y, x))
        )
    else:  # only Y is a dask array: chunk X like it
        y = _checked("Y", Y)
        x = _checked("X", _from_numpy(X, y))
    if y is not None and y.shape[1] != x.shape[1]:
        raise ValueError(
            f"X and Y must have the same number of columns (samples), got X {x.shape} and Y "
            f"{y.shape}"
        )
    lazy = moment_graph(x, y, split_every)
    with dask_progress(progress_delay(progress)):
        results = dask.compute(*lazy)
    gram_np = np.asarray(results[0], dtype=np.float64)
    # Blocks (i, j) and (j, i) come from separate products: make the result exactly symmetric.
    upper = np.triu(gram_np)
    gram_np = upper + np.triu(upper, 1).T
    cross_np = None if y is None else np.asarray(results[1], dtype=np.float64)
    y_sq = 0.0 if y is None else float(results[2])
    # Same rule as in process: a NaN/inf entry always reaches a row's sum of squares.
    if not np.isfinite(np.diagonal(gram_np)).all():
        if not bool(da.isfinite(x).all().compute()):
            raise ValueError("X contains NaN or infinite values")
        raise ValueError("X is too large: X X^T overflows float64")
    if y is not None and not np.isfinite(y_sq):
        if not bool(da.isfinite(y).all().compute()):
            raise ValueError("Y contains NaN or infinite values")
    if not np.isfinite(gram_np).all():
        raise ValueError("X is too large: X X^T overflows float64")
    if cross_np is not None and not (np.isfinite(cross_np).all() and np.isfinite(y_sq)):
        raise ValueError("Y is too large: Y X^T or ||Y||^2 overflows float64")
    return MomentSums(gram=gram_np, cross=cross_np, y_sq_norm=y_sq, n_samples=int(x.shape[1]))
