"""Closed-form global minimum of the DropBlock objective (Theorem 7 and Corollary 8, corrected).

Two entry points share one solver: :func:`dropblock_global_min` takes the data (Y and optionally X)
and :func:`global_min_from_moments` takes only the moments X X^T, Y X^T, ||Y||^2 (merged from
chunks, streamed from disk or reduced on a cluster). With X the minimiser is returned as
coefficients C (a x b) with A* = C X; the a x N matrix A* itself is formed only when asked for.
"""

from __future__ import annotations

import copy
import functools
import warnings
from dataclasses import dataclass, field
from typing import Callable, Protocol, TypeVar

import numpy as np

from ._data.memmap_chunks import Matrix2D
from ._migration import positional_became_keyword, renamed_keywords
from ._progress import progress_bar, progress_delay
from ._results import ResultEquality
from ._solver.row_space import RowSpaceReduction, reduce_by_gram, reduce_by_qr, triangular_factor
from ._validation import as_float_array, as_int, as_strength
from .ksupport import ProxMethod, prox_ksupport_sq
from .moments import DataMoments, data_moments


class _HasObjective(Protocol):
    """A solve's result: a GlobalMin (one objective) or a sweep's grid (an array of them)."""

    @property
    def objective(self) -> float | np.ndarray: ...


T = TypeVar("T", bound=_HasObjective)

__all__ = [
    "ConditioningWarning",
    "GlobalMin",
    "dropblock_global_min",
    "global_min_from_moments",
    "ACCURACY_TARGET",
]

#: The Gram (moments) route is used with data at hand only when its estimated relative error of
#: the objective is at most this; otherwise the data are read once more for the QR route.
ACCURACY_TARGET = 1e-10


class ConditioningWarning(RuntimeWarning):
    """The minimum from moments alone may be inaccurate: X is ill-conditioned or rank-deficient.

    Example:
        >>> import warnings, numpy as np, structdrop as sd
        >>> X = np.vstack([np.ones(5), np.ones(5)])  # rank 1 of 2 rows
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     warnings.simplefilter("always")
        ...     _ = sd.global_min_from_moments(
        ...         sd.data_moments(X, np.ones((1, 5))), block_size=1, beta=0.0)
        >>> caught[0].category is sd.ConditioningWarning
        True
    """


