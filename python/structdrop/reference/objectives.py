"""Plain NumPy versions of the deterministic objectives: the test oracle and the benchmark baseline.

Written separately from the C++ kernels, and from a different formulation: everything here is the
direct formula over all N samples (G = V^T X formed explicitly, chunk by chunk over the samples to
bound memory), never the moment identities the C++ uses. The overlapping-DropBlock statistics are
computed from the unit-by-seed incidence matrix (inclusion-exclusion). Schemes are read only through
their public fields (theta, block_size, gamma) and their class name.
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


def overlapping_dropblock_stats(
    d: int, block_size: int, gamma: float
) -> tuple[np.ndarray, np.ndarray]:
    """(mean, C-bar) of overlapping DropBlock from the unit-by-seed incidence matrix.

    W(i) = set of seeds j in 0..d-block_size with j <= i < j + block_size, as the rows of a 0/1
    incidence matrix B (d x seeds); ``|W(i) u W(j)| = |W(i)| + |W(j)| - (B B^T)_ij``.
    ``E z_i = q^|W(i)|``, ``E z_i z_j = q^|W(i) u W(j)|`` (q = 1 - gamma),
    C-bar = E z z^T / (mu mu^T) - 1.
    """
    q = 1.0 - gamma
    units = np.arange(d)[:, None]
    seeds = np.arange(d - block_size + 1)[None, :]
    B = ((seeds <= units) & (units < seeds + block_size)).astype(float)
    sizes = B.sum(axis=1)
    union = sizes[:, None] + sizes[None, :] - B @ B.T
    mean = q**sizes
    # C-bar_ij = q^|W(i) u W(j)| / (q^|W(i)| q^|W(j)|) - 1; the exponent is formed in exact integer
    # arithmetic so that C-bar is exactly 0 where W(i) and W(j) are disjoint.
    exponent = union - sizes[:, None] - sizes[None, :]
    return mean, q**exponent - 1.0


def dropconnect_paper_regularizer(U, V, X, theta: float, chunk_size: int = 65536) -> float:
    """The printed (approximate) DropConnect regulariser beta sum_i ||u_i||^2 ||X^T v_i||^2."""
    U, V, X = (np.asarray(m, dtype=float) for m in (U, V, X))
    beta = (1.0 - theta) / theta
    g_sq = np.zeros(U.shape[1])
    for sl in _chunks(X.shape[1], chunk_size):
        g_sq += np.sum((V.T @ X[:, sl]) ** 2, axis=1)
    return float(beta * np.sum(np.sum(U**2, axis=0) * g_sq))


def objective_terms(scheme, Y, U, V, X, chunk_size: int = 65536) -> tuple[float, float]:
    """(fit, regulariser) of the exact deterministic objective by the direct formula over all
    N samples.

    fit = ||Y - U V^T X||^2; the regulariser per scheme::

      NoDropout            0
      Dropout              beta sum_i ||u_i||^2 ||g_i||^2            (g_i = row i of G = V^T X)
      DropBlock            beta sum_blocks ||U_blk G_blk||^2
      OverlappingDropBlock sum_ij C-bar_ij (u_i . u_j)(g_i . g_j)    (C-bar by inclusion-exclusion;
                           g_i . g_j accumulated only on the diagonals where C-bar is non-zero)
      DropConnect          beta sum_i ||u_i||^2 sum_j V_ji^2 ||x_j||^2   (x_j = row j of X)

    Samples are processed ``chunk_size`` at a time (memory O((a + d) chunk_size)).
    """
    Y, U, V, X = (np.asarray(m, dtype=float) for m in (Y, U, V, X))
    name = type(scheme).__name__
    d = U.shape[1]
    fit = 0.0
    g_sq = np.zeros(d)  # ||g_i||^2
    block_sq = 0.0
    cbar = None
    if name == "OverlappingDropBlock":
        _, cbar = overlapping_dropblock_stats(d, scheme.block_size, scheme.gamma)
        # Only the diagonals of C-bar that hold a non-zero entry need g_i . g_{i+k} (read off
        # C-bar).
        offsets = [k for k in range(d) if np.any(np.diagonal(cbar, k) != 0.0)]
        gg_diag = {k: np.zeros(d - k) for k in offsets}
    x_sq = np.zeros(X.shape[0])  # ||x_j||^2
    r = getattr(scheme, "block_size", 1)
    for sl in _chunks(X.shape[1], chunk_size):
        G = V.T @ X[:, sl]
        fit += float(np.sum((Y[:, sl] - U @ G) ** 2))
        if name == "Dropout":
            g_sq += np.sum(G**2, axis=1)
        if name == "DropConnect":
            x_sq += np.sum(X[:, sl] ** 2, axis=1)
        if name == "DropBlock":
            for start in range(0, d, r):
                block_sq += float(np.sum((U[:, start : start + r] @ G[start : start + r]) ** 2))
        if cbar is not None:
            for k in offsets:
                gg_diag[k] += np.einsum("in,in->i", G[: d - k], G[k:])
    if name == "NoDropout":
        reg = 0.0
    elif name == "Dropout":
        beta = (1.0 - scheme.theta) / scheme.theta
        reg = beta * float(np.sum(np.sum(U**2, axis=0) * g_sq))
    elif name == "DropBlock":
        reg = (1.0 - scheme.theta) / scheme.theta * block_sq
    elif name == "OverlappingDropBlock":
        assert cbar is not None  # computed above for this scheme
        uu = U.T @ U
        reg = 0.0
        for k in offsets:  # sum over i, j of C-bar_ij (u_i . u_j)(g_i . g_j), C-bar symmetric
            term = float(np.sum(np.diagonal(cbar, k) * np.diagonal(uu, k) * gg_diag[k]))
            reg += term if k == 0 else 2.0 * term
    elif name == "DropConnect":
        beta = (1.0 - scheme.theta) / scheme.theta
        reg = beta * float(np.sum(U**2, axis=0) @ ((V**2).T @ x_sq))
    else:
        raise TypeError(f"unknown scheme {name}")
    return fit, reg
