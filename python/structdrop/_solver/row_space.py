"""The target of the closed-form minimum restricted to X's row space, by two routes.

Every A = U V^T X a network can produce has its rows in the row space of X (b x N). With P the
orthogonal projector onto that row space the global minimum needs only the SVD of Y P and the
residual ||Y (I - P)||^2. Both routes below return that SVD in a form that never holds anything of
size N: Y P = L diag(m) Z with Z = right_coefficients @ X (orthonormal rows), so that any
A = L diag(a) Z equals C X with the a x b coefficients C = L diag(a) right_coefficients.

- The Gram route works from the moments G = X X^T, C = Y X^T, s = ||Y||^2 alone. With
  G = Q diag(lambda) Q^T, W = diag(lambda_k)^(-1/2) Q_k^T X has orthonormal rows spanning the row
  space, and Y P = B W with B = C Q_k diag(lambda_k)^(-1/2) (a x k). Cheap (O(b^3 + a b^2)) and
  mergeable, but the eigendecomposition squares X's condition number.
- The QR route takes one pass over the data in column chunks and keeps only the triangular factor
  R of [X; Y]^T (TSQR: R of a stack is the R of the stacked R's). X's singular values and the
  coordinates of Y in X's row space come from R with X's own condition number, not its square,
  and the residual comes out as a sum of squares, without the cancellation of s - ||m||^2.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, cast

import numpy as np

from .._data.memmap_chunks import Matrix2D, column_chunks

_EPS = float(np.finfo(np.float64).eps)

# Bytes of float64 per column chunk of the QR route (the chunk buffer holds chunk x (a + b); LAPACK
# works on a copy of it, so the pass needs about three times this).
_QR_CHUNK_BYTES = 8 * 2**20


@dataclass(frozen=True)
class RowSpaceReduction:
    """The SVD of Y P in coefficient form, and what it cost in accuracy.

    Attributes:
        left: L, a x q with orthonormal columns (left singular vectors of Y P).
        target_singular_values: m, the q non-increasing singular values of Y P.
        right_coefficients: q x b; the rows of right_coefficients @ X are the right singular
            vectors of Y P (orthonormal).
        residual: ||Y (I - P)||_F^2.
        x_rank: numerical rank k of X used for P.
        route: "gram" or "qr".
        fit_error: estimated absolute error of ||m||^2 (and so of the minimum objective) caused by
            the route's conditioning; see :func:`reduce_by_gram` and :func:`reduce_by_qr`.
        rank_deficient: True when X's numerical rank k is smaller than its number of rows b.
        error_floor: sqrt(a N) u ||Y||^2, the rounding error that ||Y||^2 itself carries (a sum
            of a N squares: the worst case is a N u ||Y||^2, the typical size sqrt(a N) u
            ||Y||^2). No error of the objective below it can be asked of a route, so the
            acceptance test of the Gram route is fit_error <= max(1e-10 objective, error_floor):
            meaningful when the objective is 0 (Y in X's row space, beta = 0). 0 without X.
    """

    left: np.ndarray
    target_singular_values: np.ndarray
    right_coefficients: np.ndarray
    residual: float
    x_rank: int
    route: str
    fit_error: float
    rank_deficient: bool
    error_floor: float = 0.0


def rounding_floor(y_sq_norm: float, a: int, n_samples: int) -> float:
    """sqrt(a N) u ||Y||^2: see :attr:`RowSpaceReduction.error_floor`."""
    return float(np.sqrt(float(a) * float(n_samples))) * _EPS * float(y_sq_norm)


def _empty_reduction(
    a: int, b: int, residual: float, route: str, floor: float
) -> RowSpaceReduction:
    # X = 0: its row space is {0}, only A = 0 is reachable and all of Y is residual.
    return RowSpaceReduction(
        left=np.zeros((a, 0)),
        target_singular_values=np.zeros(0),
        right_coefficients=np.zeros((0, b)),
        residual=residual,
        x_rank=0,
        route=route,
        fit_error=0.0,
        rank_deficient=b > 0,
        error_floor=floor,
    )


def gram_tolerance(eigenvalues: np.ndarray) -> float:
    """Eigenvalues of X X^T at or below this are taken as zero: b u lambda_max.

    Rounding in forming and decomposing X X^T perturbs its eigenvalues by about u lambda_max, so
    directions of X whose singular values are below about sqrt(b u) sigma_max (~1e-7 sigma_max for
    b = 500) cannot be told apart from directions that are absent.
    """
    top = float(eigenvalues[0]) if eigenvalues.size else 0.0
    return eigenvalues.size * _EPS * max(top, 0.0)


def reduce_by_gram(
    gram: np.ndarray, cross: np.ndarray, y_sq_norm: float, n_samples: int
) -> RowSpaceReduction:
    """The Gram route: Y P from the moments X X^T (b x b), Y X^T (a x b) and ||Y||^2.

    Error estimate (first-order): rounding perturbs each eigenvalue lambda_i of X X^T by about
    u lambda_max, which changes the part of ||m||^2 = sum_i ||B e_i||^2 along e_i by the relative
    amount u lambda_max / lambda_i; the estimate is sqrt(b) u lambda_max sum_i ||B e_i||^2/lambda_i.
    Measured against an SVD of X on X with condition numbers 1e2..1e6 and targets along X's
    largest, random and smallest directions, the true error stayed below half of this estimate
    once above the rounding floor of about 1e-14 (tests/global_min/test_global_min_routes.py).
    When X X^T is numerically singular (``rank_deficient``), directions below the tolerance are
    dropped and no estimate from the moments can bound what Y has along them.
    """
    b = gram.shape[0]
    a = cross.shape[0]
    eigenvalues, vectors = np.linalg.eigh(gram)
    eigenvalues = eigenvalues[::-1]
    vectors = vectors[:, ::-1]
    tolerance = gram_tolerance(eigenvalues)
    k = int(np.count_nonzero(eigenvalues > tolerance))
    floor = rounding_floor(y_sq_norm, a, n_samples)
    if k == 0:
        return _empty_reduction(a, b, float(y_sq_norm), "gram", floor)
    inv_sqrt = 1.0 / np.sqrt(eigenvalues[:k])
    basis = vectors[:, :k]
    whitened = (cross @ basis) * inv_sqrt  # B = C Q_k diag(lambda_k)^(-1/2), a x k
    left, m, right_t = np.linalg.svd(whitened, full_matrices=False)
    right_coefficients = (right_t * inv_sqrt) @ basis.T  # q x b
    fitted = float(np.sum(m * m))
    # ||Y (I - P)||^2 = s - ||m||^2 cancels when Y lies almost in the row space: clamp at zero.
    residual = max(float(y_sq_norm) - fitted, 0.0)
    energy = np.sum(whitened * whitened, axis=0)  # ||B e_i||^2, Y P's energy along eigenvector i
    error = np.sqrt(b) * _EPS * float(eigenvalues[0]) * float(np.sum(energy / eigenvalues[:k]))
    return _reduction(left, m, right_coefficients, residual, k, b, "gram", error, floor)


def _reduction(
    left: np.ndarray,
    m: np.ndarray,
    right_coefficients: np.ndarray,
    residual: float,
    k: int,
    b: int,
    route: str,
    error: float,
    floor: float,
) -> RowSpaceReduction:
    """The reduction found by either route: rank k of X (b rows), ``error`` the fit's estimate,
    ``floor`` the rounding error of ||Y||^2 (see RowSpaceReduction.error_floor)."""
    return RowSpaceReduction(
        left=left,
        target_singular_values=m,
        right_coefficients=right_coefficients,
        residual=residual,
        x_rank=k,
        route=route,
        fit_error=error,
        rank_deficient=k < b,
        error_floor=floor,
    )


def triangular_factor(
    X: Matrix2D,
    Y: Matrix2D,
    *,
    chunk_columns: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """R (p x p, p = a + b, upper triangular) with [X; Y]^T = Q R, from one pass in column chunks.

    X (b x N) and Y (a x N) are anything NumPy can slice and convert (arrays of any float dtype
    and layout, memmaps, dask arrays): each chunk of columns is converted to float64 into one
    reused buffer, so the extra memory is one chunk of (a + b) columns plus a few p x p matrices.
    ``progress``, when given, is called with the number of columns done after each chunk.
    """
    b, n = X.shape
    a = Y.shape[0]
    p = a + b
    chunk = chunk_columns or max(p, _QR_CHUNK_BYTES // (8 * p))
    stacked = np.zeros((p + chunk, p))
    rows = 0  # rows of the running R at the top of ``stacked``
    # Memory maps are read with pread into a reused buffer, so the resident set grows by a chunk
    # only; other arrays (in memory, dask) are sliced.
    for cols, (xc, yc) in column_chunks([("X", X), ("Y", Y)], chunk):
        width = cols.stop - cols.start
        stacked[rows : rows + width, :b] = np.asarray(xc).T
        stacked[rows : rows + width, b:] = np.asarray(yc).T
        # mode="r" returns the R array alone; numpy's stub declares the (Q, R) result for every
        # mode, hence the cast.
        factor = cast(np.ndarray, np.linalg.qr(stacked[: rows + width], mode="r"))
        rows = factor.shape[0]
        stacked[:rows] = factor
        if progress is not None:
            progress(cols.stop)
    full = np.zeros((p, p))
    full[:rows] = np.triu(stacked[:rows])
    return full


def reduce_by_qr(R: np.ndarray, b: int, n_samples: int) -> RowSpaceReduction:
    """The QR route: Y P from the triangular factor R of [X; Y]^T (see :func:`triangular_factor`).

    With [X; Y]^T = [Q1 Q2] [[R11, R12], [0, R22]], X^T = Q1 R11 and Y^T = Q1 R12 + Q2 R22. With
    R11 = U S V^T and k its numerical rank (singular values above max(b, N) u s_1, NumPy's
    matrix_rank rule for X), the rows of S_k^(-1) V_k^T X are an orthonormal basis of the row space,
    Y's coordinates in it are B = R12^T U_k, and ||Y (I - P)||^2 = ||R22||^2 + ||R12^T U_(k+1:)||^2.
    Householder QR is backward stable column by column, so the error of ||m||^2 is about
    sqrt(max(b, N)) u kappa(X) ||m||^2 (a conservative estimate: measured errors were far below it).
    """
    r11 = R[:b, :b]
    r12 = R[:b, b:]
    r22 = R[b:, b:]
    a = r12.shape[1]
    y_sq_norm = float(np.sum(r12 * r12) + np.sum(r22 * r22))
    floor = rounding_floor(y_sq_norm, a, n_samples)
    u, s, vt = np.linalg.svd(r11)
    if s.size == 0 or s[0] == 0.0:
        return _empty_reduction(a, b, y_sq_norm, "qr", floor)
    tolerance = max(b, n_samples) * _EPS * float(s[0])
    k = int(np.count_nonzero(s > tolerance))
    coords = r12.T @ u  # a x b: Y's coordinates along X's left singular directions
    left, m, right_t = np.linalg.svd(coords[:, :k], full_matrices=False)
    right_coefficients = (right_t / s[:k]) @ vt[:k]  # q x b
    outside = coords[:, k:]
    residual = float(np.sum(r22 * r22) + np.sum(outside * outside))
    error = np.sqrt(max(b, n_samples)) * _EPS * float(s[0]) / float(s[k - 1]) * float(np.sum(m * m))
    return _reduction(left, m, right_coefficients, residual, k, b, "qr", error, floor)