@dataclass(frozen=True, eq=False)
class GlobalMin(ResultEquality):
    """The global minimiser of F(A) = ||Y - A||^2 + beta ||sigma(A)||_(r)^2 over reachable A.

    With data X the minimiser is A* = C X, C = :attr:`coefficients` (a x b). Without X (A ranges
    over all a x N matrices) the same formulas hold with X the N x N identity, so C = A*.

    Attributes:
        singular_values: singular values a* of A*, descending (one per singular value of Y P).
        rho: 1 + size of the head of a* that is only shrunk (1-based, in 1..r).
        rank: rank of A* (the paper's lambda).
        objective: the minimum value F(A*), including the part of Y outside X's row space.
        beta: beta_bar = (1 - theta_bar)/theta_bar.
        target_singular_values: singular values m of Y (of Y P when X is given), descending.
        residual: ||Y (I - P)||_F^2, the part no A in X's row space can fit (0 without X).
        block_size: the block size r of the solve.
        left_vectors: a x rank, orthonormal columns: the left singular vectors of A*.
        right_coefficients: rank x b (rank x N without X): the rows of ``right_coefficients @ X``
            are orthonormal, the right singular vectors of A*. So
            A* = left_vectors diag(singular_values[:rank]) right_coefficients X.
        route: how Y P was reduced: "svd" (no X), "gram" (eigendecomposition of X X^T) or "qr"
            (triangular factor of [X; Y]^T, read in column chunks).
        error_estimate: estimated relative error of the objective caused by the route (first
            order in the unit roundoff u: about u kappa(X)^2 for the Gram route and u kappa(X) for
            the QR route, weighted by where Y P's energy lies; kappa(X) the condition number of X
            on its numerical rank); 0 without X. The error is measured against
            max(objective, 1e10 sqrt(a N) u ||Y||^2), so that an error within the rounding of
            ||Y||^2 counts as small even when the objective is 0.
        x_rank: numerical rank of X (N without X).

    Two results compare equal (``==``) when every attribute above is equal, arrays exactly (shape,
    dtype and values; NaN equals NaN); the reference to X is not compared. Results are
    unhashable. ``copy.copy`` and ``copy.deepcopy`` keep the reference to X, so :attr:`A` still
    works on the copy; a pickled copy carries neither X nor A* (see :attr:`A`).

    Built by :func:`dropblock_global_min` and :func:`global_min_from_moments` (the constructor
    checks nothing).

    Example:
        >>> import numpy as np, structdrop as sd
        >>> res = sd.dropblock_global_min(np.diag([3.0, 1.0, 0.5]), block_size=2, beta=1.0)
        >>> res.singular_values.tolist(), res.target_singular_values.tolist(), res.rank
        ([1.5, 0.5, 0.0], [3.0, 1.0, 0.5], 2)
        >>> bool(np.allclose(res.A, np.diag([1.5, 0.5, 0.0])))
        True
    """

    singular_values: np.ndarray
    rho: int
    rank: int
    objective: float
    beta: float
    target_singular_values: np.ndarray
    residual: float
    block_size: int
    left_vectors: np.ndarray
    right_coefficients: np.ndarray
    route: str
    error_estimate: float
    x_rank: int
    _data: Matrix2D | None = field(default=None, repr=False, compare=False)

    def __getstate__(self) -> dict[str, object]:
        # Pickling (multiprocessing, Dask) sends the small factors, never the data X nor A*.
        state = dict(self.__dict__)
        state.pop("A", None)
        state["_data"] = None
        return state

    # copy.copy and copy.deepcopy would go through __getstate__ and lose the reference to X (and
    # with it ``A``); a copy is made here instead. The deep copy copies the result's own arrays and
    # cached values but keeps the reference to X: that is the caller's data, never copied silently.
    def __copy__(self) -> GlobalMin:
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        return new

    def __deepcopy__(self, memo: dict[int, object]) -> GlobalMin:
        new = object.__new__(type(self))
        memo[id(self)] = new
        for key, value in self.__dict__.items():
            new.__dict__[key] = value if key == "_data" else copy.deepcopy(value, memo)
        return new

    @functools.cached_property
    def coefficients(self) -> np.ndarray:
        """C with A* = C X: a x b (a x N without X, where C = A*). Cheap: O(a b rank).

        Example:
            >>> import numpy as np, structdrop as sd
            >>> X = np.eye(2)
            >>> res = sd.dropblock_global_min(np.diag([2.0, 1.0]), X=X, block_size=1, beta=0.0)
            >>> res.coefficients.round(12).tolist()
            [[2.0, 0.0], [0.0, 1.0]]
        """
        return (self.left_vectors * self.singular_values[: self.rank]) @ self.right_coefficients

    def output(self, X: object | None = None) -> np.ndarray:
        """The network output at the minimum, A* = C X (a x N), for the X of the solve.

        Args:
            X: the data (b x N) the minimum was computed for. Not needed without X, nor when the
                result came from :func:`dropblock_global_min` (which keeps a reference to its X).

        Returns:
            A* as an a x N float64 array.

        Raises:
            ValueError: a minimum from moments without X, or X with the wrong number of rows.

        Example:
            >>> import numpy as np, structdrop as sd
            >>> rng = np.random.default_rng(0)
            >>> X, Y = rng.standard_normal((3, 20)), rng.standard_normal((2, 20))
            >>> res = sd.global_min_from_moments(sd.data_moments(X, Y), block_size=1, beta=0.5)
            >>> res.output(X).shape
            (2, 20)
        """
        if self.route == "svd":
            return self.coefficients
        data = self._data if X is None else _as_data("X", X)
        if data is None:
            raise ValueError(
                "this minimum was computed from moments: pass the data, result.output(X)"
            )
        if data.shape[0] != self.right_coefficients.shape[1]:
            raise ValueError(
                f"X must have b = {self.right_coefficients.shape[1]} rows, got shape {data.shape}"
            )
        return np.asarray(self.coefficients @ data)

    @functools.cached_property
    def A(self) -> np.ndarray:
        """The minimiser A* = C X (a x N), formed on first access and kept.

        Available without X and from :func:`dropblock_global_min`; a minimum from moments has no
        data to form it from (use :meth:`output` with X, or :attr:`coefficients`). A pickled copy
        carries neither X nor A*: only the small factors travel.

        Raises:
            AttributeError: the minimum was computed from moments (or unpickled) without X.

        Example:
            >>> import numpy as np, structdrop as sd
            >>> sd.dropblock_global_min(np.eye(2), block_size=1, beta=0.0).A.tolist()
            [[1.0, 0.0], [0.0, 1.0]]
        """
        if self.route != "svd" and self._data is None:
            raise AttributeError(
                "A* = coefficients @ X is not available for a minimum computed from moments; "
                "use result.output(X) or result.coefficients"
            )
        return self.output()

    def factorize(self, d: int) -> tuple[np.ndarray, np.ndarray]:
        """A width-d network (U, V) at the global minimum: see
        :func:`structdrop.factorize.balanced_factors`.

        Args:
            d: the width, a positive multiple of :attr:`block_size`. The network attains the
                minimum from :func:`structdrop.min_exact_width` on; below, it is the best found.

        Returns:
            (U, V), a x d and b x d (N x d without X), with U V^T X = A* when exact.

        Raises:
            ValueError: d is not a positive multiple of the block size, or U and V would be too
                large to allocate.

        Example:
            >>> import numpy as np, structdrop as sd
            >>> res = sd.dropblock_global_min(np.diag([3.0, 1.0]), block_size=1, beta=0.5)
            >>> U, V = res.factorize(2)
            >>> bool(np.allclose(U @ V.T, res.A))
            True
        """
        from .factorize import balanced_factors

        return balanced_factors(self, d)


