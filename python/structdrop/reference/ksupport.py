"""Plain NumPy versions of the k-support norm, its prox and the global minimum.

Written separately from the C++ kernels (different formulations where possible) so that they
serve as a test oracle and as the benchmark baseline:
- the norm evaluates the corrected Theorem 6 condition for every rho at once (vectorised);
- the sweep bisects over the sorted breakpoints of S(tau) = sum clip(m tau - beta, 0, 1),
  evaluating S directly, and interpolates linearly inside the bracketing segment;
- the search is the literal Theorem 7 scan, vectorised over lambda for each rho;
- the global minimum projects with pinv(X) X instead of an SVD basis.
"""

from __future__ import annotations

import numpy as np

from .._migration import renamed_keywords

__all__ = [
    "beta_for_width",
    "dropblock_global_min",
    "ksupport_norm_sq",
    "ksupport_split",
    "prox_ksupport_sq",
    "theta_for_width",
]


def _magnitudes(x) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    if x.ndim == 2:
        return np.linalg.svd(x, compute_uv=False)
    return np.sort(np.abs(x))[::-1]


def _split_and_norm(s: np.ndarray, r: int) -> tuple[int, float]:
    nnz = int(np.count_nonzero(s))
    if nnz == 0:
        return 1, 0.0
    if r > nnz:
        return nnz + 1, float(np.sum(s[:nnz] ** 2))
    rho = np.arange(1, r + 1)
    tails = np.cumsum(s[::-1])[::-1][:r]  # T_rho for rho = 1..r
    ok = tails >= (r - rho + 1) * s[:r]
    best = int(rho[np.argmax(ok)])  # the first rho satisfying the condition
    return best, float(np.sum(s[: best - 1] ** 2) + tails[best - 1] ** 2 / (r - best + 1))


@renamed_keywords("reference.ksupport_norm_sq", r="block_size")
def ksupport_norm_sq(x, block_size: int) -> float:
    """||x||_(r)^2 (r = block_size) of a vector (magnitudes) or a matrix (singular values).

    Returns:
        float: the squared r-support norm.

    Raises:
        ValueError: block_size < 1 (no input validation beyond what NumPy does: this is the oracle).

    Example:
        >>> from structdrop import reference
        >>> reference.ksupport_norm_sq([3.0, 1.0], 1)  # r = 1: the squared l1 norm
        16.0
    """
    return _split_and_norm(_magnitudes(x), int(block_size))[1]


@renamed_keywords("reference.ksupport_split", r="block_size")
def ksupport_split(x, block_size: int) -> int:
    """rho* of the corrected Theorem 6.

    Returns:
        int: rho* in 1..block_size.

    Raises:
        ValueError: block_size < 1 (no input validation beyond what NumPy does: this is the oracle).

    Example:
        >>> from structdrop import reference
        >>> reference.ksupport_split([3.0, 1.0, 1.0], 2)  # 3 > 1 + 1: the head is the first value
        2
    """
    return _split_and_norm(_magnitudes(x), int(block_size))[0]


def _weights(m: np.ndarray, tau: float, beta: float) -> np.ndarray:
    with np.errstate(invalid="ignore", over="ignore"):  # 0 * inf for a zero unit: its t is 0
        return np.where(m > 0, np.clip(m * tau - beta, 0.0, 1.0), 0.0)


def _sweep_sorted(m: np.ndarray, r: int, beta: float) -> np.ndarray:
    """t for descending m: t = clip(m tau - beta, 0, 1), sum t = r (t = 1 on the support if
    nnz <= r)."""
    positive = m[m > 0]
    if positive.size <= r:
        return (m > 0).astype(float)
    with np.errstate(
        over="ignore", divide="ignore"
    ):  # tiny breakpoints: (1 + beta)/tau -> inf is fine
        return _weights(m, _threshold(positive, r, beta), beta)


def _threshold(positive: np.ndarray, r: int, beta: float) -> float:
    """tau with sum clip(m tau - beta, 0, 1) = r: bisection over the sorted breakpoints with S
    evaluated directly, then linear interpolation inside the bracketing segment."""

    def S(tau: float) -> float:
        return float(np.clip(positive * tau - beta, 0.0, 1.0).sum())

    with np.errstate(over="ignore"):
        taus = np.unique(np.concatenate([beta / positive, (beta + 1.0) / positive]))
    taus = taus[(taus > 0) & np.isfinite(taus)]
    if (
        S(taus[-1]) < r
    ):  # the root lies beyond the last breakpoint that fits in a double: S is linear there
        started = positive[(positive * taus[-1] - beta > 0) & (positive * taus[-1] - beta < 1)]
        return taus[-1] + (r - S(taus[-1])) / started.sum()
    lo, hi = 0, taus.size - 1  # S(taus[-1]) >= r
    while lo < hi:
        mid = (lo + hi) // 2
        if S(taus[mid]) >= r:
            hi = mid
        else:
            lo = mid + 1
    t1 = taus[lo]
    t0 = taus[lo - 1] if lo > 0 else 0.0
    s0, s1 = S(t0), S(t1)
    return t0 + (r - s0) * (t1 - t0) / (s1 - s0) if s1 > s0 else t1


