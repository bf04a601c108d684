"""Plain NumPy versions of the deterministic objectives: the test oracle and the benchmark baseline.

Written separately from the C++ kernels, and from a different formulation: everything here is the
direct formula over all N samples (G = V^T X formed explicitly, chunk by chunk over the samples to
bound memory), never the moment identities the C++ uses. The overlapping-DropBlock statistics are
computed from the unit-by-seed incidence matrix (inclusion-exclusion). Schemes are read only through their public fields
(theta, block_size, gamma) and their class name.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "dropconnect_paper_regularizer",
    "objective_terms",
    "overlapping_dropblock_stats",
]


def _chunks(n: int, chunk_size: int):
    for start in range(0, n, chunk_size):
        yield slice(start, min(n, start + chunk_size))


def overlapping_dropblock_stats(d: int, block_size: int, gamma: float) -> tuple[np.ndarray, np.ndarray]:
    """(mean, C-bar) of overlapping DropBlock from the unit-by-seed incidence matrix.

    W(i) = set of seeds j in 0..d-block_size with j <= i < j + block_size, as the rows of a 0/1
    incidence matrix B (d x seeds); |W(i) u W(j)| = |W(i)| + |W(j)| - (B B^T)_ij.
    E z_i = q^|W(i)|, E z_i z_j = q^|W(i) u W(j)| (q = 1 - gamma), C-bar = E z z^T / (mu mu^T) - 1.
    """
    q = 1.0 - gamma
    units = np.arange(d)[:, None]
    seeds = np.arange(d - block_size + 1)[None, :]
    B = ((seeds <= units) & (units < seeds + block_size)).astype(float)
    sizes = B.sum(axis=1)
    union = sizes[:, None] + sizes[None, :] - B @ B.T
    mean = q**sizes
    second = q**union
    return mean, second / np.outer(mean, mean) - 1.0


def dropconnect_paper_regularizer(U, V, X, theta: float, chunk_size: int = 65536) -> float:
    """The printed (approximate) DropConnect regulariser beta sum_i ||u_i||^2 ||X^T v_i||^2."""
    U, V, X = (np.asarray(m, dtype=float) for m in (U, V, X))
    beta = (1.0 - theta) / theta
    g_sq = np.zeros(U.shape[1])
    for sl in _chunks(X.shape[1], chunk_size):
        g_sq += np.sum((V.T @ X[:, sl]) ** 2, axis=1)
    return float(beta * np.sum(np.sum(U**2, axis=0) * g_sq))


def objective_terms(scheme, Y, U, V, X, chunk_size: int = 65536) -> tuple[float, float]:
    """(fit, regulariser) of the exact deterministic objective by the direct formula over all N samples.

    fit = ||Y - U V^T X||^2; the regulariser per scheme:
      NoDropout            0
      Dropout              beta sum_i ||u_i||^2 ||g_i||^2            (g_i = row i of G = V^T X)
      DropBlock            beta sum_blocks ||U_blk G_blk||^2
      OverlappingDropBlock sum_ij C-bar_ij (u_i . u_j)(g_i . g_j)    (C-bar from explicit seed sets)
      DropConnect          beta sum_i ||u_i||^2 sum_j V_ji^2 ||x_j||^2   (x_j = row j of X)
    Samples are processed ``chunk_size`` at a time (memory O((a + d) chunk_size)).
    """
    Y, U, V, X = (np.asarray(m, dtype=float) for m in (Y, U, V, X))
    name = type(scheme).__name__
    d = U.shape[1]
    fit = 0.0
    g_sq = np.zeros(d)  # ||g_i||^2
    block_sq = 0.0
    gg = np.zeros((d, d)) if name == "OverlappingDropBlock" else None
    x_sq = np.zeros(X.shape[0])  # ||x_j||^2
    r = getattr(scheme, "block_size", 1)
    for sl in _chunks(X.shape[1], chunk_size):
        G = V.T @ X[:, sl]
        fit += float(np.sum((Y[:, sl] - U @ G) ** 2))
        if name in ("Dropout", "DropConnect"):
            g_sq += np.sum(G**2, axis=1)
        if name == "DropConnect":
            x_sq += np.sum(X[:, sl] ** 2, axis=1)
        if name == "DropBlock":
            for start in range(0, d, r):
                block_sq += float(np.sum((U[:, start : start + r] @ G[start : start + r]) ** 2))
        if gg is not None:
            gg += G @ G.T
    if name == "NoDropout":
        reg = 0.0
    elif name == "Dropout":
        beta = (1.0 - scheme.theta) / scheme.theta
        reg = beta * float(np.sum(np.sum(U**2, axis=0) * g_sq))
    elif name == "DropBlock":
        reg = (1.0 - scheme.theta) / scheme.theta * block_sq
    elif name == "OverlappingDropBlock":
        _, cbar = overlapping_dropblock_stats(d, scheme.block_size, scheme.gamma)
        reg = float(np.sum(cbar * (U.T @ U) * gg))
    elif name == "DropConnect":
        beta = (1.0 - scheme.theta) / scheme.theta
        reg = beta * float(np.sum(U**2, axis=0) @ ((V**2).T @ x_sq))
    else:
        raise TypeError(f"unknown scheme {name}")
    return fit, reg