def _solve(
    reduction: RowSpaceReduction,
    block: int,
    beta: float,
    method: ProxMethod,
    data: Matrix2D | None = None,
) -> GlobalMin:
    """The corrected Theorem 7 on the singular values of Y P, assembled into a GlobalMin."""
    m = reduction.target_singular_values
    if m.size == 0:  # X = 0 (or Y empty in the row space): only A = 0 is reachable
        prox_values, rho, rank, prox_objective = np.zeros(0), 1, 0, 0.0
    else:
        try:
            prox = prox_ksupport_sq(m, block, beta, method=method)
        except ValueError as exc:
            if str(exc).startswith("m is too large"):
                raise ValueError(
                    "Y is too large: the minimum objective overflows float64"
                ) from None
            raise
        prox_values, rho, rank, prox_objective = prox.values, prox.rho, prox.rank, prox.objective
    objective = reduction.residual + prox_objective
    if not np.isfinite(objective):
        raise ValueError("Y is too large: the minimum objective overflows float64")
    error = reduction.fit_error / _error_scale(objective, reduction)
    return GlobalMin(
        singular_values=prox_values,
        rho=rho,
        rank=rank,
        objective=objective,
        beta=beta,
        target_singular_values=m,
        residual=reduction.residual,
        block_size=block,
        left_vectors=reduction.left[:, :rank],
        right_coefficients=reduction.right_coefficients[:rank],
        route=reduction.route,
        error_estimate=error,
        x_rank=reduction.x_rank,
        _data=data,
    )


def _reduce_without_X(targets: np.ndarray) -> RowSpaceReduction:
    left, m, right = np.linalg.svd(targets, full_matrices=False)
    return RowSpaceReduction(
        left=left,
        target_singular_values=m,
        right_coefficients=right,
        residual=0.0,
        x_rank=targets.shape[1],
        route="svd",
        fit_error=0.0,
        rank_deficient=False,
    )


def _check_moments_with_targets(moments: object) -> DataMoments:
    if not isinstance(moments, DataMoments):
        raise TypeError(
            "moments must be a DataMoments (from structdrop.data_moments), got "
            f"{type(moments).__name__}"
        )
    if moments.cross is None:
        raise ValueError(
            "moments were computed without targets Y; the global minimum needs Y X^T and ||Y||^2"
        )
    moments.check_semidefinite()
    return moments


