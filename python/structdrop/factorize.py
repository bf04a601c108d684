"""A width-d network at the global minimum: the balanced factorisation (Theorems 4, 5, Corollary 8).

The paper proves that the DropBlock objective of a width-d network with theta scaled by eq. 7,

    f_d(U, V) = ||Y - U V^T X||^2 + k beta_bar sum_j ||U_j V_j^T X||_F^2     (eq. 8, d = r k),

attains the minimum F* of the convex problem ||Y - A||^2 + beta_bar ||sigma(A)||_(r)^2 at a balanced
factorisation (Definition 3), but never builds one. This module builds it, says for which widths
that is possible, and returns the best network it can build at the other widths.

Why a balanced factorisation is what is needed. Write A = U V^T X = sum_j A_j with the block
products A_j = U_j V_j^T X (rank <= r). Cauchy-Schwarz gives k sum_j ||A_j||^2 >= (sum_j ||A_j||)^2,
with equality iff all ||A_j|| are equal (balanced), and sum_j ||A_j|| >= ||sigma(A)||_(r) because the
r-support norm is the atomic norm of the rank-<=r matrices of unit Frobenius norm (its unit ball is
their convex hull). So f_d(U, V) >= F(A) >= F*, with equality iff A = A* and the blocks form an
equal-norm decomposition of A* attaining the norm.

Which decompositions attain the norm. Let a_1 >= ... >= a_n > 0 be the singular values of A*
(A* = L diag(a) R^T) and t_i = min(1, a_i / c) the minimiser of the variational form
||a||_(r)^2 = min {sum a_i^2 / t_i : 0 < t_i <= 1, sum t_i <= r} (c is fixed by sum t_i = r; for
n <= r all t_i = 1). Call S = {i : t_i = 1} (the head of the corrected Theorem 6 and any band value
equal to c) and B the other m = n - |S| indices, with q = r - |S| = sum_{i in B} t_i. A dual
certificate argument (the atoms touching the optimal face) shows that the optimal equal-norm
decompositions into k pieces are exactly

    A_j = (1/k) L [diag(a_S) (+) c P_j] R^T,   P_j an orthogonal projector of rank q on R^B,

with sum_j P_j = k diag(t_B). Everything therefore reduces to writing the diagonal matrix
k diag(t_B) as a sum of k rank-q projectors. Necessary: rank, k q >= m, and (applied to the
complements I - P_j, of rank m - q) k (m - q) >= m.

The construction. Lay the values k t_i (or their complements k (1 - t_i), whichever view has the
smaller rank q^ = min(q, m - q)) end to end on [0, k q^], cut it at integers into segments that
overlap at most as many coordinates as they are long, and in each segment of length n build n unit
vectors whose frame operator is the diagonal of the coordinates' shares (equal-diagonal rotation,
the construction of Mianjy, Arora and Vidal 2018 for r = 1, done as O(n m) pairings of one value
>= 1 with one value <= 1). Cell u of the line goes to block u mod k. Vectors of segments that share
no coordinate are orthogonal, so every block gets q^ orthonormal vectors as soon as every
coordinate's segments span at most k cells; the blocks' projectors then sum to k diag(t) exactly.

For which widths d = r k it is exact:
- A* = 0, or rank(A*) <= r, or every t_i = 1: every k >= 1.
- q^ = 1 (always for r = 1; also whenever m - q = 1): exactly k >= m (iff: the rank bound).
- q^ >= 2: the construction is tried at the requested k (several orders and segmentations); it
  provably succeeds for every k >= ceil((4 m - 2) / (1 - max_i tau_i)), tau the chosen view, and in
  practice from about k = m. :func:`min_exact_width` reports the smallest width from which it
  succeeds at every larger width (scanned up to that proven bound).
Below these widths, or when k q^ < m (rank bound: no width-d network reaches F* at all), the
returned network is the best balanced network over truncations: A_l = the minimiser of F with
only the l largest singular values of Y P (fit to the rest lost), for the largest l whose
minimiser the construction can balance at width d. For r = 1 this is the global minimum of f_d
over all width-d networks (min over rank(A) <= k of ||Y - A||^2 + beta ||A||_*^2; the best
support is the top k singular values, since ||v||^2 - min_a(||v - a||^2 + beta (sum a)^2) is
non-decreasing in every v_i); for r > 1 it is the best network of this form, not proven optimal
over width d.

Counterexample (no finite width below the rank bound is exact). Y = diag(3, 2, 1) (no X), r = 1,
theta_bar = 1/2 (beta = 1): A* = diag(1, 0, 0)... has rank 1 only for this beta; with beta = 0.1
A* has rank 3, and at d = 2 every network product U V^T has rank <= 2, so f_2 > F*: the returned
network is the truncation to the top 2 singular values, which is the width-2 optimum.

Cost: O(rank^2 + (a + b) r d) to form U and V, plus O(n m) per segment of length n.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import numpy as np

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
# Largest number of block counts scanned by min_exact_width below the proven bound.
_SCAN_LIMIT = 4096


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
# k diag(t) as a sum of k projectors of rank q: segments on a line, cell u -> block u mod k.
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Plan:
    complement: bool  # the projectors are built for 1 - t (rank m - q) and complemented
    rank: int  # q^, the rank of the built projectors
    order: np.ndarray  # coordinate order along the line
    bounds: np.ndarray  # positions of the coordinates' ends on [0, k q^], length m + 1
    segments: tuple[tuple[int, int], ...]  # segments of length >= 2 (all other cells are unit)


def _count(bounds: np.ndarray, s: float, e: float) -> int:
    """Number of coordinates whose interval overlaps (s, e) with positive length."""
    return int(np.searchsorted(bounds[:-1], e, "left") - np.searchsorted(bounds[1:], s, "right"))


def _greedy_segments(bounds: np.ndarray, length: int) -> list[tuple[int, int]] | None:
    """Forward greedy: unit cells where a cell holds one coordinate, else the shortest feasible segment."""
    inner = bounds[1:-1]
    segments: list[tuple[int, int]] = []
    x = 0
    while x < length:
        nxt = int(np.searchsorted(inner, x, "right"))
        if nxt == inner.size or inner[nxt] >= x + 1:
            x = length if nxt == inner.size else max(int(math.floor(inner[nxt])), x + 1)
            continue
        e = x + 1
        while _count(bounds, x, e) > e - x and e < length:
            e += 1
        while _count(bounds, x, e) > e - x:  # at the end of the line: grow backwards
            if segments and segments[-1][1] == x:
                x = segments.pop()[0]
            elif x > 0:
                x -= 1
            else:
                return None
        while segments and segments[-1][1] > x:  # swallowed by the backward growth
            x = min(x, segments.pop()[0])
        segments.append((x, e))
        x = e
    return segments


def _grid_segments(bounds: np.ndarray, length: int, m: int) -> list[tuple[int, int]] | None:
    """Segments of length in [m, 2m - 1] (the proven fallback: each holds at most m coordinates)."""
    size = max(m, 2)
    if length < size:
        return [(0, length)] if _count(bounds, 0, length) <= length else None
    cuts = list(range(0, length - size + 1, size))
    segments = [(s, s + size) for s in cuts[:-1]] + [(cuts[-1], length)]
    return segments


def _spans_ok(bounds: np.ndarray, segments: list[tuple[int, int]], k: int) -> bool:
    starts = [s for s, _ in segments]
    for i in range(bounds.size - 1):
        lo, hi = bounds[i], bounds[i + 1]
        j = bisect.bisect_right(starts, lo) - 1
        first = segments[j][0] if j >= 0 and segments[j][1] > lo else math.floor(lo)
        j = bisect.bisect_left(starts, hi) - 1
        last = segments[j][1] if j >= 0 and segments[j][1] >= hi else math.ceil(hi)
        if last - first > k:
            return False
    return True


def _mirror(segments: list[tuple[int, int]], length: int) -> list[tuple[int, int]]:
    return sorted((length - e, length - s) for s, e in segments)


def _find_plan(t: np.ndarray, q: int, k: int) -> _Plan | None:
    """A feasible segment plan for k diag(t) = sum of k rank-q projectors, or None."""
    m = t.size
    views = [(False, t, q), (True, 1.0 - t, m - q)]
    views.sort(key=lambda view: view[2])  # the smaller rank first
    for complement, tau, rank in views:
        if k * rank < m:
            return None  # rank bound (the other view's bound is no weaker when ranks are sorted)
        length = k * rank
        d = k * tau
        for order in (np.argsort(-d, kind="stable"), np.argsort(d, kind="stable")):
            bounds = np.concatenate(([0.0], np.cumsum(d[order])))
            bounds[-1] = float(length)
            forward = _greedy_segments(bounds, length)
            mirrored = _greedy_segments(length - bounds[::-1], length)
            candidates = [forward, None if mirrored is None else _mirror(mirrored, length),
                          _grid_segments(bounds, length, m)]
            for segments in candidates:
                if segments is not None and _spans_ok(bounds, segments, k):
                    return _Plan(complement, rank, order, bounds, tuple(segments))
    return None


def _unit_frame(shares: np.ndarray, n: int) -> np.ndarray:
    """n unit vectors (columns, p x n) with sum u u^T = diag(shares), sum(shares) = n, p <= n.

    Equal-diagonal rotation as a sequence of pairings: keep orthogonal "images" y with ||y||^2 = mu;
    pair the largest mu >= 1 with the smallest mu <= 1: emit cos y_hi + sin y_lo (unit norm),
    keep -sin y_hi + cos y_lo (norm^2 mu_hi + mu_lo - 1). Exact in exact arithmetic.
    """
    p = shares.size
    values = np.zeros(n)
    values[:p] = shares
    images = np.zeros((n, p))
    images[np.arange(p), np.arange(p)] = np.sqrt(shares)
    alive = np.ones(n, dtype=bool)
    out = np.empty((p, n))
    for step in range(n - 1):
        masked = np.where(alive, values, -np.inf)
        hi = int(np.argmax(masked))
        lo = int(np.argmin(np.where(alive, values, np.inf)))
        v_hi, v_lo = values[hi], values[lo]
        if hi == lo or v_hi - v_lo <= 0.0:
            cos2 = 1.0 / max(v_hi, np.finfo(float).tiny)
            out[:, step] = images[hi] * math.sqrt(cos2)
            alive[hi] = False
            continue
        cos2 = min(max((1.0 - v_lo) / (v_hi - v_lo), 0.0), 1.0)
        cos, sin = math.sqrt(cos2), math.sqrt(1.0 - cos2)
        out[:, step] = cos * images[hi] + sin * images[lo]
        images[lo] = -sin * images[hi] + cos * images[lo]
        values[lo] = v_hi + v_lo - 1.0
        alive[hi] = False
    last = int(np.flatnonzero(alive)[0])
    norm = float(np.linalg.norm(images[last]))
    out[:, n - 1] = images[last] / norm if norm > 0 else 0.0
    return out


def _projector_bases(t: np.ndarray, q: int, k: int, plan: _Plan) -> list[np.ndarray]:
    """The k orthonormal bases W_j (m x q) with sum W_j W_j^T = k diag(t), from a plan."""
    m = t.size
    length = k * plan.rank
    lines = np.zeros((m, length))  # column u: the unit vector of cell u, coordinates in t's order
    covered = np.zeros(length, dtype=bool)
    bounds, order = plan.bounds, plan.order
    for s, e in plan.segments:
        lo = int(np.searchsorted(bounds[1:], s, "right"))
        hi = int(np.searchsorted(bounds[:-1], e, "left"))
        shares = np.minimum(bounds[lo + 1: hi + 1], e) - np.maximum(bounds[lo:hi], s)
        shares = np.maximum(shares, 0.0)
        shares *= (e - s) / shares.sum()
        lines[order[lo:hi], s:e] = _unit_frame(shares, e - s)
        covered[s:e] = True
    for u in np.flatnonzero(~covered):  # unit cells: the pure basis vector of their coordinate
        i = min(int(np.searchsorted(bounds, u + 0.5, "right")) - 1, m - 1)
        lines[order[i], u] = 1.0
    bases = [lines[:, j::k] for j in range(k)]
    if plan.complement:
        bases = [np.linalg.qr(W, mode="complete")[0][:, plan.rank:] for W in bases]
    return bases


# ----------------------------------------------------------------------------------------------
# Public API
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BalancedFactorization:
    """A width-d network (U, V) built from a global minimum, with its objective.

    Attributes:
        U: a x d.
        V: b x d (N x d for a minimum computed without X).
        width: d = block_size * blocks.
        block_size: r, the block size of the solve.
        blocks: k = d / r.
        objective: the width-d DropBlock objective (eq. 8, theta from eq. 7) of (U, V).
        minimum: the global minimum F* (``GlobalMin.objective``).
        exact: True when U V^T X = A* and objective == minimum (to rounding).
        kept_rank: l, the number of singular directions of Y P the network fits (the rank of A*
            when exact).
        min_exact_width: see :func:`min_exact_width`.
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
    min_exact_width: int

    @property
    def gap(self) -> float:
        """objective - minimum (>= 0; 0 when exact)."""
        return self.objective - self.minimum


