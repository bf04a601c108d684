"""Many settings at once: the closed-form minimum over grids of (block size, theta_bar) and widths.

Sections 2.2-2.4 of the paper: Lemma 2 (with theta fixed the regulariser vanishes as the width
grows), eq. 7 (scaling theta with the width keeps it), Theorem 7 (the minimum for each setting).
One SVD serves every setting; the settings are solved by the batched C++ kernel in parallel
threads with the GIL released.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from . import _core
from ._migration import positional_became_keyword, renamed_field, renamed_keywords
from ._results import ResultEquality
from ._solver.spectrum import power_of_two_scale
from ._validation import as_float_array, as_int, as_probability, as_strength, as_threads
from .global_min import _as_data, solve_on_data
from .width import _width_strength, theta_for_width

__all__ = ["SweepResult", "WidthSweepResult", "sweep_global_min", "width_sweep"]


@dataclass(frozen=True, eq=False)
class SweepResult(ResultEquality):
    """Closed-form minima over a grid of block sizes (rows) and theta_bar values (columns).

    Attributes:
        block_sizes: the block sizes r, shape (R,).
        theta_bars: the product-space retain probabilities, shape (T,).
        betas: beta_bar = (1 - theta_bar)/theta_bar, shape (T,).
        objective: minimum of ||Y - A||^2 + beta_bar ||sigma(A)||_(r)^2, shape (R, T).
        rank: rank of the minimiser, shape (R, T).
        rho: 1 + size of its shrink-only head (1-based), shape (R, T).
        target_singular_values: the targets' singular values m that were used (of Y, or of
            Y P with X; ``singular_values`` before 1.0).
        residual: ||Y (I - P)||^2 included in every objective (0 without X or for 1-D input).

    Example:
        >>> import numpy as np, structdrop as sd
        >>> grid = sd.sweep_global_min(np.array([3.0, 1.0, 0.5]), block_sizes=[1, 2], betas=[1.0])
        >>> grid.objective.shape, float(grid.objective[1, 0])
        ((2, 1), 5.25)
    """

    block_sizes: np.ndarray
    theta_bars: np.ndarray
    betas: np.ndarray
    objective: np.ndarray
    rank: np.ndarray
    rho: np.ndarray
    target_singular_values: np.ndarray
    residual: float

    singular_values = renamed_field("singular_values", "target_singular_values", "SweepResult")


@dataclass(frozen=True, eq=False)
class WidthSweepResult(ResultEquality):
    """The minimum of the width-d DropBlock objective for each width d (Lemma 2 vs eq. 7).

    Attributes:
        widths: the hidden widths d, shape (W,).
        block_size: r.
        theta_bar: the retain probability theta_bar (``theta`` before 1.0): the layer theta of
            every width in the fixed runs, and theta_bar of eq. 7 for the scaled runs.
        fixed_beta: beta_for_width(theta_bar, d, r) = (r/d)(1 - theta_bar)/theta_bar, shape (W,).
        fixed_objective, fixed_rank: minimum and rank with theta fixed; the objective falls to
            ``unregularized_minimum`` as d grows (Lemma 2), shape (W,).
        scaled_theta: theta(d) = theta_for_width(theta, d, r) of eq. 7, shape (W,).
        scaled_beta: the product-space strength with theta(d): (1 - theta)/theta for every d.
        scaled_objective, scaled_rank: minimum and rank with theta(d): the same for every d.
        unregularized_minimum: ||Y (I - P)||^2, the d -> infinity limit with theta fixed.

    Example:
        >>> import numpy as np, structdrop as sd
        >>> res = sd.width_sweep(np.diag([3.0, 1.0]), [2, 4], block_size=2, theta_bar=0.5)
        >>> res.fixed_beta.tolist(), res.scaled_beta.tolist()
        ([1.0, 0.5], [1.0, 1.0])
    """

    widths: np.ndarray
    block_size: int
    theta_bar: float
    fixed_beta: np.ndarray
    fixed_objective: np.ndarray
    fixed_rank: np.ndarray
    scaled_theta: np.ndarray
    scaled_beta: np.ndarray
    scaled_objective: np.ndarray
    scaled_rank: np.ndarray
    unregularized_minimum: float

    theta = renamed_field("theta", "theta_bar", "WidthSweepResult")


class _SolvedGrid(NamedTuple):
    target_singular_values: np.ndarray
    residual: float
    objective: np.ndarray  # residual included
    rho: np.ndarray
    rank: np.ndarray


def _solve_grid(
    Y: object,
    X: object | None,
    r: np.ndarray,
    beta: np.ndarray,
    threads: int | None,
) -> _SolvedGrid:
    """Descending singular values of Y (of Y P with X), and the minimum at every setting
    (r, beta)."""
    name = "Y"

    def solve(m: np.ndarray, residual: float) -> _SolvedGrid:
        m = m if m.size else np.zeros(1)
        objective, rho, rank = _solve_settings(m, r, beta, threads, name)
        total = objective + residual
        if not np.isfinite(total).all():
            raise ValueError(f"{name} is too large: the minimum objective overflows float64")
        return _SolvedGrid(m, residual, total, rho, rank)

    values = as_float_array(name, Y, ndim=(1, 2))
    if values.ndim == 1:
        if X is not None:
            raise ValueError(
                f"X can only be given with a matrix Y ({name} is a 1-D array of singular values)"
            )
        if (values < 0).any():
            raise ValueError(f"{name} must be non-negative when it holds singular values")
        return solve(np.ascontiguousarray(np.sort(values)[::-1]), 0.0)
    if X is None:
        return solve(np.linalg.svd(values, compute_uv=False), 0.0)
    return solve_on_data(
        values, _as_data("X", X), lambda red: solve(red.target_singular_values, red.residual)
    )


def _solve_settings(
    m: np.ndarray, r: np.ndarray, beta: np.ndarray, threads: int | None, name: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    scale = power_of_two_scale(m)
    scaled = m / scale if scale != 1.0 else m
    count = threads if threads is not None else (os.cpu_count() or 1)
    objective, rho, rank = _core.prox_batch(
        np.ascontiguousarray(scaled),
        np.ascontiguousarray(r, dtype=np.int64),
        np.ascontiguousarray(beta, dtype=np.float64),
        int(count),
    )
    objective = objective * scale * scale
    if not np.isfinite(objective).all():
        raise ValueError(f"{name} is too large: the minimum objective overflows float64")
    return objective, rho, rank


def _as_block_sizes(block_sizes: object) -> np.ndarray:
    sizes = np.atleast_1d(np.asarray(block_sizes))
    if sizes.ndim != 1 or sizes.size == 0:
        raise ValueError("block_sizes must be a non-empty 1-D sequence of integers")
    if sizes.dtype.kind not in "iu" and not (
        sizes.dtype.kind == "f" and np.all(sizes == np.round(sizes))
    ):
        raise TypeError(f"block_sizes must be integers, got {sizes.dtype}")
    sizes = sizes.astype(np.int64)
    if (sizes < 1).any():
        raise ValueError("block_sizes must all be >= 1")
    return sizes


@renamed_keywords("sweep_global_min", x="Y")
@positional_became_keyword("sweep_global_min", 1, ("block_sizes", "theta_bars", "X", "threads"))
def sweep_global_min(
    Y: object,
    *,
    X: object | None = None,
    block_sizes: object,
    theta_bars: object | None = None,
    betas: object | None = None,
    threads: int | None = None,
) -> SweepResult:
    """Closed-form DropBlock minimum (corrected Theorem 7) for every (block size, strength) pair.

    Args:
        Y: targets (a x N; one SVD, after projecting onto X's row space when X is given) or
            the singular values themselves (1-D, non-negative, any order).
        X: optional data b x N (only with a matrix Y): A is restricted to X's row space.
        block_sizes: block sizes r (integers >= 1), the rows of the grid.
        theta_bars: product-space retain probabilities in (0, 1], the columns of the grid.
        betas: the strengths beta >= 0 instead (exactly one of ``theta_bars`` and ``betas``).
        threads: worker threads: None (default) for every core, or a positive count. Results do
            not depend on it.

    Every cell equals ``dropblock_global_min(Y, X=X, block_size=r, beta=beta).objective`` (and
    its rank, rho). Cost: one SVD, then O(n) set-up and roughly O(log(n)^2 + band) per setting.

    Returns:
        A :class:`SweepResult`: ``objective``, ``rank`` and ``rho`` of shape (block sizes,
        strengths), the grid's ``block_sizes``, ``theta_bars`` and ``betas`` (theta_bars =
        1/(1 + betas) when ``betas`` was given), the ``target_singular_values`` and the
        ``residual``.

    Raises:
        TypeError: neither or both of ``theta_bars`` and ``betas``; non-integer block sizes;
            a bad ``threads``.
        ValueError: empty or out-of-range grids, X with 1-D Y, negative singular values,
            mismatched shapes, NaN or inf, or a minimum that overflows float64.

    Example:
        >>> import numpy as np, structdrop as sd
        >>> grid = sd.sweep_global_min(np.diag([3.0, 1.0, 0.5]), block_sizes=[2], theta_bars=[0.5])
        >>> float(grid.objective[0, 0])
        5.25
    """
    workers = as_threads(threads)
    sizes = _as_block_sizes(block_sizes)
    strengths = as_strength(theta_bars, betas, names=("theta_bars", "betas"), many=True)
    thetas = (
        np.atleast_1d(np.asarray(theta_bars, dtype=float))
        if theta_bars is not None
        else 1.0 / (1.0 + strengths)
    )
    r_grid, beta_grid = np.meshgrid(sizes, strengths, indexing="ij")
    grid = _solve_grid(Y, X, r_grid.ravel(), beta_grid.ravel(), workers)
    shape = (sizes.size, thetas.size)
    return SweepResult(
        block_sizes=sizes,
        theta_bars=thetas,
        betas=strengths,
        objective=grid.objective.reshape(shape),
        rank=grid.rank.reshape(shape),
        rho=grid.rho.reshape(shape),
        target_singular_values=grid.target_singular_values,
        residual=grid.residual,
    )


@renamed_keywords("width_sweep", theta="theta_bar")
@positional_became_keyword("width_sweep", 2, ("block_size", "theta_bar", "X", "threads"))
def width_sweep(
    Y: object,
    widths: object,
    *,
    X: object | None = None,
    block_size: int,
    theta_bar: float | None = None,
    beta: float | None = None,
    threads: int | None = None,
) -> WidthSweepResult:
    """Minimum of the width-d DropBlock objective for each width, theta fixed vs theta scaled
    (eq. 7).

    The strength is ``theta_bar=`` or ``beta=`` = (1 - theta_bar)/theta_bar (exactly one). With
    theta fixed (the layer's theta equal to theta_bar at every width), a width-d network's
    objective is bounded below by the Theorem 7 minimum with beta_bar = (r/d) beta, tight at a
    balanced factorisation (Theorems 4-5): it falls to the unregularised minimum as d grows
    (Lemma 2). With theta(d) of eq. 7 the strength stays beta and the minimum does not change
    with d.

    Args:
        Y: targets a x N (or 1-D singular values).
        widths: hidden widths d, each a multiple of ``block_size``.
        X: optional data b x N: A restricted to X's row space.
        block_size: the block size r.
        theta_bar: retain probability in (0, 1] (``theta`` before 1.0): the layer theta of the
            fixed runs and theta_bar of eq. 7 for the scaled runs.
        beta: the strength (1 - theta_bar)/theta_bar >= 0 instead of ``theta_bar``.
        threads: worker threads for the batched solver: None (default) for every core, or a
            positive count. Results do not depend on it.

    Returns:
        A :class:`WidthSweepResult` with the fixed-theta and scaled-theta minima and ranks per
        width.

    Raises:
        TypeError: neither or both of ``theta_bar`` and ``beta``; a non-integer ``block_size``;
            a bad ``threads``.
        ValueError: widths not a non-empty 1-D integer sequence or not multiples of
            ``block_size``, strengths out of range, bad shapes or values of Y and X.

    Example:
        >>> import numpy as np, structdrop as sd
        >>> res = sd.width_sweep(np.diag([3.0, 1.0, 0.5]), [2, 4, 8], block_size=2, beta=1.0)
        >>> bool(res.fixed_objective[-1] < res.scaled_objective[-1])
        True
    """
    workers = as_threads(threads)
    r = as_int("block_size", block_size, minimum=1)
    strength = as_strength(theta_bar, beta)
    th = as_probability("theta_bar", theta_bar) if theta_bar is not None else 1.0 / (1.0 + strength)
    ds = np.atleast_1d(np.asarray(widths))
    if ds.ndim != 1 or ds.size == 0 or ds.dtype.kind not in "iu":
        raise ValueError("widths must be a non-empty 1-D sequence of integers")
    fixed_beta = np.array([_width_strength(strength, int(d), r) for d in ds])  # validates r | d
    scaled_theta = np.array([theta_for_width(th, int(d), r) for d in ds])
    scaled_beta = np.full(ds.size, strength)
    r_all = np.full(2 * ds.size, r, dtype=np.int64)
    grid = _solve_grid(Y, X, r_all, np.concatenate([fixed_beta, scaled_beta]), workers)
    objective, rank = grid.objective, grid.rank
    W = ds.size
    return WidthSweepResult(
        widths=ds.astype(np.int64),
        block_size=r,
        theta_bar=th,
        fixed_beta=fixed_beta,
        fixed_objective=objective[:W],
        fixed_rank=rank[:W],
        scaled_theta=scaled_theta,
        scaled_beta=scaled_beta,
        scaled_objective=objective[W:],
        scaled_rank=rank[W:],
        unregularized_minimum=grid.residual,
    )
