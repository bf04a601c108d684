"""A width-d network at the global minimum: the balanced factorisation (Theorems 4, 5, Corollary 8).

The width-d DropBlock objective (eq. 8, theta scaled by eq. 7) of a network whose block products
A_j = U_j V_j^T X are an equal-norm decomposition of A* that attains the r-support norm equals
the global minimum F*. Such a network exists at width d = r k iff k diag(t_B) (the optimal weights
of the variational form on the unsaturated singular values of A*) is a sum of k orthogonal
projectors of rank q = sum t_B. This module builds those projectors (the segment construction of
:mod:`structdrop._solver.projector_sum`, else a verified numerical solve), says from which width
that always succeeds (:func:`min_exact_width`), and below it returns the best network it finds
(a truncation of A*, refined by block-coordinate descent for r > 1).

The proofs, the construction step by step, the widths at which the network is exact, a
counterexample and the cost are on the documentation page "A network at the minimum: the balanced
factorisation" (docs/guide/factorisation.md).
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ._blocks import check_block_width
from ._results import ResultEquality
from ._solver.projector_sum import (
    SummedPlans,
    bases_from_plan,
    proven_block_count,
    rank_bound,
    segment_plan,
    solve_numerically,
)
from ._validation import as_int
from .ksupport import prox_ksupport_sq

if TYPE_CHECKING:  # pragma: no cover
    from .global_min import GlobalMin

__all__ = [
    "BalancedFactorization",
    "WidthGap",
    "balanced_factorization",
    "balanced_factors",
    "min_exact_width",
    "width_gap",
]

# A value of t within this of 1 is treated as saturated (in every block); the split value c is then
# recomputed over the rest, so the pieces still sum to A* exactly and stay equal in norm.
_SATURATION_TOL = 1e-10
# Block counts scanned for sums of constructible counts (min_exact_width, and a width the
# construction misses), and the shorter scan used for each truncation below the exact widths.
_SCAN_LIMIT = 4096
_TRUNCATION_SCAN_LIMIT = 64
# Seeded starts of the local search below the exact widths (r > 1).
_LOCAL_STARTS = 4


@dataclass(frozen=True)
class _Split:
    """The optimal-decomposition data of one singular-value vector a (descending, positive)."""

    values: np.ndarray  # a, length n
    saturated: int  # |S|: the first |S| values are in every block as a_i / k
    c: float  # the common value of the band (0 when the band is empty)
    t: np.ndarray  # t_i for the band (length m = n - |S|), in (0, 1)
    q: int  # sum of t (an integer, r - |S|)


def _split(values: np.ndarray, r: int) -> _Split:
    a = np.asarray(values, dtype=float)
    n = a.size
    if n <= r:
        return _Split(a, n, 0.0, np.zeros(0), 0)
    head = 0
    for head in range(r):  # the first head with a[head] <= c: the corrected Theorem 6's rho - 1
        if a[head] * (r - head) <= float(a[head:].sum()):
            break
    while True:
        c = float(a[head:].sum()) / (r - head)
        t = np.minimum(a[head:] / c, 1.0)
        extra = int(np.count_nonzero(t >= 1.0 - _SATURATION_TOL))
        if extra == 0 or head + extra >= r:
            return _Split(a, head, c, t, r - head)
        head += extra  # values equal to c up to rounding: in every block, like the head


# ----------------------------------------------------------------------------------------------
# Public API
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class BalancedFactorization(ResultEquality):
    """A width-d network (U, V) built from a global minimum, with its objective.

    Attributes:
        U: a x d.
        V: b x d (N x d for a minimum computed without X).
        width: d = block_size * blocks.
        block_size: r, the block size of the solve.
        blocks: k = d / r.
        objective: the width-d DropBlock objective (eq. 8, theta from eq. 7) of (U, V).
        minimum: the global minimum F* (``GlobalMin.objective``).
        exact: True when U V^T X = A*, the blocks are balanced and objective == minimum
            (to rounding).
        kept_rank: the number of singular directions of Y P the network may use (rank(A*)
            when exact).
        method: how it was built: "saturated" (rank(A*) <= r or all t_i = 1: the blocks are A*/k),
            "construction" (the segment construction, at k or at counts summing to k), "numerical"
            (Levenberg-Marquardt solve of the projector equations, verified to rounding, possibly
            summed with constructions), "truncation" (not exact: the best
            truncation, see docs/guide/factorisation.md) or "local search" (not exact, r > 1: the
            best of seeded block-coordinate descent runs on the width-d objective, started from
            the truncation and from random points; a block-coordinate minimum, not certified
            global).

    Example:
        >>> import numpy as np, structdrop as sd
        >>> Y = np.diag([3.0, 2.0, 1.0])
        >>> best = sd.dropblock_global_min(Y, block_size=1, theta_bar=1 / 1.1)
        >>> fact = sd.balanced_factorization(best, 2)  # rank(A*) = 3 > d: no exact network
        >>> fact.exact, fact.method, fact.U.shape
        (False, 'truncation', (3, 2))
        >>> print(f"{fact.objective:.4f} >= {fact.minimum:.4f}, gap {fact.gap:.4f}")
        3.0833 >= 2.7692, gap 0.3141
    """

    U: np.ndarray
    V: np.ndarray
    width: int
    block_size: int
    blocks: int
    objective: float
    minimum: float
    exact: bool
    kept_rank: int
    method: str

    @property
    def gap(self) -> float:
        """objective - minimum (>= 0 up to rounding; 0 when exact)."""
        return self.objective - self.minimum


@dataclass(frozen=True, eq=False)
class WidthGap(ResultEquality):
    """Objective of the network :func:`balanced_factorization` builds, against the width.

    Attributes:
        widths: the widths d asked for.
        objectives: the width-d objective of the returned network, per width.
        minimum: the global minimum F*.
        exact: whether that network attains F*, per width.
        methods: how it was built, per width (see :class:`BalancedFactorization`).

    Example:
        >>> import numpy as np, structdrop as sd
        >>> Y = np.diag([3.0, 2.0, 1.0])
        >>> best = sd.dropblock_global_min(Y, block_size=1, theta_bar=1 / 1.1)
        >>> gap = sd.width_gap(best, [1, 2, 3])
        >>> gap.exact.tolist(), gap.relative_gap.round(4).tolist()
        ([False, False, True], [1.101, 0.1134, 0.0])
    """

    widths: np.ndarray
    objectives: np.ndarray
    minimum: float
    exact: np.ndarray
    methods: tuple[str, ...]

    @property
    def relative_gap(self) -> np.ndarray:
        """(objective - minimum) / minimum per width (the absolute gap where the minimum is 0)."""
        gap = self.objectives - self.minimum
        return gap / self.minimum if self.minimum > 0 else gap


def _check_result(result: object) -> GlobalMin:
    # global_min imports this module (GlobalMin.factorize), so this one does not import it back
    # (an import cycle). A GlobalMin can only exist once its module is loaded: look it up there.
    global_min = sys.modules.get(__name__.rpartition(".")[0] + ".global_min")
    if global_min is None or not isinstance(result, global_min.GlobalMin):
        raise TypeError(
            "result must be a GlobalMin (from structdrop.dropblock_global_min), got "
            f"{type(result).__name__}"
        )
    return result


def _blocks(result: GlobalMin, d: object) -> int:
    width = as_int("d", d, minimum=1)
    r = result.block_size
    check_block_width(width, r, overlapping=False, block_name="r")
    return width // r


def _physical_memory() -> int | None:
    """The machine's physical memory in bytes, where the OS says it (None otherwise)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):  # no sysconf (Windows) or no such name
        pass
    if sys.platform == "win32":  # pragma: no cover - exercised on Windows runners only
        import ctypes

        class _Status(ctypes.Structure):
            _fields_ = [
                ("length", ctypes.c_ulong),
                ("load", ctypes.c_ulong),
                ("total_phys", ctypes.c_ulonglong),
                ("avail_phys", ctypes.c_ulonglong),
                ("total_page", ctypes.c_ulonglong),
                ("avail_page", ctypes.c_ulonglong),
                ("total_virtual", ctypes.c_ulonglong),
                ("avail_virtual", ctypes.c_ulonglong),
                ("avail_extended", ctypes.c_ulonglong),
            ]

        status = _Status()
        status.length = ctypes.sizeof(_Status)
        if ctypes.windll.kernel32.GlobalMemoryStatusEx(ctypes.byref(status)):  # type: ignore[attr-defined]
            return int(status.total_phys)
    return None


