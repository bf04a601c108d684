"""k diag(t) as a sum of k orthogonal projectors of rank q: the core of the balanced factorisation.

Given t in (0, 1]^m with sum t = q (an integer) and a number of blocks k, find W_1, ..., W_k
(m x q, orthonormal columns) with sum_j W_j W_j^T = k diag(t). Necessary: k q >= m and
k (m - q) >= m (the rank of the sum and of the sum of the complements I - W_j W_j^T, when all
t_i < 1). Two methods:

- :func:`segment_plan` / :func:`bases_from_plan`: an explicit construction (see
  :mod:`structdrop.factorize`): the values k tau_i (tau = t, or 1 - t for the complements, whichever
  has the smaller rank q^) laid end to end on [0, k q^], cut at integers into segments overlapping
  at most as many coordinates as they are long, an equal-diagonal rotation in each segment, and
  cell u of the line in block u mod k. Exact in exact arithmetic; O(k q^ m) to form.
- :func:`solve_numerically`: Levenberg-Marquardt on the equations W W^T = k diag(tau),
  W_j^T W_j = I from seeded random starts, accepted only when the equations hold to rounding.
  It reaches block counts below the construction's when a solution exists there.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .least_squares import levenberg_marquardt

__all__ = [
    "SegmentPlan",
    "SummedPlans",
    "bases_from_plan",
    "proven_block_count",
    "rank_bound",
    "segment_plan",
    "solve_numerically",
]

# Largest number of unknowns (m k q^) the numerical solve takes on.
MAX_NUMERICAL_UNKNOWNS = 600


@dataclass(frozen=True)
class SegmentPlan:
    """Where the construction puts every coordinate and how it cuts the line."""

    complement: bool  # the projectors are built for 1 - t (rank m - q) and complemented
    rank: int  # q^, the rank of the built projectors
    order: np.ndarray  # coordinate order along the line
    bounds: np.ndarray  # positions of the coordinates' ends on [0, k q^], length m + 1
    segments: tuple[tuple[int, int], ...]  # segments of length >= 2 (all other cells are unit)


def _count(bounds: np.ndarray, s: float, e: float) -> int:
    """Number of coordinates whose interval overlaps (s, e) with positive length."""
    return int(np.searchsorted(bounds[:-1], e, "left") - np.searchsorted(bounds[1:], s, "right"))


def _greedy_segments(bounds: np.ndarray, length: int) -> list[tuple[int, int]] | None:
    """Forward greedy: unit cells where a cell holds one coordinate, else the shortest feasible
    segment."""
    inner = bounds[1:-1]
    segments: list[tuple[int, int]] = []
    x = 0
    while x < length:
        nxt = int(np.searchsorted(inner, x, "right"))
        if nxt == inner.size or inner[nxt] >= x + 1:
            x = length if nxt == inner.size else max(math.floor(inner[nxt]), x + 1)
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


def segment_plan(t: np.ndarray, q: int, k: int) -> SegmentPlan | None:
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
            candidates = [
                forward,
                None if mirrored is None else _mirror(mirrored, length),
                _grid_segments(bounds, length, m),
            ]
            for segments in candidates:
                if segments is not None and _spans_ok(bounds, segments, k):
                    return SegmentPlan(complement, rank, order, bounds, tuple(segments))
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


def bases_from_plan(t: np.ndarray, k: int, plan: SegmentPlan) -> np.ndarray:
    """The k orthonormal bases W_j (m x q) with sum W_j W_j^T = k diag(t), from a plan, stacked
    (k x m x q: one array, not k Python objects, so a large width costs only its numbers)."""
    m = t.size
    length = k * plan.rank
    lines = np.zeros((m, length))  # column u: the unit vector of cell u, coordinates in t's order
    covered = np.zeros(length, dtype=bool)
    bounds, order = plan.bounds, plan.order
    for s, e in plan.segments:
        lo = int(np.searchsorted(bounds[1:], s, "right"))
        hi = int(np.searchsorted(bounds[:-1], e, "left"))
        shares = np.minimum(bounds[lo + 1 : hi + 1], e) - np.maximum(bounds[lo:hi], s)
        shares = np.maximum(shares, 0.0)
        shares *= (e - s) / shares.sum()
        lines[order[lo:hi], s:e] = _unit_frame(shares, e - s)
        covered[s:e] = True
    unit = np.flatnonzero(~covered)  # unit cells: the pure basis vector of their coordinate
    coordinate = np.minimum(np.searchsorted(bounds, unit + 0.5, "right") - 1, m - 1)
    lines[order[coordinate], unit] = 1.0
    bases = lines.reshape(m, plan.rank, k).transpose(2, 0, 1)  # bases[j] = lines[:, j::k]
    return _complements(bases, plan.rank) if plan.complement else bases


def _complements(bases: np.ndarray, rank: int) -> np.ndarray:
    return np.linalg.qr(bases, mode="complete")[0][:, :, rank:]


def _equations(
    diagonal: np.ndarray, rank: int, k: int
) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Residuals and Jacobian of W W^T = diag(diagonal), W_j^T W_j = I (W = [W_1 ... W_k], m x k
    rank)."""
    m = diagonal.size
    width = k * rank
    eye_m, eye_r = np.eye(m), np.eye(rank)

    def fun(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        W = x.reshape(m, width)
        gram = W @ W.T - np.diag(diagonal)
        jac_sum = np.einsum("ac,bl->abcl", eye_m, W) + np.einsum("bc,al->abcl", eye_m, W)
        orth = np.empty((k, rank, rank))
        jac_orth = np.zeros((k, rank, rank, m, width))
        for j in range(k):
            cols = slice(j * rank, (j + 1) * rank)
            Wj = W[:, cols]
            orth[j] = Wj.T @ Wj - eye_r
            jac_orth[j, :, :, :, cols] = np.einsum("xl,cy->xycl", eye_r, Wj) + np.einsum(
                "yl,cx->xycl", eye_r, Wj
            )
        res = np.concatenate((gram.ravel(), orth.ravel()))
        jac = np.concatenate(
            (jac_sum.reshape(m * m, m * width), jac_orth.reshape(k * rank * rank, m * width))
        )
        return res, jac

    return fun


def solve_numerically(
    t: np.ndarray, q: int, k: int, *, starts: int = 3, seed: int = 0
) -> np.ndarray | None:
    """W_1..W_k (m x q, orthonormal; stacked k x m x q) with sum W_j W_j^T = k diag(t) to
    rounding, or None.

    Levenberg-Marquardt from ``starts`` seeded random orthonormal starts, on the view (t or 1 - t)
    of smaller rank; a solution is accepted only when, after re-orthonormalising every block, the
    sum matches k diag(t) to 1e-12 relative. None when the rank bound fails, when the system has
    more than MAX_NUMERICAL_UNKNOWNS unknowns, or when no start converges.
    """
    m = t.size
    complement = m - q < q
    tau, rank = (1.0 - t, m - q) if complement else (t, q)
    if rank == 0 or k * rank < m or m * k * rank > MAX_NUMERICAL_UNKNOWNS:
        return None
    diagonal = k * tau
    fun = _equations(diagonal, rank, k)
    rng = np.random.default_rng(seed)
    for _ in range(starts):
        start = np.hstack([np.linalg.qr(rng.standard_normal((m, rank)))[0] for _ in range(k)])
        x, _, _ = levenberg_marquardt(fun, start.ravel(), max_iterations=200, tolerance=1e-30)
        W = x.reshape(m, k * rank)
        bases = np.linalg.qr(W.reshape(m, k, rank).transpose(1, 0, 2))[0]
        total = np.einsum("jab,jcb->ac", bases, bases)
        if np.max(np.abs(total - np.diag(diagonal))) <= 1e-12 * max(k, 1):
            return _complements(bases, rank) if complement else bases
    return None


def rank_bound(t: np.ndarray, q: int) -> int:
    """The least k with k q >= m and k (m - q) >= m: no k below it admits a solution."""
    m = t.size
    return max(-(-m // q), -(-m // (m - q)))


def proven_block_count(t: np.ndarray, q: int) -> int:
    """A k from which the construction succeeds at every larger k (segments of length m to 2m - 1).

    Each such segment overlaps at most m coordinates, and a coordinate of length k tau_i touches
    segments spanning at most k tau_i + 4m - 2 cells, which is <= k once
    k >= (4m - 2)/(1 - tau_i); the view (t or 1 - t) with the smaller bound is used.
    """
    m = t.size
    bound = math.inf
    for tau in (t, 1.0 - t):
        gap = 1.0 - float(tau.max())
        if gap > 0:
            bound = min(bound, math.ceil((4 * m - 2) / gap))
    return max(int(bound), rank_bound(t, q))


class SummedPlans:
    """Block counts reachable as sums of counts at which a solution is known.

    Solutions add: if sum_{j<k1} P_j = k1 diag(t) and sum_{j<k2} P'_j = k2 diag(t), the k1 + k2
    projectors together sum to (k1 + k2) diag(t). Scanning k upwards from the rank bound, once every
    k in a run as long as the smallest solvable count c_min is reachable, every larger k is (add
    copies of c_min). ``solvable(k)`` decides a single count (by default: the
    construction succeeds).
    """

    def __init__(
        self, t: np.ndarray, q: int, scan_limit: int, solvable: Callable[[int], bool] | None = None
    ) -> None:
        self.t, self.q = t, q
        self.solvable = (
            solvable if solvable is not None else (lambda k: segment_plan(t, q, k) is not None)
        )
        self.low = rank_bound(t, q)
        self.limit = self.low + scan_limit
        self.parts: dict[int, tuple[int, ...] | None] = {}
        self.run_start: int | None = None
        self.smallest: int | None = None
        self._scanned = self.low - 1
        self._run = 0

    def _scan_to(self, upto: int) -> None:
        while self._scanned < min(upto, self.limit) and self.run_start is None:
            k = self._scanned + 1
            self._scanned = k
            found: tuple[int, ...] | None = None
            for j, first in self.parts.items():  # a sum first: cheaper than deciding k itself
                rest = self.parts.get(k - j)
                if first is not None and k - j >= j and rest is not None:
                    found = first + rest
                    break
            if found is None and self.solvable(k):
                found = (k,)
            self.parts[k] = found
            if found is None:
                self._run = 0
                continue
            self.smallest = k if self.smallest is None else self.smallest
            self._run += 1
            if self._run >= self.smallest:
                self.run_start = k - self._run + 1

    def first_of_all_larger(self) -> int | None:
        """The least k0 such that every k >= k0 is reachable (None if not found within the scan)."""
        self._scan_to(self.limit)
        return self.run_start

    def decompose(self, k: int) -> tuple[int, ...] | None:
        """Solvable block counts summing to k; None when not found within the scan."""
        self._scan_to(k)
        if k in self.parts:
            return self.parts[k]
        if self.run_start is not None and self.smallest is not None and k >= self.run_start:
            copies = (k - self.run_start) // self.smallest
            rest = self.parts[k - copies * self.smallest]
            assert rest is not None
            return rest + (self.smallest,) * copies
        return None