@renamed_keywords("reference.prox_ksupport_sq", r="block_size")
def prox_ksupport_sq(m, block_size: int, beta: float, method: str = "sweep") -> dict:
    """argmin_a ||m - a||^2 + beta ||a||_(r)^2, m >= 0 in any order.

    Returns:
        dict: ``values`` (the minimiser, in input order), ``rho``, ``rank`` and ``objective``.

    Raises:
        ValueError: an unknown ``method`` ("sweep" or "search").

    Example:
        >>> from structdrop import reference
        >>> out = reference.prox_ksupport_sq([4.0, 1.0], 1, 1.0)
        >>> out["values"].tolist(), out["rank"]
        ([2.0, 0.0], 1)
    """
    m = np.asarray(m, dtype=float)
    order = np.argsort(-m, kind="stable")
    # an exact power-of-two rescaling: breakpoints beta/m_i of values near the smallest normal
    # double would overflow (and the 0 * inf of a zero unit give NaN) without it
    top = float(m.max()) if m.size else 0.0
    scale = (
        float(np.ldexp(1.0, int(np.frexp(top)[1]) - 1)) if top > 0 else 1.0
    )  # max(m) / scale in [1, 2)
    ms = m[order] / scale
    r = int(block_size)
    beta = float(beta)
    if method == "sweep":
        t = _sweep_sorted(ms, r, beta)
        if beta == 0.0:
            a = ms.copy()
            objective = 0.0
        else:
            a = ms * t / (t + beta)
            objective = float(np.sum(ms**2 * beta / (t + beta)))
        rho = min(int(np.count_nonzero(t >= 1.0)) + 1, r)
    elif method == "search":
        a, rho, objective = _search_sorted(ms, r, beta)
    else:
        raise ValueError(f"unknown method {method!r}")
    values = np.empty_like(a)
    values[order] = a * scale
    return {
        "values": values,
        "rho": rho,
        "rank": int(np.count_nonzero(a > 0)),
        "objective": objective * scale * scale,
    }


def _search_sorted(m: np.ndarray, r: int, beta: float) -> tuple[np.ndarray, int, float]:
    """The literal Theorem 7 scan over (rho, lambda), rho in 1..r, vectorised over lambda."""
    n = m.size
    if not np.any(m > 0):
        return np.zeros(n), 1, 0.0
    sq = m**2
    tail = np.concatenate([np.cumsum(sq[::-1])[::-1], [0.0]])  # tail[k] = sum_{i>=k} (0-based)
    head = np.concatenate([[0.0], np.cumsum(sq)])  # head[k] = sum_{i<k}
    shrink = beta / (1.0 + beta)
    # Collect every feasible candidate with its value and whether it also meets the
    # complementary conditions; pick the best value, preferring consistent ones among near-ties.
    # Every candidate as a row of (value, consistent, kind, rho, lambda); infeasible ones get inf.
    rel = 1e-12
    rows_value, rows_ok, rows_rho, rows_lam = [], [], [], []
    lam = np.arange(
        1, min(r - 1, n) + 1
    )  # head-only: lambda <= rho - 1 <= r - 1 units (rho = 0 marks them)
    rows_value.append(shrink * head[lam] + tail[lam])
    rows_ok.append((lam == n) | (np.append(m, 0.0)[lam] == 0) | (beta == 0))
    rows_rho.append(np.zeros(lam.size, dtype=int))
    rows_lam.append(lam)
    for rho in range(1, min(r, n) + 1):
        lam = np.arange(rho, n + 1)
        S = np.cumsum(m[rho - 1 :])
        c = (r - rho + 1) + beta * (lam - rho + 1)
        feasible = (
            (m[lam - 1] * c >= beta * S * (1 - rel))
            & (m[rho - 1] * c <= (beta + 1) * S * (1 + rel))
            & (S > 0)
        )
        nxt = np.append(m[rho:], 0.0)  # m_{lambda+1}
        ok_next = (lam == n) | (nxt * c <= beta * S * (1 + rel))
        ok_prev = True if rho == 1 else (m[rho - 2] * c >= (beta + 1) * S * (1 - rel))
        rows_value.append(
            np.where(feasible, shrink * head[rho - 1] + beta * S**2 / c + tail[lam], np.inf)
        )
        rows_ok.append(ok_next & ok_prev)
        rows_rho.append(np.full(lam.size, rho))
        rows_lam.append(lam)
    values = np.concatenate(rows_value)
    ok = np.concatenate(rows_ok)
    rhos = np.concatenate(rows_rho)
    lams = np.concatenate(rows_lam)
    low = values.min()
    near = values <= low + 64 * np.finfo(float).eps * low
    pick = np.flatnonzero(near & ok)
    j = int(pick[np.argmin(values[pick])]) if pick.size else int(np.argmin(values))
    value, end = float(values[j]), int(lams[j])
    a = np.zeros(n)
    if rhos[j] == 0:  # head only: the first ``end`` entries shrunk
        a[:end] = m[:end] / (1.0 + beta)
        return a, min(end + 1, r), value
    rho = int(rhos[j])
    band_sum = float(m[rho - 1 : end].sum())
    band_c = (r - rho + 1) + beta * (end - rho + 1)
    a[: rho - 1] = m[: rho - 1] / (1.0 + beta)
    a[rho - 1 : end] = np.maximum(m[rho - 1 : end] - beta * band_sum / band_c, 0.0)
    return a, rho, value


