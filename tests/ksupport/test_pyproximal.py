"""structdrop.pyproximal: the (squared) k-support norm as PyProximal operators.

Independent checks: the prox optimality condition with the dual norm computed here (l2 norm of the
r largest magnitudes), a brute-force minimisation with SciPy for the non-squared norm's prox
(variational form of the norm, no structdrop kernel), fixed points of PyProximal's solvers, and
the example script's certificates.
"""

from __future__ import annotations

import os
import runpy
import subprocess
import sys

import numpy as np
import pytest
from _oracles import dual_norm, variational_norm_sq

pyproximal = pytest.importorskip("pyproximal")
pylops = pytest.importorskip("pylops")

import structdrop as sd  # noqa: E402
from structdrop.pyproximal import KSupport, KSupportSq, dual_ksupport_norm  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_import_structdrop_does_not_import_pyproximal():
    code = "import sys, structdrop; print('pyproximal' in sys.modules, 'pylops' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.split()[-2:] == ["False", "False"]


def _prox_objective(b, x, tau):
    """sigma ||b||_(3)^2 + ||b - x||^2 / (2 tau) with sigma = 0.7, by the variational form."""
    return 0.7 * variational_norm_sq(b, 3) + np.sum((b - x) ** 2) / (2 * tau)


def test_ksupport_sq_is_a_prox_operator_with_the_right_value_and_prox(rng):
    op = KSupportSq(3, sigma=0.7)
    assert isinstance(op, pyproximal.ProxOperator)
    for _ in range(200):
        n = int(rng.integers(1, 40))
        x = rng.standard_normal(n) * 10.0 ** rng.uniform(-2, 2)
        tau = float(10.0 ** rng.uniform(-2, 2))
        assert op(x) == pytest.approx(0.7 * variational_norm_sq(x, 3), rel=1e-8)
        a = op.prox(x, tau)
        # optimality of argmin sigma ||a||^2 + ||a - x||^2 / (2 tau): (x - a)/(tau sigma) is a
        # subgradient of ||.||_(r)^2 at a: <g, a> = 2 ||a||^2 and ||g||_* <= 2 ||a||
        g = (x - a) / (tau * 0.7)
        norm_sq = variational_norm_sq(a, 3)
        scale = np.abs(x).max() / (tau * 0.7)
        assert float(g @ a) == pytest.approx(
            2 * norm_sq, rel=1e-7, abs=1e-9 * scale * np.abs(x).max()
        )
        assert dual_norm(g, 3) <= 2 * np.sqrt(norm_sq) * (1 + 1e-7) + 1e-9 * scale

        # and no perturbation lowers the prox objective
        best = _prox_objective(a, x, tau)
        for _ in range(5):
            assert (
                _prox_objective(a + 1e-3 * np.abs(x).max() * rng.standard_normal(n), x, tau)
                >= best - 1e-12 * best
            )


def test_tau_conventions():
    op = KSupportSq(2, 1.0)
    x = np.array([3.0, -1.0, 0.5])
    expected = sd.prox_ksupport_sq(x, 2, 2 * 0.5).values
    np.testing.assert_array_equal(op.prox(x, 0.5), expected)
    np.testing.assert_array_equal(op.prox(x, np.float32(0.5)), expected)  # PyProximal's epsg * tau
    np.testing.assert_array_equal(
        op.prox(x, np.full(3, 0.5)), expected
    )  # a repeated tau is a scalar
    for bad, match in (
        (0.0, "tau must be positive"),
        (-1.0, "tau must be positive"),
        (np.nan, "finite"),
        (np.array([0.5, 1.0, 1.0]), "tau must be a scalar"),
    ):
        with pytest.raises(ValueError, match=match):
            op.prox(x, bad)
    with pytest.raises(ValueError, match="block_size must be >= 1"):
        KSupportSq(0)
    with pytest.raises(ValueError, match="sigma must be >= 0"):
        KSupport(2, sigma=-1.0)
    with pytest.raises(TypeError, match="block_size must be an integer"):
        KSupport(2.5)
    # the dual prox comes from PyProximal's Moreau identity: x = prox(x) + tau proxdual(x / tau)
    tau = 0.3
    np.testing.assert_allclose(op.prox(x, tau) + tau * op.proxdual(x / tau, 1 / tau), x, rtol=1e-12)


