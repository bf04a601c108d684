"""A small dense Levenberg-Marquardt solver (NumPy only) for the balanced factorisation's systems.

SciPy is not a runtime dependency of structdrop, and the systems here are small and dense (at most
a few thousand unknowns), so a textbook damped Gauss-Newton iteration is enough: quadratic
convergence near a zero-residual solution, and monotone decrease of the sum of squares otherwise.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

ResidualAndJacobian = Callable[[np.ndarray], "tuple[np.ndarray, np.ndarray]"]


def levenberg_marquardt(
    fun: ResidualAndJacobian,
    x0: np.ndarray,
    *,
    max_iterations: int = 200,
    tolerance: float = 1e-15,
) -> tuple[np.ndarray, float, float]:
    """Minimise ||res(x)||^2 by Levenberg-Marquardt steps (J^T J + lam diag(J^T J)) dx = -J^T res.

    Args:
        fun: x -> (res, J), res of shape (p,), J of shape (p, n).
        x0: the start, shape (n,).
        max_iterations: bound on accepted and rejected steps together.
        tolerance: stop when ||res||^2 falls below ``tolerance`` times its starting value, or when
            the gradient J^T res falls below ``tolerance`` times its starting norm.

    Returns:
        (x, ||res(x)||^2, ||J^T res(x)||) at the best point found.
    """
    x = np.array(x0, dtype=float)
    res, jac = fun(x)
    cost = float(res @ res)
    start_cost = max(cost, np.finfo(float).tiny)
    grad = jac.T @ res
    start_grad = max(float(np.linalg.norm(grad)), np.finfo(float).tiny)
    lam = 1e-3
    for _ in range(max_iterations):
        if cost <= tolerance * start_cost or np.linalg.norm(grad) <= tolerance * start_grad:
            break
        normal = jac.T @ jac
        scale = np.maximum(np.diag(normal), 1e-12 * max(float(np.max(np.diag(normal))), 1.0))
        try:
            step = np.linalg.solve(normal + lam * np.diag(scale), -grad)
        except np.linalg.LinAlgError:
            lam *= 10.0
            continue
        trial = x + step
        trial_res, trial_jac = fun(trial)
        trial_cost = float(trial_res @ trial_res)
        if trial_cost < cost:
            x, res, jac, cost = trial, trial_res, trial_jac, trial_cost
            grad = jac.T @ res
            lam = max(lam / 3.0, 1e-12)
        else:
            lam *= 4.0
            if lam > 1e12:
                break
    return x, cost, float(np.linalg.norm(grad))