@renamed_keywords("reference.theta_for_width", d="width", r="block_size")
def theta_for_width(theta_bar: float, width: int, block_size: int) -> float:
    """eq. 7: theta(d) = theta_bar r / (theta_bar r + (1 - theta_bar) d), with d = width and
    r = block_size.

    Returns:
        float: the retain probability of a width-d network.

    Raises:
        ZeroDivisionError: theta_bar r + (1 - theta_bar) d = 0 (no validation: the oracle).

    Example:
        >>> from structdrop import reference
        >>> reference.theta_for_width(0.5, 10, 10)  # d = r: theta = theta_bar
        0.5
    """
    r, d = block_size, width
    return theta_bar * r / (theta_bar * r + (1 - theta_bar) * d)


@renamed_keywords("reference.beta_for_width", d="width", r="block_size")
def beta_for_width(theta: float, width: int, block_size: int) -> float:
    """beta_bar = (r/d)(1 - theta)/theta, d = width, r = block_size.

    Returns:
        float: the product-space strength of a width-d network with retain probability theta.

    Raises:
        ZeroDivisionError: width = 0 or theta = 0 (no validation: the oracle).

    Example:
        >>> from structdrop import reference
        >>> reference.beta_for_width(0.5, 50, 5)
        0.1
    """
    return block_size * (1 - theta) / (width * theta)


def _pinv(X: np.ndarray) -> np.ndarray:
    """Pseudo-inverse with NumPy's matrix_rank cut-off (max(b, N) eps sigma_max)."""
    cutoff = max(X.shape) * np.finfo(float).eps
    try:
        return np.linalg.pinv(X, rtol=cutoff)
    except TypeError:  # NumPy < 2 names it rcond
        return np.linalg.pinv(X, rcond=cutoff)


@renamed_keywords("reference.dropblock_global_min", r="block_size")
def dropblock_global_min(Y, block_size: int, theta_bar: float, X=None) -> dict:
    """min over A in X's row space of ||Y - A||^2 + beta ||sigma(A)||_(r)^2 (r = block_size), beta
    from theta_bar.

    Returns:
        dict: ``A``, ``singular_values``, ``rho``, ``rank``, ``objective`` and ``beta``.

    Raises:
        ValueError: a block_size < 1; numpy.linalg.LinAlgError: an SVD that does not converge.

    Example:
        >>> import numpy as np
        >>> from structdrop import reference
        >>> out = reference.dropblock_global_min(np.diag([3.0, 2.0, 1.0]), 1, 1 / 1.1)
        >>> round(out["objective"], 4), out["rank"]
        (2.7692, 3)
    """
    Y = np.asarray(Y, dtype=float)
    beta = (1 - theta_bar) / theta_bar
    if X is None:
        P = None
        target = Y
    else:
        X = np.asarray(X, dtype=float)
        P = _pinv(X) @ X
        target = Y @ P
    U, m, Vt = np.linalg.svd(target, full_matrices=False)
    prox = prox_ksupport_sq(m, block_size, beta)
    A = (U * prox["values"]) @ Vt
    residual = 0.0 if P is None else float(np.sum((Y - target) ** 2))
    return {
        "A": A,
        "singular_values": prox["values"],
        "rho": prox["rho"],
        "rank": prox["rank"],
        "objective": residual + prox["objective"],
        "beta": beta,
    }