@dataclass(frozen=True)
class WidthGap:
    """Objective of the network :func:`balanced_factorization` builds, against the width.

    Attributes:
        widths: the widths d asked for.
        objectives: the width-d objective of the returned network, per width.
        minimum: the global minimum F*.
        exact: whether that network attains F*, per width.
        kept_rank: the number of singular directions it fits, per width.
    """

    widths: np.ndarray
    objectives: np.ndarray
    minimum: float
    exact: np.ndarray
    kept_rank: np.ndarray

    @property
    def relative_gap(self) -> np.ndarray:
        """(objective - minimum) / minimum (0 where the minimum is 0 and the gap too)."""
        gap = self.objectives - self.minimum
        return gap / self.minimum if self.minimum > 0 else gap


def _check_result(result: object) -> GlobalMin:
    from .global_min import GlobalMin

    if not isinstance(result, GlobalMin):
        raise TypeError(f"result must be a GlobalMin (from structdrop.dropblock_global_min), got {type(result).__name__}")
    return result


def _blocks(result: GlobalMin, d: object) -> int:
    width = as_int("d", d, minimum=1)
    r = result.block_size
    if width % r:
        raise ValueError(f"r must divide d (blocks of r consecutive units): got d={width}, r={r}")
    return width // r


def _truncated(result: GlobalMin, kept: int) -> tuple[np.ndarray, float]:
    """Singular values and objective of the minimiser restricted to the top ``kept`` directions."""
    m = result.target_singular_values
    if kept >= result.rank:
        return result.singular_values[: result.rank], result.objective
    if kept == 0:
        return np.zeros(0), result.residual + float(np.sum(m**2))
    prox = prox_ksupport_sq(m[:kept], result.block_size, result.beta)
    lost = float(np.sum(m[kept:] ** 2))
    values = prox.values[: prox.rank]
    return values, result.residual + lost + prox.objective