def _check_memory(result: GlobalMin, k: int) -> None:
    """Refuse a width whose arrays cannot fit, before anything of size O(d) is built.

    Per unit of width d the network holds U (a rows) and V (b rows, N without X) and, while it is
    built, the factor E (rank rows) and the stacked bases of the construction (at most rank rows):
    8 (a + b + 2 rank) bytes in float64. A width whose arrays exceed the physical memory would be
    swapped or killed by the OS; refusing it up front names the largest width that fits instead.
    """
    r = result.block_size
    per_width = 8 * (result.left_vectors.shape[0] + result.right_coefficients.shape[1])
    per_width += 16 * result.rank
    width = r * k
    needed = per_width * width
    memory = _physical_memory()
    if memory is not None and needed > memory:
        largest = memory // per_width // r * r
        raise MemoryError(
            f"a width-{width} network needs at least {needed:,} bytes (U, V and the factors of "
            f"the construction, {per_width} bytes per unit of width) but this machine has "
            f"{memory:,} bytes of physical memory; the largest width (a multiple of r = {r}) that "
            f"fits is {largest}"
        )


def _truncated(result: GlobalMin, kept: int) -> tuple[np.ndarray, float]:
    """Singular values and objective of the minimiser restricted to the top ``kept`` directions."""
    m = result.target_singular_values
    if kept >= result.rank:
        return result.singular_values[: result.rank], result.objective
    if kept == 0:
        return np.zeros(0), result.residual + float(np.sum(m**2))
    prox = prox_ksupport_sq(m[:kept], result.block_size, result.beta)
    return prox.values[: prox.rank], result.residual + float(np.sum(m[kept:] ** 2)) + prox.objective


