"""k-support-regularised least squares with PyProximal's solvers and structdrop's prox, certified.

    minimise_x  (1/2) ||A x - b||^2 + sigma ||x||_(r)^2

solved three ways: ``pyproximal.ProximalGradient`` (ISTA), ``AcceleratedProximalGradient`` (FISTA)
and ``ADMM``, with ``structdrop.pyproximal.KSupportSq(block_size, sigma)`` as the regulariser.
Each answer is certified by the optimality condition 0 in A^T(Ax - b) + sigma d||x||_(r)^2,
checked two independent ways:

- subgradient (dual-norm) residual: g = -A^T(Ax - b)/sigma must be a subgradient of ||.||_(r)^2
  at x, i.e. <g, x> = 2 ||x||_(r)^2 and ||g||_* <= 2 ||x||_(r), with ||.||_* the dual norm (l2 norm
  of the r largest magnitudes); reported relative to 2 ||x||_(r)^2 and 2 ||x||_(r);
- fixed-point residual: ||x - prox_{t g}(x - t A^T(Ax - b))|| / ||x|| with t = 1/||A||^2.

Usage: python examples/ksupport_least_squares.py [--quick] [--seed N]
Needs: pip install ".[pyproximal]" (from a checkout of structdrop)
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings

import numpy as np
import pylops
import pyproximal

import structdrop as sd
from structdrop.pyproximal import KSupportSq, dual_ksupport_norm


def make_problem(rows: int, cols: int, support: int, seed: int):
    """A Gaussian design, a signal with `support` correlated non-zeros (the case the k-support norm
    is made for), and noisy observations."""
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((rows, cols)) / np.sqrt(rows)
    x_true = np.zeros(cols)
    x_true[rng.choice(cols, support, replace=False)] = 1.0 + 0.3 * rng.standard_normal(support)
    b = A @ x_true + 0.05 * rng.standard_normal(rows)
    return A, b, x_true


def certificate(A, b, x, r: int, sigma: float) -> dict:
    """Residuals of 0 in A^T(Ax - b) + sigma d||x||_(r)^2 (see the module docstring)."""
    grad = A.T @ (A @ x - b)
    g = -grad / sigma
    norm_sq = sd.ksupport_norm_sq(x, r)
    norm = np.sqrt(norm_sq)
    step = 1.0 / np.linalg.norm(A, 2) ** 2
    moved = sd.prox_ksupport_sq(x - step * grad, r, 2.0 * step * sigma).values
    return {
        "complementarity": abs(float(g @ x) - 2.0 * norm_sq) / max(2.0 * norm_sq, 1e-300),
        "dual_feasibility": max(0.0, dual_ksupport_norm(g, r) - 2.0 * norm)
        / max(2.0 * norm, 1e-300),
        "fixed_point": float(np.linalg.norm(x - moved) / max(np.linalg.norm(x), 1e-300)),
    }


def objective(A, b, x, r: int, sigma: float) -> float:
    return 0.5 * float(np.sum((A @ x - b) ** 2)) + sigma * sd.ksupport_norm_sq(x, r)


def _accelerated(f, g, x0, step, niter):
    with warnings.catch_warnings():  # PyProximal >= 0.5 suggests ProximalGradient(acceleration=...)
        warnings.simplefilter("ignore", FutureWarning)
        return pyproximal.optimization.primal.AcceleratedProximalGradient(
            f, g, x0, tau=step, niter=niter
        )


def solve_all(A, b, r: int, sigma: float, niter: int) -> dict:
    """x from each solver, with its time."""
    Op = pylops.MatrixMult(A)
    f = pyproximal.L2(Op=Op, b=b)  # (1/2) ||A x - b||^2, with its gradient and prox
    g = KSupportSq(r, sigma)
    x0 = np.zeros(A.shape[1])
    step = 1.0 / np.linalg.norm(A, 2) ** 2  # 1/L
    runs = {
        "ProximalGradient": lambda: pyproximal.optimization.primal.ProximalGradient(
            f, g, x0, tau=step, niter=niter
        ),
        "AcceleratedProximalGradient": lambda: _accelerated(f, g, x0, step, niter),
        "ADMM": lambda: pyproximal.optimization.primal.ADMM(f, g, x0, tau=1.0, niter=niter)[0],
    }
    out = {}
    for name, run in runs.items():
        start = time.perf_counter()
        x = np.asarray(run())
        out[name] = (x, time.perf_counter() - start)
    return out


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a small problem (under a second)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rows, cols, support, r, niter = (
        (60, 100, 8, 8, 3000) if args.quick else (300, 1000, 40, 40, 5000)
    )
    sigma = 0.05
    A, b, x_true = make_problem(rows, cols, support, args.seed)
    print(
        f"k-support least squares: A {rows} x {cols}, r = {r}, sigma = {sigma}, {niter} iterations"
    )
    results = {}
    for name, (x, seconds) in solve_all(A, b, r, sigma, niter).items():
        cert = certificate(A, b, x, r, sigma)
        results[name] = {"objective": objective(A, b, x, r, sigma), "seconds": seconds, **cert}
        print(
            f"  {name:28s} objective {results[name]['objective']:.10g}  complementarity "
            f"{cert['complementarity']:.1e}  dual feasibility {cert['dual_feasibility']:.1e}  "
            f"fixed point {cert['fixed_point']:.1e}  ({seconds:.2f} s)"
        )
    best = min(results, key=lambda name: results[name]["objective"])
    spread = max(v["objective"] for v in results.values()) / results[best]["objective"] - 1.0
    print(
        f"  the three solvers agree to {spread:.1e} (relative objective); x_true has objective "
        f"{objective(A, b, x_true, r, sigma):.10g}"
    )
    return results


if __name__ == "__main__":
    main()
    sys.exit(0)