def _decide(result: GlobalMin, k: int) -> tuple[int, np.ndarray, float, _Split, _Plan | None]:
    """(kept, singular values, objective, split, plan) of the best network this module builds at k."""
    r = result.block_size
    for kept in range(result.rank, -1, -1):
        values, objective = _truncated(result, kept)
        split = _split(values, r)
        if split.t.size == 0:
            return kept, values, objective, split, None
        plan = _find_plan(split.t, split.q, k)
        if plan is not None:
            return kept, values, objective, split, plan
    raise AssertionError("unreachable: kept = 0 always balances")  # pragma: no cover


def min_exact_width(result: GlobalMin) -> int:
    """The smallest width d (a multiple of r) from which :func:`balanced_factorization` is exact at
    every larger multiple of r.

    With the notation of the module docstring: r when the band is empty (rank(A*) <= r or all
    t_i = 1); r m when q^ = 1 (necessary and sufficient); otherwise the smallest k with success at
    every k' up to the proven bound ceil((4 m - 2)/(1 - max tau)) (scanned when that bound is within
    4096 of the rank bound, else the proven bound itself).
    """
    res = _check_result(result)
    r = res.block_size
    split = _split(res.singular_values[: res.rank], r)
    m, q = split.t.size, split.q
    if m == 0:
        return r
    low = max(-(-m // q), -(-m // (m - q)))
    if min(q, m - q) == 1:
        return r * m
    bounds = []
    for tau in (split.t, 1.0 - split.t):
        gap = 1.0 - float(tau.max())
        bounds.append(math.ceil((4 * m - 2) / gap) if gap > 0 else math.inf)
    proven = max(min(bounds), low)
    if not math.isfinite(proven):  # pragma: no cover - t in (0, 1) strictly
        raise AssertionError("no proven bound")
    if proven - low > _SCAN_LIMIT:
        return r * int(proven)
    k = int(proven)
    while k > low and _find_plan(split.t, q, k - 1) is not None:
        k -= 1
    return r * k


def balanced_factorization(result: GlobalMin, d: int) -> BalancedFactorization:
    """A width-d network at the global minimum when one exists (see the module docstring).

    Args:
        result: a :class:`structdrop.GlobalMin` (from data, from moments, or without X).
        d: the width, a positive multiple of the block size r of the solve.

    Returns:
        :class:`BalancedFactorization`: U (a x d), V (b x d; N x d without X) with blocks of r
        consecutive columns; when ``exact``, U V^T X = A*, all block products have Frobenius norm
        ||sigma(A*)||_(r)/k (Definition 3) and the width-d objective (eq. 8) equals F*. Otherwise
        the best truncation the module can balance (``kept_rank`` < rank(A*)), with its objective.

    Raises:
        ValueError: d < 1 or r does not divide d.
    """
    res = _check_result(result)
    k = _blocks(res, d)
    r = res.block_size
    kept, values, objective, split, plan = _decide(res, k)
    n = values.size
    S = split.saturated
    # E_j (n x r) in the coordinates of A*'s singular vectors: E_j E_j^T = (1/k)(diag(a_S) + c P_j).
    E = np.zeros((n, r * k))
    head = np.sqrt(values[:S] / k)
    bases = _projector_bases(split.t, split.q, k, plan) if plan is not None else None
    for j in range(k):
        cols = slice(j * r, j * r + r)
        block = E[:, cols]
        block[np.arange(S), np.arange(S)] = head
        if bases is not None:
            block[S:, S: S + split.q] = math.sqrt(split.c / k) * bases[j]
    U = res.left_vectors[:, :n] @ E
    V = res.right_coefficients[:n].T @ E
    exact = kept >= res.rank
    return BalancedFactorization(
        U=U, V=V, width=r * k, block_size=r, blocks=k,
        objective=res.objective if exact else objective,
        minimum=res.objective, exact=exact, kept_rank=kept if not exact else res.rank,
        min_exact_width=min_exact_width(res),
    )


def balanced_factors(result: GlobalMin, d: int) -> tuple[np.ndarray, np.ndarray]:
    """(U, V) of :func:`balanced_factorization`: the width-d network at the global minimum.

    U is a x d, V is b x d (N x d for a minimum computed without X, where the rows of
    ``result.right_coefficients`` are the right singular vectors themselves). Exact (U V^T X = A*,
    balanced, objective = F*) for every d >= :func:`min_exact_width`; see the module docstring for
    the construction, the widths, the cost and a counterexample below them.
    """
    fact = balanced_factorization(result, d)
    return fact.U, fact.V


def width_gap(result: GlobalMin, widths: Sequence[int]) -> WidthGap:
    """The width-d objective of the network :func:`balanced_factorization` returns, for each d.

    Cheap: no network is formed (only the plan of the construction and a prox per truncation).
    """
    res = _check_result(result)
    ds = [as_int("widths", w, minimum=1) for w in widths]
    objectives, exact, kept = [], [], []
    for w in ds:
        kept_w, _, objective, _, _ = _decide(res, _blocks(res, w))
        is_exact = kept_w >= res.rank
        objectives.append(res.objective if is_exact else objective)
        exact.append(is_exact)
        kept.append(kept_w if not is_exact else res.rank)
    return WidthGap(np.asarray(ds, dtype=int), np.asarray(objectives, dtype=float), res.objective,
                    np.asarray(exact, dtype=bool), np.asarray(kept, dtype=int))