def solve_on_data(
    Y: Matrix2D,
    X: Matrix2D,
    solve: Callable[[RowSpaceReduction], T],
    *,
    progress: bool | float = False,
) -> T:
    """Run ``solve`` on Y P for data at hand: the Gram route when it is accurate, else chunked QR.

    ``solve`` maps a reduction to a result and is called once or twice; the Gram route's result
    is kept when X has full row rank by the Gram tolerance and the route's error estimate is at
    most max(:data:`ACCURACY_TARGET` times the smallest objective ``solve`` reports (its result's
    ``objective``, a number or an array of them), the rounding floor sqrt(a N) u ||Y||^2 of
    :attr:`RowSpaceReduction.error_floor`): an objective of 0 is then judged by the floor instead
    of failing every time. Otherwise the data are read once more in column
    chunks for the QR route (error about sqrt(max(b, N)) u kappa(X), NumPy's matrix_rank rule for
    X's rank).
    ``progress`` shows a bar on stderr for each pass over the data.
    """
    if X.shape[1] != Y.shape[1]:
        raise ValueError(
            f"X and Y must have the same number of samples (columns): X is {X.shape}, Y is "
            f"{Y.shape}"
        )
    moments = data_moments(
        X, Y, progress=progress
    )  # validates finiteness in its pass over the data
    assert moments.cross is not None
    reduction = reduce_by_gram(moments.gram, moments.cross, moments.y_sq_norm, moments.n_samples)
    result = solve(reduction)
    if not reduction.rank_deficient and reduction.fit_error <= ACCURACY_TARGET * _error_scale(
        _smallest_objective(result), reduction
    ):
        return result
    delay = progress_delay(progress)
    with progress_bar(moments.n_samples, "QR pass", delay, unit="sample", unit_scale=True) as bar:
        done = [0]

        def advance(columns: int) -> None:
            bar.update(columns - done[0])
            done[0] = columns

        R = triangular_factor(X, Y, progress=advance)
    return solve(reduce_by_qr(R, moments.in_features, moments.n_samples))


def _smallest_objective(result: _HasObjective) -> float:
    # A GlobalMin's objective, or the smallest of a sweep's grid of objectives.
    return float(np.min(result.objective))


def _error_scale(objective: float, reduction: RowSpaceReduction) -> float:
    """What the route's error of the objective is measured against: the objective, but never less
    than error_floor / ACCURACY_TARGET, so that an error within the rounding of ||Y||^2 counts as
    accurate however small the objective (0 when Y lies in X's row space and beta = 0)."""
    scale = max(objective, reduction.error_floor / ACCURACY_TARGET)
    return scale if scale > 0 else 1.0  # Y = 0: no error at all (fit_error is 0 then)


