"""Closed-form global minimum of the DropBlock objective (Theorem 7 and Corollary 8, corrected)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._validation import as_float_array, as_int, as_probability
from .ksupport import ProxMethod, prox_ksupport_sq

__all__ = ["GlobalMin", "dropblock_global_min", "reduce_to_row_space", "row_space_basis"]


@dataclass(frozen=True)
class GlobalMin:
    """The global minimiser of F(A) = ||Y - A||^2 + beta ||sigma(A)||_(r)^2 over reachable A.

    Attributes:
        A: the minimiser A* (a x N), the network output U V^T X at the global minimum.
        singular_values: singular values a* of A*, descending (min(a, k) entries, k the rank of X's
            row space, or N without X).
        rho: 1 + size of the head of a* that is only shrunk (1-based, in 1..r).
        rank: rank of A* (the paper's lambda).
        objective: the minimum value F(A*), including the part of Y outside X's row space.
        beta: beta_bar = (1 - theta_bar)/theta_bar.
        target_singular_values: singular values m of Y (of Y P when X is given), descending.
        residual: ||Y (I - P)||_F^2, the part no A in X's row space can fit (0 without X).
    """

    A: np.ndarray
    singular_values: np.ndarray
    rho: int
    rank: int
    objective: float
    beta: float
    target_singular_values: np.ndarray
    residual: float


def row_space_basis(X: np.ndarray) -> np.ndarray | None:
    """Orthonormal basis (N x k) of the row space of X, or None when it is all of R^N.

    The numerical rank uses NumPy's matrix_rank tolerance, max(b, N) eps sigma_max.
    """
    _, sigma, vt = np.linalg.svd(X, full_matrices=False)
    if sigma.size == 0 or sigma[0] == 0.0:
        return np.zeros((X.shape[1], 0))
    tol = sigma[0] * max(X.shape) * np.finfo(np.float64).eps
    k = int(np.count_nonzero(sigma > tol))
    if k == X.shape[1]:
        return None
    return vt[:k].T


def reduce_to_row_space(Y: np.ndarray, X: object | None) -> tuple[np.ndarray, np.ndarray | None, float]:
    """Coordinates of Y P in an orthonormal basis of X's row space, that basis, and ||Y (I - P)||^2.

    Without X (or when X's row space is all of R^N) returns (Y, None, 0.0): no restriction.
    Validates X (2-D, finite, as many columns as Y).
    """
    if X is None:
        return Y, None, 0.0
    data = as_float_array("X", X, ndim=2)
    if data.shape[1] != Y.shape[1]:
        raise ValueError(
            f"X and Y must have the same number of samples (columns): X is {data.shape}, Y is {Y.shape}"
        )
    basis = row_space_basis(data)
    if basis is None:
        return Y, None, 0.0
    reduced = Y @ basis  # a x k
    residual = float(np.linalg.norm(Y - reduced @ basis.T) ** 2)
    return reduced, basis, residual


def dropblock_global_min(
    Y: object,
    r: int,
    theta_bar: float,
    X: object | None = None,
    method: ProxMethod = "sweep",
) -> GlobalMin:
    """Global minimum of the DropBlock objective in product space (Theorem 7, corrected).

    Minimises F(A) = ||Y - A||_F^2 + beta ||sigma(A)||_(r)^2, beta = (1 - theta_bar)/theta_bar,
    over every A = U V^T X a network can produce. By Corollary 8 this is also the minimum of the
    factorised DropBlock objective (3)/(8) over all widths, and F(A*) <= f(U, V) for every (U, V)
    of a width-d network trained with theta when theta_bar = 1/(1 + beta_for_width(theta, d, r)).

    Args:
        Y: targets, a x N.
        r: block size (integer >= 1).
        theta_bar: retain probability in (0, 1] of the product-space problem.
        X: optional data, b x N. Without it A ranges over all a x N matrices (the paper's full
            column rank case). With it A is restricted to X's row space, whatever X's rank.
        method: "sweep" (O(n)) or "search" (literal Theorem 7 scan, O(n r)) for the prox.

    Deviations from the printed paper: rho ranges over 1..r (not 1..r-1), and any X is handled:
    with P the projector onto X's row space the minimum is ||Y (I - P)||^2 + [Theorem 7 on the
    singular values of Y P]; the paper assumes X has full column rank, which its own synthetic
    setup (b = 100 < N = 1000) does not.

    Cost: one thin SVD of X (when given) and one of Y P (a x k); A* is a new a x N array.
    """
    targets = as_float_array("Y", Y, ndim=2)
    block = as_int("r", r, minimum=1)
    tb = as_probability("theta_bar", theta_bar)
    beta = (1.0 - tb) / tb
    if not np.isfinite(beta):
        raise ValueError(f"theta_bar is too small: beta = (1 - theta_bar)/theta_bar overflows, got {theta_bar!r}")
    reduced, basis, residual = reduce_to_row_space(targets, X)
    if basis is not None and basis.shape[1] == 0:  # X = 0: only A = 0 is reachable
        norm_sq = float(np.linalg.norm(targets) ** 2)
        if not np.isfinite(norm_sq):
            raise ValueError("Y is too large: ||Y||^2 overflows float64")
        return GlobalMin(
            A=np.zeros_like(targets), singular_values=np.zeros(0), rho=1, rank=0, objective=norm_sq,
            beta=beta, target_singular_values=np.zeros(0), residual=norm_sq,
        )
    if basis is None:
        left, m, right = np.linalg.svd(targets, full_matrices=False)
    else:
        left, m, w = np.linalg.svd(reduced, full_matrices=False)
        right = w @ basis.T
    try:
        prox = prox_ksupport_sq(m, block, beta, method=method)
    except ValueError as exc:
        if str(exc).startswith("m is too large"):
            raise ValueError("Y is too large: the minimum objective overflows float64") from None
        raise
    if not np.isfinite(residual + prox.objective):
        raise ValueError("Y is too large: the minimum objective overflows float64")
    a_star = prox.values
    A = (left[:, : prox.rank] * a_star[: prox.rank]) @ right[: prox.rank]
    return GlobalMin(
        A=A,
        singular_values=a_star,
        rho=prox.rho,
        rank=prox.rank,
        objective=residual + prox.objective,
        beta=beta,
        target_singular_values=m,
        residual=residual,
    )
