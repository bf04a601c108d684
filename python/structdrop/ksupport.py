"""The spectral r-support norm and the proximal operator of its scaled square.

Theorem 6 of the paper identifies the DropBlock regulariser in product space with
beta_bar ||sigma(A)||_(r)^2, the squared spectral k-support norm (k = r, the block size);
Theorem 7 gives the minimiser of ||m - a||^2 + beta ||a||_(r)^2. Both are implemented here in
their corrected forms (docs/differences-from-paper.md), for vectors of any
sign and order (no sort: selection in expected O(n)), for matrices (through the singular values)
and for every row of a matrix at once (``prox_ksupport_sq_batch``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from . import _core
from ._migration import renamed_keywords
from ._results import ResultEquality
from ._solver.spectrum import power_of_two_scale
from ._validation import as_float_array, as_int, as_nonnegative_float, as_threads

__all__ = [
    "ProxBatchResult",
    "ProxResult",
    "ksupport_norm_sq",
    "ksupport_split",
    "prox_ksupport_sq",
    "prox_ksupport_sq_batch",
]

ProxMethod = Literal["sweep", "search"]


@dataclass(frozen=True, eq=False)
class ProxResult(ResultEquality):
    """Minimiser of ||m - a||^2 + beta ||a||_(r)^2 (Theorem 7, corrected).

    Attributes:
        values: the minimiser a*, aligned with the input order of ``m``, with the signs of ``m``
            (``a*_i = sign(m_i) prox(|m|)_i``; entries that are 0 are +0.0); a matrix
            U diag(prox(sigma)) V^T for a matrix ``m``. float32 for float32 input, else float64.
        rho: 1 + the number of leading (largest) values that are only shrunk, a_i = m_i/(1+beta)
            (1-based, in 1..r, as in the paper). When a value sits exactly on a breakpoint two
            (rho, rank) descriptions give the same minimiser; the sweep reports the smallest head.
        rank: number of non-zero entries of a* (the paper's lambda, the rank of A*).
        objective: the minimum value ||m - a*||^2 + beta ||a*||_(r)^2 (Frobenius norm for a matrix).
        method: "sweep" (O(n) threshold search) or "search" (literal O(n r) scan of Theorem 7).

    Built by :func:`prox_ksupport_sq` (the constructor checks nothing).

    Example:
        >>> import structdrop as sd
        >>> res = sd.prox_ksupport_sq([-3.0, 1.0, 0.5], 2, 1.0)
        >>> res.values.tolist(), res.rho, res.rank
        ([-1.5, 0.5, 0.0], 2, 2)
    """

    values: np.ndarray
    rho: int
    rank: int
    objective: float
    method: str


def _check_block_size(block_size: object) -> int:
    return as_int("block_size", block_size, minimum=1)


@renamed_keywords("ksupport_norm_sq", r="block_size")
def ksupport_norm_sq(x: object, block_size: int) -> float:
    """Squared spectral r-support norm ||x||_(r)^2 (Theorem 6, corrected), r = ``block_size``.

    Args:
        x: a 1-D array (any signs, any order: its magnitudes are used) or a 2-D matrix (its
            singular values are used).
        block_size: the support size r (the DropBlock block size), an integer >= 1 (``r=``
            before 1.0). r = 1 gives the squared nuclear (l1) norm, r >= number of non-zeros the
            squared Frobenius (l2) norm.

    Returns:
        ||x||_(r)^2 as a float.

    Raises:
        TypeError: a non-numeric ``x`` or a non-integer ``block_size``.
        ValueError: ``x`` not 1-D or 2-D, empty, with NaN or inf, or so large that the norm
            overflows; ``block_size`` < 1.

    Example:
        >>> import structdrop as sd
        >>> sd.ksupport_norm_sq([1.0, 1.0, 1.0], 2)
        4.5

    With s the magnitudes sorted descending and T_rho = sum_{i>=rho} s_i,
    ||s||_(r)^2 = sum_{i<rho*} s_i^2 + T_rho*^2/(r - rho* + 1), where rho* is the unique rho in
    1..r with s_{rho-1} > T_rho/(r - rho + 1) >= s_rho (s_0 = +inf). Only the r largest
    magnitudes need sorting: a vector costs O(n + r log r) (partial selection in C++, float32 read
    as float32); a matrix costs its singular values.

    Deviation from the printed paper: Theorem 6 says rho* *maximises* the bracket; that is wrong
    (x = (1, 1, 1), r = 2: the norm^2 is 4.5, the maximum of the bracket is 5). The variational
    form min sum s_i^2/t_i over t in (0, 1]^n with sum t_i <= r confirms 4.5.
    """
    return ksupport_split_and_norm(x, block_size)[1]


@renamed_keywords("ksupport_split", r="block_size")
def ksupport_split(x: object, block_size: int) -> int:
    """rho* of the corrected Theorem 6 (1-based, in 1..r, r = ``block_size``) for a vector or a
    matrix; see :func:`ksupport_norm_sq`.

    Returns:
        rho* as an int.

    Raises:
        TypeError: as :func:`ksupport_norm_sq`.
        ValueError: as :func:`ksupport_norm_sq`.

    Example:
        >>> import structdrop as sd
        >>> sd.ksupport_split([1.0, 1.0, 1.0], 2)
        1
    """
    return ksupport_split_and_norm(x, block_size)[0]


@renamed_keywords("ksupport_split_and_norm", r="block_size")
def ksupport_split_and_norm(x: object, block_size: int) -> tuple[int, float]:
    """(rho*, ||x||_(r)^2) in one pass; see :func:`ksupport_norm_sq`.

    A vector needs only its r largest magnitudes sorted: the compiled kernel selects them
    (std::nth_element) and sorts that head, O(n + r log r), from float32 or float64 input.

    Returns:
        (rho*, ||x||_(r)^2).

    Raises:
        TypeError: as :func:`ksupport_norm_sq`.
        ValueError: as :func:`ksupport_norm_sq`.

    Example:
        >>> from structdrop.ksupport import ksupport_split_and_norm
        >>> ksupport_split_and_norm([3.0, 0.0], 1)
        (1, 9.0)
    """
    block = _check_block_size(block_size)
    array = _aligned(
        as_float_array("x", x, ndim=(1, 2), keep_float32=True, contiguous=True, check_finite=False)
    )
    if array.ndim == 2:
        if not np.isfinite(array).all():
            raise ValueError("x contains NaN or infinite values")
        s = np.linalg.svd(
            array.astype(np.float64, copy=False), compute_uv=False
        )  # descending, >= 0
        scale = power_of_two_scale(s)
        if scale != 1.0:
            s /= scale  # exact: a power of two; keeps s_i^2 away from overflow and underflow
        norm_sq, rho = _core.ksupport_norm_sq_sorted(s, block)
        value = float(norm_sq) * scale * scale
    else:
        try:
            value, rho = _core.ksupport_norm_sq_select(array, block)  # rescales inside
        except ValueError:
            raise ValueError("x contains NaN or infinite values") from None
    if not np.isfinite(value):
        raise ValueError("x is too large: ||x||_(r)^2 overflows float64")
    return int(rho), float(value)


def _aligned(array: np.ndarray) -> np.ndarray:
    """The kernels read whole float/double words: an unaligned view (from a byte buffer) is
    copied."""
    return array if array.flags.aligned else array.copy()


def _check_method(method: object) -> ProxMethod:
    if method == "sweep":
        return "sweep"
    if method == "search":
        return "search"
    raise ValueError(f"method must be 'sweep' or 'search', got {method!r}")


def _check_out(out: object, shape: tuple[int, ...], dtype: np.dtype, *inputs: object) -> np.ndarray:
    """``out`` if it can receive the result in place: an ndarray of that shape and dtype, writeable,
    C-contiguous and sharing no memory with the input (the kernels read the input after writing)."""
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out must be a numpy.ndarray, got {type(out).__name__}")
    if out.shape != shape:
        raise ValueError(f"out must have shape {shape}, got {out.shape}")
    if out.dtype != dtype:
        raise TypeError(
            f"out must have dtype {np.dtype(dtype).name} (the result's), got {out.dtype}"
        )
    if not out.flags.writeable:
        raise ValueError("out must be writeable")
    if not out.flags.c_contiguous:
        raise ValueError("out must be C-contiguous")
    if not out.flags.aligned:
        raise ValueError("out must be aligned (the kernels write whole words)")
    for array in inputs:
        if isinstance(array, np.ndarray) and np.may_share_memory(out, array):
            raise ValueError("out must not share memory with the input")
    return out


def _overflow(name: str) -> ValueError:
    return ValueError(f"{name} is too large: the prox objective overflows float64")


def _search_sorted(
    s: np.ndarray, block: int, strength: float
) -> tuple[np.ndarray, int, int, float]:
    """The literal Theorem 7 scan on descending non-negative float64 ``s``, which it rescales in
    place by a power of two (exact; the caller's scratch array)."""
    scale = power_of_two_scale(s)
    if scale != 1.0:
        s /= scale
    solution, rho, rank, objective = _core.prox_search(s, block, strength)
    if scale != 1.0:
        solution *= scale  # in place: no temporary of size n
    return solution, int(rho), int(rank), float(objective) * scale * scale


def _prox_vector(array, original, block, strength, method, out) -> ProxResult:
    if out is not None:
        out = _check_out(out, array.shape, array.dtype, array, original)
    if method == "sweep":
        if out is None:
            out = np.empty_like(array)
        try:
            rho, rank, objective = _core.prox_select(array, block, strength, out)
        except ValueError:
            raise ValueError("m contains NaN or infinite values") from None
    else:  # the scan needs sorted magnitudes: sort a float64 copy, scatter back with the signs
        if not np.isfinite(array).all():
            raise ValueError("m contains NaN or infinite values")
        magnitudes = np.abs(array, dtype=np.float64)
        order = np.argsort(-magnitudes, kind="stable")
        solution, rho, rank, objective = _search_sorted(magnitudes[order], block, strength)
        magnitudes[order] = solution
        del order, solution
        np.copysign(magnitudes, array, out=magnitudes)
        magnitudes += 0.0  # -0.0 -> +0.0
        if out is not None:
            out[...] = magnitudes
        else:
            out = magnitudes.astype(array.dtype, copy=False)
    objective = float(objective)
    if not np.isfinite(objective):
        raise _overflow("m")
    return ProxResult(values=out, rho=int(rho), rank=int(rank), objective=objective, method=method)


def _prox_matrix(array, original, block, strength, method, out) -> ProxResult:
    if not np.isfinite(array).all():
        raise ValueError("m contains NaN or infinite values")
    if out is not None:
        out = _check_out(out, array.shape, array.dtype, array, original)
    left, sigma, right = np.linalg.svd(array, full_matrices=False)
    sigma = np.ascontiguousarray(sigma, dtype=np.float64)  # descending and >= 0
    if method == "sweep":
        shrunk = np.empty_like(sigma)
        rho, rank, objective = _core.prox_select(
            sigma, block, strength, shrunk
        )  # sorted: the sweep
    else:
        shrunk, rho, rank, objective = _search_sorted(sigma, block, strength)
    if not np.isfinite(objective):
        raise _overflow("m")
    k = int(rank)  # a*_i = 0 beyond the rank
    weighted = left[:, :k] * shrunk[:k].astype(array.dtype)
    if out is None:
        values = weighted @ right[:k]
    else:
        values = np.matmul(weighted, right[:k], out=out)
    values += 0.0  # -0.0 -> +0.0 (a sum of -0.0 products), as promised for zero entries
    return ProxResult(
        values=values, rho=int(rho), rank=k, objective=float(objective), method=method
    )


@renamed_keywords("prox_ksupport_sq", r="block_size")
def prox_ksupport_sq(
    m: object,
    block_size: int,
    beta: float,
    method: ProxMethod = "sweep",
    out: np.ndarray | None = None,
) -> ProxResult:
    """argmin_a ||m - a||^2 + beta ||a||_(r)^2 (Theorem 7, corrected), for a vector or a matrix.

    For a vector the penalty acts on magnitudes: the minimiser is a_i = sign(m_i) p_i with p the
    prox of ``|m|`` (the norm only sees ``|a|``, and flipping a sign of a_i away from m_i's only
    raises ||m - a||^2). p keeps the order of ``|m|``: ``p_i = |m_i|/(1+beta)`` on the head (the
    rho - 1 largest), ``p_i = |m_i| - c`` on the band up to the rank with one common cut c, and 0
    beyond. For a matrix
    the same holds for the singular values: the result is U diag(p(sigma)) V^T (spectral prox; the
    Frobenius norm and the spectral norm are unitarily invariant, von Neumann's trace inequality).

    Args:
        m: a 1-D array (any signs, any order) or a 2-D matrix. float32 input gives float32 values
            (the kernel reads float32 and accumulates in double); other real dtypes are computed
            in float64. A non-contiguous vector is copied once.
        block_size: the block size r, integer >= 1 (``r=`` before 1.0).
        beta: regularisation strength >= 0 (beta_bar = (1 - theta_bar)/theta_bar for DropBlock).
        method: ``"sweep"`` (default): a_i = m_i t_i/(t_i + beta) with t_i = clip(m_i tau - beta,
            0, 1) and tau such that sum t_i = r (a method beyond the paper). tau is found by
            randomised selection over the breakpoints beta/m_i and (1 + beta)/m_i in expected O(n)
            without sorting (a fixed seed: the same bits on every run); input already sorted
            descending goes to an O(n) sweep. ``"search"``: the literal Theorem 7 scan over
            (rho, lambda), O(n r) with prefix sums, on the magnitudes sorted once (O(n log n)).
            Both agree to rounding.
        out: optional array for the values: the shape of ``m``, the result's dtype (float32 for
            float32 input, else float64), writeable, C-contiguous and not sharing memory with
            ``m``. It is returned as ``values``; on error its contents are unspecified.

    Deviation from the printed paper: Theorem 7 lets rho range over 1..r-1; the optimum can need
    rho = r (m = (3, 1, 0.5), r = 2, beta = 1: a* = (1.5, 0.5, 0) at rho = 2 with F* = 5.25,
    while rho <= 1 gives at best 6.25, at a = (2, 0, 0)). Here rho ranges over 1..r.

    Rounding: a band value m_i - c below 8 eps m_i (a unit sitting on the t_i = 0 breakpoint) is
    returned as an exact 0, so ``rank`` does not count rounding noise. The search compares
    candidates by value; among candidates within rounding of the best it keeps one that also meets
    the complementary conditions (the next unit would not be positive, the previous is saturated),
    so both methods return the same minimiser to rounding. Inputs are rescaled by a power of two
    (exact), so magnitudes from 1e-300 to 1e300 work; an objective beyond float64 raises ValueError.

    Cost (vector, ``"sweep"``): about four passes over m and one output array, no sort and no copy
    of m (the selection keeps the units near the threshold, typically a few percent of n).
    Matrix: one thin SVD. The input is not modified.

    Returns:
        A :class:`ProxResult`: ``values`` (the minimiser, zeros as +0.0), ``rho``, ``rank``,
        ``objective`` and ``method``.

    Raises:
        TypeError: a non-numeric ``m``, a non-integer ``block_size``, or an ``out`` that is not
            an ndarray of the result's dtype.
        ValueError: ``m`` not 1-D or 2-D, empty, with NaN or inf; ``block_size`` < 1; ``beta``
            negative or not finite; an unknown ``method``; an unusable ``out``; an objective
            that overflows float64.

    Example:
        >>> import structdrop as sd
        >>> res = sd.prox_ksupport_sq([3.0, 1.0, 0.5], 2, 1.0)
        >>> res.values.tolist(), res.rho, res.rank, res.objective
        ([1.5, 0.5, 0.0], 2, 2, 5.25)
    """
    block = _check_block_size(block_size)
    strength = as_nonnegative_float("beta", beta)
    method = _check_method(method)
    array = _aligned(
        as_float_array("m", m, ndim=(1, 2), keep_float32=True, contiguous=True, check_finite=False)
    )
    if array.ndim == 2:
        return _prox_matrix(array, m, block, strength, method, out)
    return _prox_vector(array, m, block, strength, method, out)


@dataclass(frozen=True, eq=False)
class ProxBatchResult(ResultEquality):
    """The prox of every row of a matrix (``prox_ksupport_sq_batch``).

    Attributes:
        values: (rows, n) minimisers, row i = prox_ksupport_sq(M[i], block_size, beta).values.
        rho: (rows,) int64, as ProxResult.rho per row.
        rank: (rows,) int64 numbers of non-zero entries per row.
        objective: (rows,) float64 minimum values per row.

    Built by :func:`prox_ksupport_sq_batch` (the constructor checks nothing).

    Example:
        >>> import numpy as np, structdrop as sd
        >>> sd.prox_ksupport_sq_batch(np.array([[3.0, 1.0, 0.5]]), 2, 1.0).rho.tolist()
        [2]
    """

    values: np.ndarray
    rho: np.ndarray
    rank: np.ndarray
    objective: np.ndarray


@renamed_keywords("prox_ksupport_sq_batch", r="block_size")
def prox_ksupport_sq_batch(
    M: object,
    block_size: int,
    beta: float,
    threads: int | None = None,
    out: np.ndarray | None = None,
) -> ProxBatchResult:
    """The vector prox argmin_a ||M_i - a||^2 + beta ||a||_(r)^2 of every row M_i of a matrix.

    Rows are independent problems (signed, any order; see :func:`prox_ksupport_sq`), solved by the
    same selection kernel in C++ threads with the GIL released. Each row is computed exactly as a
    single call computes it, so the results are bit-identical for any ``threads``.

    Args:
        M: 2-D array (rows x n); float32 stays float32 (values), other real dtypes become float64.
        block_size: the block size r, integer >= 1 (``r=`` before 1.0).
        beta: regularisation strength >= 0.
        threads: number of worker threads; None (default) uses every core (``threads=0``, the
            old spelling, still does, with a FutureWarning).
        out: optional (rows, n) array for the values (same rules as in prox_ksupport_sq).

    Returns:
        ProxBatchResult with values, rho, rank and objective per row.

    Raises:
        TypeError: as :func:`prox_ksupport_sq`, and a bad ``threads``.
        ValueError: as :func:`prox_ksupport_sq` (naming the first bad row), ``M`` not 2-D.

    Example:
        >>> import numpy as np, structdrop as sd
        >>> res = sd.prox_ksupport_sq_batch(np.array([[3.0, 1.0, 0.5], [1.0, 0.0, 0.0]]), 2, 1.0)
        >>> res.objective.tolist(), res.rank.tolist()
        ([5.25, 0.5], [2, 1])
    """
    block = _check_block_size(block_size)
    strength = as_nonnegative_float("beta", beta)
    workers = as_threads(threads)
    array = _aligned(
        as_float_array("M", M, ndim=2, keep_float32=True, contiguous=True, check_finite=False)
    )
    if out is None:
        out = np.empty_like(array)
    else:
        out = _check_out(out, array.shape, array.dtype, array, M)
    objective, rho, rank, bad_row = _core.prox_rows(  # the core's "every core" is 0
        array, block, strength, out, 0 if workers is None else workers
    )
    if bad_row >= 0:
        raise ValueError(f"M contains NaN or infinite values (row {bad_row})")
    overflow = np.flatnonzero(~np.isfinite(objective))
    if overflow.size:
        raise ValueError(
            f"M is too large: the prox objective of row {int(overflow[0])} overflows float64"
        )
    return ProxBatchResult(values=out, rho=rho, rank=rank, objective=objective)