@renamed_keywords("dropblock_global_min", r="block_size")
@positional_became_keyword("dropblock_global_min", 1, ("block_size", "theta_bar", "X", "method"))
def dropblock_global_min(
    Y: object,
    *,
    X: object | None = None,
    block_size: int,
    theta_bar: float | None = None,
    beta: float | None = None,
    method: ProxMethod = "sweep",
    progress: bool | float = False,
) -> GlobalMin:
    """Global minimum of the DropBlock objective in product space (Theorem 7, corrected).

    Minimises F(A) = ||Y - A||_F^2 + beta ||sigma(A)||_(r)^2 (r = ``block_size``) over every
    A = U V^T X a network can produce. The strength is given as ``theta_bar=`` (the product-space
    retain probability) or ``beta=`` = (1 - theta_bar)/theta_bar, exactly one. By Corollary 8
    this is also the minimum of the factorised DropBlock objective (3)/(8) over all widths, and
    F(A*) <= f(U, V) for every (U, V) of a width-d network trained with theta when
    ``beta = beta_for_width(theta, d, block_size)``.

    Args:
        Y: targets, a x N (samples are columns).
        X: optional data, b x N (an array of any float dtype, a memmap or a dask array: it is read
            in column chunks, never copied whole). Without it A ranges over all a x N matrices
            (the paper's full column rank case). With it A is restricted to X's row space,
            whatever X's rank.
        block_size: the block size r (integer >= 1; 1 is Dropout).
        theta_bar: retain probability in (0, 1] of the product-space problem.
        beta: the strength beta >= 0 itself (instead of ``theta_bar``).
        method: "sweep" (O(n)) or "search" (literal Theorem 7 scan, O(n r)) for the prox.
        progress: show a progress bar on stderr for each pass over the data (with X); a number
            of seconds shows it only once a pass has taken that long (``True``: at once).

    Returns:
        A :class:`GlobalMin`: the minimum ``objective``, the minimiser's ``singular_values``,
        ``rank`` and ``rho``, the targets' ``target_singular_values``, the ``residual`` no A can
        fit, the factors (``left_vectors``, ``right_coefficients``; ``coefficients`` C with
        A* = C X; ``A`` forms A* on first use), ``beta``, ``block_size``, and ``route``,
        ``error_estimate`` and ``x_rank`` (how Y P was computed and how accurately).

    Raises:
        TypeError: neither or both of ``theta_bar`` and ``beta``; a non-integer ``block_size``;
            non-numeric arrays.
        ValueError: ``block_size`` < 1, ``theta_bar`` outside (0, 1], ``beta`` negative or not
            finite, X and Y with different numbers of columns, NaN or inf in the data, an
            unknown ``method``, or a minimum that overflows float64.

    Example:
        >>> import numpy as np, structdrop as sd
        >>> Y = np.diag([3.0, 1.0, 0.5])
        >>> res = sd.dropblock_global_min(Y, block_size=2, beta=1.0)
        >>> round(res.objective, 6), res.rank, res.singular_values.round(3).tolist()
        (5.25, 2, [1.5, 0.5, 0.0])

    Route with X: one pass computes the moments X X^T, Y X^T, ||Y||^2 (BLAS speed); the solve then
    works on b x b and a x b matrices only (:func:`global_min_from_moments`). That route squares X's
    condition number, so it is used only when X has full row rank and its estimated error of the
    objective is at most max(1e-10 objective, sqrt(a N) u ||Y||^2) (``ACCURACY_TARGET`` = 1e-10;
    the second term is the rounding that ||Y||^2 itself carries, so that an objective of 0 is
    judged by it; in practice kappa(X) up to about 1e3). Otherwise a second pass in column chunks
    computes the triangular factor of [X; Y]^T and the minimum from it, with error about
    sqrt(max(b, N)) u kappa(X) and NumPy's matrix_rank rule for X's rank: the same answer as a
    full SVD of X. ``GlobalMin.route`` says which route ran and ``error_estimate`` its estimated
    relative error. Peak memory beyond the inputs: one column chunk (about 3 x 8 MiB on the QR
    route) and O((a + b)^2); A* (a x N) only when ``.A`` or ``.output()`` is used.

    Deviations from the printed paper: rho ranges over 1..r (not 1..r-1), and any X is handled:
    with P the projector onto X's row space the minimum is ||Y (I - P)||^2 + [Theorem 7 on the
    singular values of Y P]; the paper assumes X has full column rank, which its own synthetic
    setup (b = 100 < N = 1000) does not.
    """
    block = as_int("block_size", block_size, minimum=1)
    strength = as_strength(theta_bar, beta)
    progress_delay(progress)  # validated even where no pass over data shows it (no X)
    if X is None:
        targets = as_float_array("Y", Y, ndim=2)
        return _solve(_reduce_without_X(targets), block, strength, method)
    data = _as_data("X", X)
    return solve_on_data(
        _as_data("Y", Y),
        data,
        lambda reduction: _solve(reduction, block, strength, method, data=data),
        progress=progress,
    )


def _as_data(name: str, value: object) -> Matrix2D:
    """Arrays, memmaps and dask arrays pass untouched (they are read in chunks); anything else is
    converted. Finiteness and matching shapes are checked in the pass over the data."""
    if isinstance(value, Matrix2D):
        if len(value.shape) != 2:
            raise ValueError(f"{name} must be 2-D, got an array of shape {value.shape}")
        if np.dtype(value.dtype).kind not in "fiub":
            raise TypeError(f"{name} must be a real numeric array, got dtype {value.dtype}")
        return value
    return as_float_array(name, value, ndim=2)