def _balanced_bases(split: _Split, k: int, numerical: bool) -> tuple[np.ndarray | None, str]:
    """k orthonormal bases W_j with sum W_j W_j^T = k diag(t) for the band of ``split``, and how
    they were found: the construction at k; else (``numerical``) the verified numerical solve at k;
    else sums of smaller block counts solved either way (solutions add); (None, "") if none. The
    bases are stacked (k x m x q)."""
    if split.t.size == 0:
        return np.zeros((k, 0, 0)), "saturated"
    t, q = split.t, split.q
    plan = segment_plan(t, q, k)
    if plan is not None:
        return bases_from_plan(t, k, plan), "construction"
    if numerical:
        bases = solve_numerically(t, q, k)
        if bases is not None:
            return bases, "numerical"
    known: dict[int, np.ndarray | None] = {}
    numeric: set[int] = set()

    def solvable(count: int) -> bool:
        if segment_plan(t, q, count) is not None:
            known[count] = None  # built from the plan when used
            return True
        if numerical and count < k:
            found = solve_numerically(t, q, count)
            if found is not None:
                known[count] = found
                numeric.add(count)
                return True
        return False

    limit = _SCAN_LIMIT if numerical else _TRUNCATION_SCAN_LIMIT
    parts = SummedPlans(t, q, limit, solvable).decompose(k)
    if parts is None:
        return None, ""
    bases_of: dict[int, np.ndarray] = {}
    for count in set(parts):
        found = known.get(count)
        if found is None:
            plan = segment_plan(t, q, count)
            assert plan is not None  # solvable(count) found one
            found = bases_from_plan(t, count, plan)
        bases_of[count] = found
    method = "numerical" if numeric.intersection(parts) else "construction"
    return np.concatenate([bases_of[count] for count in parts]), method