def brute_force_ksupport_prox(x, r, c):
    """argmin c ||a||_(r) + ||a - x||^2 / 2 by SciPy (Powell, then Nelder-Mead) from several
    starts."""
    from scipy.optimize import minimize

    def f(a):
        return c * np.sqrt(variational_norm_sq(a, r, iterations=120)) + 0.5 * np.sum((a - x) ** 2)

    best = None
    for start in (x, 0.5 * x, np.zeros_like(x)):
        # Each method names its tolerances its own way (Nelder-Mead ignores, with a warning,
        # Powell's xtol/ftol and would stop at its default xatol = 1e-4).
        for method, tolerances in (
            ("Powell", {"xtol": 1e-10, "ftol": 1e-14}),
            ("Nelder-Mead", {"xatol": 1e-10, "fatol": 1e-14}),
        ):
            res = minimize(
                f,
                start if best is None else best.x,
                method=method,
                options={**tolerances, "maxiter": 20000, "maxfev": 20000},
            )
            if best is None or res.fun < best.fun:
                best = res
    return best.x, best.fun


def test_ksupport_prox_against_brute_force_and_certificate(rng):
    pytest.importorskip("scipy")
    for trial in range(12):
        n = int(rng.integers(2, 6))
        x = rng.standard_normal(n) * 2.0
        r = int(rng.integers(1, n + 1))
        sigma, tau = 0.8, float(rng.uniform(0.1, 1.5))
        c = sigma * tau
        op = KSupport(r, sigma)
        a = op.prox(x, tau)
        assert op(x) == pytest.approx(sigma * np.sqrt(variational_norm_sq(x, r)), rel=1e-8)
        ours = c * np.sqrt(variational_norm_sq(a, r)) + 0.5 * np.sum((a - x) ** 2)
        _, theirs = brute_force_ksupport_prox(x, r, c)
        assert ours <= theirs + 1e-9 * max(1.0, abs(theirs)), (trial, ours, theirs)
        if dual_norm(x, r) <= c:
            assert not a.any()
        else:  # g = (x - a)/c lies in the subdifferential of ||.|| at a != 0
            g = (x - a) / c
            norm = np.sqrt(variational_norm_sq(a, r))
            assert dual_norm(g, r) == pytest.approx(1.0, rel=1e-8)
            assert float(g @ a) == pytest.approx(norm, rel=1e-8)


def test_ksupport_prox_on_larger_and_matrix_inputs(rng):
    for shape in ((500,), (12, 9)):
        x = rng.standard_normal(shape)
        op = KSupport(4, 1.3)
        for tau in (0.05, 0.5, 5.0, 1e3):
            a = op.prox(x, tau)
            assert a.shape == x.shape
            c = 1.3 * tau
            if dual_ksupport_norm(x, 4) <= c:
                assert not a.any()
                continue
            g = (x - a) / c
            assert dual_ksupport_norm(g, 4) == pytest.approx(1.0, rel=1e-8)
            assert float(np.sum(g * a)) == pytest.approx(
                np.sqrt(sd.ksupport_norm_sq(a, 4)), rel=1e-8
            )


def _least_squares(rng, rows=40, cols=60):
    A = rng.standard_normal((rows, cols)) / np.sqrt(rows)
    b = A @ np.where(rng.random(cols) < 0.1, 1.0, 0.0) + 0.05 * rng.standard_normal(rows)
    return A, b


@pytest.mark.parametrize("solver", ["ProximalGradient", "AcceleratedProximalGradient", "ADMM"])
def test_solvers_reach_a_fixed_point(solver, rng):
    import warnings

    from pyproximal.optimization import primal

    A, b = _least_squares(rng)
    r, sigma = 5, 0.05
    f = pyproximal.L2(Op=pylops.MatrixMult(A), b=b)
    g = KSupportSq(r, sigma)
    x0 = np.zeros(A.shape[1])
    step = 1.0 / np.linalg.norm(A, 2) ** 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        if solver == "ADMM":
            x = primal.ADMM(f, g, x0, tau=1.0, niter=3000)[0]
        else:
            x = getattr(primal, solver)(f, g, x0, tau=step, niter=3000)
    grad = A.T @ (A @ x - b)
    # fixed point of the forward-backward map and the subgradient condition, both independent of
    # how the solver got there
    moved = g.prox(x - step * grad, step)
    assert np.linalg.norm(x - moved) <= 1e-8 * np.linalg.norm(x)
    sub = -grad / sigma
    norm_sq = variational_norm_sq(x, r)
    assert float(sub @ x) == pytest.approx(2 * norm_sq, rel=1e-6)
    assert dual_norm(sub, r) <= 2 * np.sqrt(norm_sq) * (1 + 1e-6)


def test_example_script_certifies_its_answers():
    path = os.path.join(ROOT, "examples", "ksupport_least_squares.py")
    results = runpy.run_path(path, run_name="example")["main"](["--quick"])
    assert set(results) == {"ProximalGradient", "AcceleratedProximalGradient", "ADMM"}
    objectives = [v["objective"] for v in results.values()]
    assert max(objectives) <= min(objectives) * (1 + 1e-9)
    for v in results.values():
        assert (
            v["complementarity"] <= 1e-8
            and v["dual_feasibility"] <= 1e-8
            and v["fixed_point"] <= 1e-8
        )