@renamed_keywords("global_min_from_moments", r="block_size")
@positional_became_keyword("global_min_from_moments", 1, ("block_size", "theta_bar", "method"))
def global_min_from_moments(
    moments: DataMoments,
    *,
    block_size: int,
    theta_bar: float | None = None,
    beta: float | None = None,
    method: ProxMethod = "sweep",
    warn: bool = True,
) -> GlobalMin:
    """Global minimum of the DropBlock objective from the data moments alone (Theorem 7, corrected).

    With X X^T = Q diag(lambda) Q^T and k the numerical rank (eigenvalues above b u lambda_max),
    B = (Y X^T) Q_k diag(lambda_k)^(-1/2) has the singular values m of Y P, and the minimum is
    ||Y||^2 - ||m||^2 + F*(m), F* the corrected Theorem 7 on m. The minimiser comes back as
    coefficients: ``result.coefficients`` (a x b) with A* = C X; ``result.output(X)`` forms A*.
    Nothing of size N is touched: O(b^3 + a b^2) after the moments (:func:`structdrop.data_moments`,
    :func:`structdrop.stream_moments`, merged with ``+``).

    Accuracy: the eigendecomposition squares X's condition number. ``result.error_estimate`` is the
    estimated relative error of the objective (first order: each eigenvalue lambda_i of X X^T
    carries an error of about u lambda_max, which moves Y P's energy along it by the relative
    amount u lambda_max/lambda_i; measured against max(objective, 1e10 sqrt(a N) u ||Y||^2), so
    that an error within the rounding of ||Y||^2 counts as accurate even at objective 0); when it
    exceeds 1e-10, or when X X^T is numerically singular (rank k < b: directions of X with
    singular values below about sqrt(b u) sigma_max are then treated as absent, which only the
    data can confirm), a :class:`ConditioningWarning` says so (``warn=False`` silences it) and
    :func:`dropblock_global_min` with the data gives the exact answer. ||Y (I - P)||^2 is computed
    as ||Y||^2 - ||m||^2 and clamped at 0: its absolute error is about u ||Y||^2.

    Args:
        moments: :class:`structdrop.DataMoments` with targets (``data_moments(X, Y)``).
        block_size: the block size r (integer >= 1).
        theta_bar: retain probability in (0, 1] of the product-space problem.
        beta: the strength beta = (1 - theta_bar)/theta_bar >= 0 (instead of ``theta_bar``).
        method: "sweep" or "search", as in :func:`dropblock_global_min`.
        warn: emit :class:`ConditioningWarning` when the estimate exceeds 1e-10 or X is
            rank-deficient.

    Returns:
        A :class:`GlobalMin` (route "gram"); ``A`` is not available (no data), use
        ``output(X)`` or ``coefficients``.

    Raises:
        TypeError: ``moments`` is not a DataMoments; neither or both of ``theta_bar`` and
            ``beta``; a non-integer ``block_size``.
        ValueError: moments without targets, invalid moments, ``block_size`` < 1, a strength out
            of range, or a minimum that overflows float64.

    Example:
        >>> import numpy as np, structdrop as sd
        >>> rng = np.random.default_rng(0)
        >>> X, Y = rng.standard_normal((4, 50)), rng.standard_normal((3, 50))
        >>> res = sd.global_min_from_moments(sd.data_moments(X, Y), block_size=2, theta_bar=0.5)
        >>> bool(np.isclose(res.objective,
        ...      sd.dropblock_global_min(Y, X=X, block_size=2, theta_bar=0.5).objective))
        True
    """
    block = as_int("block_size", block_size, minimum=1)
    strength = as_strength(theta_bar, beta)
    data = _check_moments_with_targets(moments)
    assert data.cross is not None
    reduction = reduce_by_gram(data.gram, data.cross, data.y_sq_norm, data.n_samples)
    result = _solve(reduction, block, strength, method)
    if warn and (result.error_estimate > ACCURACY_TARGET or reduction.rank_deficient):
        why = (
            f"X X^T is numerically singular (rank {reduction.x_rank} of {data.in_features}): "
            "directions of X with singular values below about 1e-7 of the largest are treated as "
            "absent"
            if reduction.rank_deficient
            else "X is ill-conditioned"
        )
        warnings.warn(
            f"global minimum from moments: {why}; estimated relative error of the objective "
            f"{result.error_estimate:.1e}. dropblock_global_min(Y, X=X, ...) with the "
            "data is exact (it reads the data once more in chunks)",
            ConditioningWarning,
            stacklevel=2,
        )
    return result