def _factor(
    values: np.ndarray, split: _Split, bases: np.ndarray, k: int, r: int, rows: int
) -> np.ndarray:
    """E (rows x r k) with E_j E_j^T = (1/k) (diag(a_S) (+) c W_j W_j^T): U = L E, V = R E.

    Written through a (rows, k, r) view, all blocks at once: no per-block Python objects."""
    S = split.saturated
    E = np.zeros((rows, r * k))
    blocks = E.reshape(rows, k, r)  # blocks[:, j] = E_j
    blocks[np.arange(S), :, np.arange(S)] = np.sqrt(values[:S] / k)[:, None]
    _, m, q = bases.shape
    if m:
        blocks[S : S + m, :, S : S + q] = math.sqrt(split.c / k) * bases.transpose(1, 0, 2)
    return E


def _block_descent(
    target: np.ndarray, pieces: np.ndarray, r: int, strength: float, sweeps: int = 2000
) -> tuple[np.ndarray, float]:
    """Block-coordinate descent on ||diag(target) - sum_j A_j||^2 + strength sum_j ||A_j||^2, rank
    A_j <= r.

    The width-d objective depends on the network only through its block products A_j (n x n in
    the singular coordinates of Y P). With the other blocks fixed, the best A_j is the rank-r
    truncated SVD of the residual R_j = diag(target) - sum_{i != j} A_i divided by 1 + strength
    (Eckart-Young), so every update lowers the objective; the sweeps stop at a block-coordinate
    minimum (no single block can be changed to lower it, to 1e-14 relative) or after ``sweeps``.
    """
    goal = np.diag(target)
    total = pieces.sum(axis=0)
    previous = np.inf
    value = previous
    for _ in range(sweeps):
        for j in range(pieces.shape[0]):
            left, values, right = np.linalg.svd(goal - (total - pieces[j]))
            update = (left[:, :r] * (values[:r] / (1.0 + strength))) @ right[:r]
            total += update - pieces[j]
            pieces[j] = update
        value = float(np.sum((goal - total) ** 2) + strength * np.sum(pieces**2))
        if previous - value <= 1e-14 * value:
            break
        previous = value
    return pieces, value


