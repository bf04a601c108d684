"""Independent formulations the suites use as oracles, and sorted_sweep (the compiled sweep
applied in sorted order, the reference the selection kernels must match)."""

from __future__ import annotations

import numpy as np

from structdrop import _core


def variational_norm_sq(s: np.ndarray, r: int, iterations: int = 200) -> float:
    """||s||_(r)^2 = min sum s_i^2 / t_i over t in (0, 1]^n, sum t <= r, solved by bisection.

    The minimiser is t_i = min(1, |s_i| / sqrt(nu)) with nu the multiplier of sum t <= r; we
    bisect on sqrt(nu) in log space. Independent of the closed form of Theorem 6.
    """
    s = np.abs(np.asarray(s, dtype=float))
    s = s[s > 0]
    if s.size == 0:
        return 0.0
    if s.size <= r:
        return float(np.sum(s**2))
    lo, hi = np.log(s.min()) - 50.0, np.log(s.max()) + 50.0  # bracket for log sqrt(nu)
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        total = np.minimum(1.0, s / np.exp(mid)).sum()
        if total > r:
            lo = mid
        else:
            hi = mid
    t = np.minimum(1.0, s / np.exp(hi))
    t *= min(1.0, r / t.sum())
    return float(np.sum(s**2 / t))


def dual_norm(g: np.ndarray, r: int) -> float:
    """Dual of the r-support norm: the l2 norm of the r largest magnitudes (Argyriou et al.
    2012)."""
    top = np.sort(np.abs(np.ravel(g)))[::-1][:r]
    return float(np.sqrt(np.sum(top**2)))


def bisection_prox(m: np.ndarray, r: int, beta: float) -> np.ndarray:
    """argmin ||m - a||^2 + beta ||a||_(r)^2 for m >= 0 by bisection on tau (200 halvings)."""
    m = np.asarray(m, dtype=float)
    positive = m > 0
    if np.count_nonzero(positive) <= r or beta == 0:
        return m / (1.0 + beta) if beta else m.copy()
    scale = m.max()
    s = m / scale  # tau scales as 1/scale; keeps m tau finite
    # tau lies between beta/max(s) (S = 0) and (1 + beta)/min(s) (S = count): bisect log(tau)
    lo, hi = np.log(beta / s.max()), np.log((1.0 + beta) / s[positive].min())
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if np.clip(s * np.exp(mid) - beta, 0.0, 1.0).sum() < r:
            lo = mid
        else:
            hi = mid
    t = np.clip(s * np.exp(0.5 * (lo + hi)) - beta, 0.0, 1.0)
    return m * t / (t + beta)


def sorted_sweep(m: np.ndarray, r: int, beta: float) -> np.ndarray:
    order = np.argsort(-m, kind="stable")
    values = np.empty_like(m)
    values[order] = _core.prox_sweep(np.ascontiguousarray(m[order]), r, beta)[0]
    return values
