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
from ._results import ResultEquality
from ._solver.spectrum import power_of_two_scale
from ._validation import as_float_array, as_int, as_probability, as_threads
from .global_min import _as_data, solve_on_data
from .width import beta_for_width, theta_for_width

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
        singular_values: the singular values m that were used (of Y, or of Y P with X).
        residual: ||Y (I - P)||^2 included in every objective (0 without X or for 1-D input).
    """

    block_sizes: np.ndarray
    theta_bars: np.ndarray
    betas: np.ndarray
    objective: np.ndarray
    rank: np.ndarray
    rho: np.ndarray
    singular_values: np.ndarray
    residual: float


@dataclass(frozen=True, eq=False)
class WidthSweepResult(ResultEquality):
    """The minimum of the width-d DropBlock objective for each width d (Lemma 2 vs eq. 7).

    Attributes:
        widths: the hidden widths d, shape (W,).
        block_size: r.
        theta: the retain probability: used as is for every width ("fixed"), and as theta_bar of
            eq. 7 for the scaled runs.
        fixed_beta: beta_for_width(theta, d, r) = (r/d)(1 - theta)/theta, shape (W,).
        fixed_objective, fixed_rank: minimum and rank with theta fixed; the objective falls to
            ``unregularized_minimum`` as d grows (Lemma 2), shape (W,).
        scaled_theta: theta(d) = theta_for_width(theta, d, r) of eq. 7, shape (W,).
        scaled_beta: the product-space strength with theta(d): (1 - theta)/theta for every d.
        scaled_objective, scaled_rank: minimum and rank with theta(d): the same for every d.
        unregularized_minimum: ||Y (I - P)||^2, the d -> infinity limit with theta fixed.
    """

    widths: np.ndarray
    block_size: int
    theta: float
    fixed_beta: np.ndarray
    fixed_objective: np.ndarray
    fixed_rank: np.ndarray
    scaled_theta: np.ndarray
    scaled_beta: np.ndarray
    scaled_objective: np.ndarray
    scaled_rank: np.ndarray
    unregularized_minimum: float


class _SolvedGrid(NamedTuple):
    singular_values: np.ndarray
    residual: float
    objective: np.ndarray  # residual included
    rho: np.ndarray
    rank: np.ndarray


def _solve_grid(
    x: object,
    X: object | None,
    r: np.ndarray,
    beta: np.ndarray,
    threads: int | None,
    name: str = "x",
) -> _SolvedGrid:
    """Descending singular values of x (of Y P with X), and the minimum at every setting
    (r, beta)."""

    def solve(m: np.ndarray, residual: float) -> _SolvedGrid:
        m = m if m.size else np.zeros(1)
        objective, rho, rank = _solve_settings(m, r, beta, threads, name)
        total = objective + residual
        if not np.isfinite(total).all():
            raise ValueError(f"{name} is too large: the minimum objective overflows float64")
        return _SolvedGrid(m, residual, total, rho, rank)

    values = as_float_array(name, x, ndim=(1, 2))
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
    m: np.ndarray, r: np.ndarray, beta: np.ndarray, threads: int | None, name: str = "x"
):
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


def _as_thetas(name: str, thetas: object) -> np.ndarray:
    try:
        values = np.atleast_1d(np.asarray(thetas, dtype=float))
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be a sequence of numbers: {exc}") from None
    if values.ndim != 1 or values.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D sequence")
    if not np.all((values > 0) & (values <= 1)):
        raise ValueError(f"{name} must all lie in (0, 1]")
    with np.errstate(over="ignore"):
        if not np.isfinite((1.0 - values) / values).all():
            raise ValueError(f"{name} too small: beta = (1 - theta)/theta overflows")
    return values


def sweep_global_min(
    x: object,
    block_sizes: object,
    theta_bars: object,
    X: object | None = None,
    threads: int | None = None,
) -> SweepResult:
    """Closed-form DropBlock minimum (corrected Theorem 7) for every (block size, theta_bar) pair.

    Args:
        x: targets Y (a x N; one SVD, after projecting onto X's row space when X is given) or
            the singular values themselves (1-D, non-negative, any order).
        block_sizes: block sizes r (integers >= 1), the rows of the grid.
        theta_bars: product-space retain probabilities in (0, 1], the columns of the grid.
        X: optional data b x N (only with a matrix x): A is restricted to X's row space.
        threads: worker threads: None (default) for every core, or a positive count. Results do
            not depend on it.

    Every cell equals ``dropblock_global_min(Y, r, theta_bar, X).objective`` (and its rank, rho).
    Cost: one SVD, then O(n) set-up and roughly O(log(n)^2 + band) per setting.
    """
    workers = as_threads(threads)
    sizes = _as_block_sizes(block_sizes)
    thetas = _as_thetas("theta_bars", theta_bars)
    betas = (1.0 - thetas) / thetas
    r_grid, beta_grid = np.meshgrid(sizes, betas, indexing="ij")
    grid = _solve_grid(x, X, r_grid.ravel(), beta_grid.ravel(), workers)
    shape = (sizes.size, thetas.size)
    return SweepResult(
        block_sizes=sizes,
        theta_bars=thetas,
        betas=betas,
        objective=grid.objective.reshape(shape),
        rank=grid.rank.reshape(shape),
        rho=grid.rho.reshape(shape),
        singular_values=grid.singular_values,
        residual=grid.residual,
    )


def width_sweep(
    Y: object,
    widths: object,
    block_size: int,
    theta: float,
    X: object | None = None,
    threads: int | None = None,
) -> WidthSweepResult:
    """Minimum of the width-d DropBlock objective for each width, theta fixed vs theta scaled
    (eq. 7).

    With theta fixed, a width-d network's objective is bounded below by the Theorem 7 minimum
    with beta_bar = (r/d)(1 - theta)/theta, tight at a balanced factorisation (Theorems 4-5): it
    falls to the unregularised minimum as d grows (Lemma 2). With theta(d) of eq. 7 the strength
    stays (1 - theta)/theta and the minimum does not change with d.

    Args:
        Y: targets a x N (or 1-D singular values).
        widths: hidden widths d, each a multiple of ``block_size``.
        block_size: r.
        theta: retain probability in (0, 1] (theta_bar for the scaled runs).
        X: optional data b x N: A restricted to X's row space.
        threads: worker threads for the batched solver: None (default) for every core, or a
            positive count. Results do not depend on it.
    """
    workers = as_threads(threads)
    r = as_int("block_size", block_size, minimum=1)
    th = as_probability("theta", theta)
    ds = np.atleast_1d(np.asarray(widths))
    if ds.ndim != 1 or ds.size == 0 or ds.dtype.kind not in "iu":
        raise ValueError("widths must be a non-empty 1-D sequence of integers")
    fixed_beta = np.array([beta_for_width(th, int(d), r) for d in ds])  # validates r | d
    scaled_theta = np.array([theta_for_width(th, int(d), r) for d in ds])
    scaled_beta = np.full(ds.size, (1.0 - th) / th)
    r_all = np.full(2 * ds.size, r, dtype=np.int64)
    grid = _solve_grid(Y, X, r_all, np.concatenate([fixed_beta, scaled_beta]), workers, "Y")
    objective, rank = grid.objective, grid.rank
    W = ds.size
    return WidthSweepResult(
        widths=ds.astype(np.int64),
        block_size=r,
        theta=th,
        fixed_beta=fixed_beta,
        fixed_objective=objective[:W],
        fixed_rank=rank[:W],
        scaled_theta=scaled_theta,
        scaled_beta=scaled_beta,
        scaled_objective=objective[W:],
        scaled_rank=rank[W:],
        unregularized_minimum=grid.residual,
    )