def _local_search(
    result: GlobalMin, k: int, start: np.ndarray
) -> tuple[np.ndarray, np.ndarray, float] | None:
    """Best block-coordinate minimum of the width-d objective from the truncation and seeded random
    starts, as factors (U~, V~) in A*'s singular coordinates with the value of the reduced
    objective."""
    n, d = start.shape
    r = result.block_size
    if n == 0:
        return None
    target = result.target_singular_values[:n]
    strength = k * result.beta
    rng = np.random.default_rng(0)
    best = None
    for attempt in range(_LOCAL_STARTS):
        if attempt == 0:
            pieces = np.stack(
                [start[:, j * r : (j + 1) * r] @ start[:, j * r : (j + 1) * r].T for j in range(k)]
            )
        else:
            pieces = np.stack(
                [
                    np.diag(target)
                    @ np.linalg.qr(rng.standard_normal((n, n)))[0][:, :r]
                    @ rng.standard_normal((r, n))
                    / (k * n)
                    for _ in range(k)
                ]
            )
        sweeps = min(2000, max(20, 2_000_000 // (k * n**3)))  # bounded work for many blocks
        pieces, value = _block_descent(target, pieces, r, strength, sweeps)
        if best is None or value < best[1]:
            best = (pieces, value)
    assert best is not None
    pieces, value = best
    left = np.zeros((n, d))
    right = np.zeros((n, d))
    for j in range(k):  # split every block product evenly: A_j = (P sqrt(S)) (Q sqrt(S))^T
        P, S, Qt = np.linalg.svd(pieces[j])
        root = np.sqrt(S[:r])
        left[:, j * r : (j + 1) * r] = P[:, :r] * root
        right[:, j * r : (j + 1) * r] = Qt[:r].T * root
    return left, right, value


def min_exact_width(result: GlobalMin) -> int:
    """The smallest width d (a multiple of r) from which :func:`balanced_factorization` is exact at
    every larger multiple of r, by the construction alone (deterministic, no numerical solve).

    With the notation of docs/guide/factorisation.md: r when the band is empty (rank(A*) <= r or
    all t_i = 1); r m when q^ = 1 (exactness holds iff d >= r m: m is the rank bound); otherwise
    r k0 with k0 the least block count such that every k >= k0 is a sum of counts at which the
    construction succeeds (solutions add), found by scanning up from the rank bound; if the scan
    (4096 counts) finds none, the proven bound ceil((4 m - 2)/(1 - max tau)). Below it
    :func:`balanced_factorization` may still be exact (the numerical solve) and says so.

    Args:
        result: a :class:`structdrop.GlobalMin` (from data, from moments, or without X).

    Returns:
        int: the width, a multiple of the block size r of the solve.

    Raises:
        TypeError: result is not a GlobalMin.

    Example:
        >>> import numpy as np, structdrop as sd
        >>> Y = np.diag([3.0, 2.0, 1.0])
        >>> best = sd.dropblock_global_min(Y, block_size=1, theta_bar=1 / 1.1)
        >>> sd.min_exact_width(best)  # r = 1: the rank of A*
        3
        >>> sd.balanced_factorization(best, sd.min_exact_width(best)).exact
        True
    """
    res = _check_result(result)
    r = res.block_size
    split = _split(res.singular_values[: res.rank], r)
    t, q = split.t, split.q
    if t.size == 0:
        return r
    if min(q, t.size - q) == 1:
        return r * t.size
    proven = proven_block_count(t, q)
    first = SummedPlans(t, q, min(_SCAN_LIMIT, proven - rank_bound(t, q))).first_of_all_larger()
    return r * (proven if first is None else min(first, proven))


def balanced_factorization(result: GlobalMin, d: int) -> BalancedFactorization:
    """A width-d network at the global minimum when one can be built, else the best one found.

    The construction, the widths at which it is exact and what is returned below them are
    explained on docs/guide/factorisation.md.

    Args:
        result: a :class:`structdrop.GlobalMin` (from data, from moments, or without X).
        d: the width, a positive multiple of the block size r of the solve.

    Returns:
        :class:`BalancedFactorization`: U (a x d), V (b x d; N x d without X), blocks of r
        consecutive columns. When ``exact``: U V^T X = A*, every block product has Frobenius norm
        ||sigma(A*)||_(r)/k (Definition 3) and the width-d objective (eq. 8, theta from eq. 7)
        equals F*. Otherwise the best network found (``method`` says which), with its objective.

    Raises:
        TypeError: result is not a GlobalMin, or d is not an integer.
        ValueError: d < 1, or r does not divide d.
        MemoryError: U, V and the factors of the construction (8 (a + b + 2 rank(A*)) bytes per
            unit of width) exceed the machine's physical memory; raised before they are built,
            with the largest width that fits.

    Example:
        >>> import numpy as np, structdrop as sd
        >>> Y = np.diag([3.0, 2.0, 1.0])
        >>> best = sd.dropblock_global_min(Y, block_size=1, theta_bar=1 / 1.1)
        >>> fact = sd.balanced_factorization(best, 3)
        >>> fact.exact, fact.method, fact.blocks
        (True, 'construction', 3)
        >>> bool(np.allclose(fact.U @ fact.V.T, best.A)), bool(abs(fact.gap) < 1e-12)
        (True, True)
    """
    res = _check_result(result)
    k = _blocks(res, d)
    _check_memory(res, k)
    r = res.block_size
    n = res.rank
    values = res.singular_values[:n]
    split = _split(values, r)
    bases, method = _balanced_bases(split, k, numerical=True)
    if bases is not None:
        E = _factor(values, split, bases, k, r, n)
        return _network(res, E, E, k, res.objective, True, n, method)
    for kept in range(n - 1, -1, -1):  # the largest truncation the construction can balance
        values, objective = _truncated(res, kept)
        split = _split(values, r)
        bases, _ = _balanced_bases(split, k, numerical=False)
        if bases is not None:
            break
    assert bases is not None  # kept = 0, the zero network, always balances
    E = _factor(values, split, bases, k, r, n)
    left, right, method = E, E, "truncation"
    if r > 1:  # the truncation is optimal over width d for r = 1 only: search locally for r > 1
        found = _local_search(res, k, E)
        if found is not None:
            lost = res.residual + float(np.sum(res.target_singular_values[n:] ** 2))
            if lost + found[2] < objective - 1e-12 * objective:
                left, right, objective, method = found[0], found[1], lost + found[2], "local search"
                kept = n  # the search may use every singular direction of A*
    return _network(res, left, right, k, objective, False, kept, method)


def _network(
    res: GlobalMin,
    left: np.ndarray,
    right: np.ndarray,
    k: int,
    objective: float,
    exact: bool,
    kept: int,
    method: str,
) -> BalancedFactorization:
    n = left.shape[0]
    U = res.left_vectors[:, :n] @ left
    V = res.right_coefficients[:n].T @ right
    r = res.block_size
    return BalancedFactorization(
        U=U,
        V=V,
        width=r * k,
        block_size=r,
        blocks=k,
        objective=objective,
        minimum=res.objective,
        exact=exact,
        kept_rank=kept,
        method=method,
    )


def balanced_factors(result: GlobalMin, d: int) -> tuple[np.ndarray, np.ndarray]:
    """(U, V) of :func:`balanced_factorization`: the width-d network at the global minimum.

    Exact (U V^T X = A*, balanced, objective = F*) for every d >= :func:`min_exact_width`, and
    often below it; docs/guide/factorisation.md gives the construction, the widths, the cost and a
    counterexample.

    Args:
        result: a :class:`structdrop.GlobalMin` (from data, from moments, or without X).
        d: the width, a positive multiple of the block size r of the solve.

    Returns:
        (U, V): U is a x d, V is b x d (N x d for a minimum computed without X, where the rows of
        ``result.right_coefficients`` are the right singular vectors themselves).

    Raises:
        TypeError, ValueError, MemoryError: as :func:`balanced_factorization`.

    Example:
        >>> import numpy as np, structdrop as sd
        >>> Y = np.diag([3.0, 2.0, 1.0])
        >>> best = sd.dropblock_global_min(Y, block_size=1, theta_bar=1 / 1.1)
        >>> U, V = sd.balanced_factors(best, 3)
        >>> U.shape, V.shape, bool(np.allclose(U @ V.T, best.A))
        ((3, 3), (3, 3), True)
    """
    fact = balanced_factorization(result, d)
    return fact.U, fact.V


def width_gap(result: GlobalMin, widths: Sequence[int]) -> WidthGap:
    """The width-d objective of the network :func:`balanced_factorization` returns, for each d.

    Builds each network (cost as in :func:`balanced_factorization`, per width).

    Args:
        result: a :class:`structdrop.GlobalMin`.
        widths: the widths d, each a positive multiple of the block size r of the solve.

    Returns:
        :class:`WidthGap`: the widths, the objective of each network, the minimum F*, whether
        each network is exact and how it was built.

    Raises:
        TypeError, ValueError, MemoryError: as :func:`balanced_factorization`, for the first
            width that fails.

    Example:
        >>> import numpy as np, structdrop as sd
        >>> Y = np.diag([3.0, 2.0, 1.0])
        >>> best = sd.dropblock_global_min(Y, block_size=1, theta_bar=1 / 1.1)
        >>> gap = sd.width_gap(best, [1, 2, 3])  # rank(A*) = 3: exact from width 3 on
        >>> gap.objectives.round(4).tolist(), round(gap.minimum, 4)
        ([5.8182, 3.0833, 2.7692], 2.7692)
    """
    res = _check_result(result)
    facts = [balanced_factorization(res, w) for w in widths]
    return WidthGap(
        widths=np.asarray([f.width for f in facts], dtype=int),
        objectives=np.asarray([f.objective for f in facts], dtype=float),
        minimum=res.objective,
        exact=np.asarray([f.exact for f in facts], dtype=bool),
        methods=tuple(f.method for f in facts),
    )
