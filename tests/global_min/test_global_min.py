"""Closed-form global minimum (corrected Theorem 7 with the row-space projection)."""

from __future__ import annotations

import numpy as np
import pytest
from _oracles import variational_norm_sq
from scipy.optimize import minimize

import structdrop as sd
from structdrop import reference


def F(Y, A, r, beta):
    """||Y - A||^2 + beta ||sigma(A)||_(r)^2 with the norm from the variational form."""
    return float(
        np.sum((Y - A) ** 2) + beta * variational_norm_sq(np.linalg.svd(A, compute_uv=False), r)
    )


def spectral_dual_norm(G, r):
    s = np.linalg.svd(G, compute_uv=False)[:r]
    return float(np.sqrt(np.sum(s**2)))


def rank_deficient(rng, b, N, k):
    return rng.standard_normal((b, k)) @ rng.standard_normal((k, N))


def assert_kkt_in_row_space(Y, X, res, r):
    """Optimality over {A : A (I - P) = 0}: G = 2 (Y P - A)/beta must be a subgradient of
    ||sigma(.)||_(r)^2 at A: <G, A> = 2 ||A||^2 and (top-r l2 of sigma(G)) <= 2 ||A||."""
    P = np.linalg.pinv(X) @ X if X is not None else np.eye(Y.shape[1])
    A = res.A
    scale = max(np.linalg.norm(Y), 1.0)
    np.testing.assert_allclose(A @ (np.eye(Y.shape[1]) - P), 0.0, atol=1e-9 * scale)
    norm = np.sqrt(variational_norm_sq(np.linalg.svd(A, compute_uv=False), r))
    G = 2.0 * (Y @ P - A) / res.beta
    assert float(np.sum(G * A)) == pytest.approx(2 * norm**2, rel=1e-7, abs=1e-9 * scale**2)
    assert spectral_dual_norm(G, r) <= 2 * norm * (1 + 1e-7) + 1e-9 * scale


@pytest.mark.parametrize("method", ["sweep", "search"])
def test_without_X_objective_and_kkt(rng, method):
    for _ in range(60):
        a, N = (int(v) for v in rng.integers(1, 8, size=2))
        Y = rng.standard_normal((a, N)) * 3
        r = int(rng.integers(1, 6))
        theta_bar = float(rng.uniform(0.05, 0.95))
        res = sd.dropblock_global_min(Y, block_size=r, theta_bar=theta_bar, method=method)
        assert res.beta == pytest.approx((1 - theta_bar) / theta_bar)
        assert res.objective == pytest.approx(F(Y, res.A, r, res.beta), rel=1e-9)
        np.testing.assert_allclose(
            np.linalg.svd(res.A, compute_uv=False), np.sort(res.singular_values)[::-1], atol=1e-10
        )
        assert np.linalg.matrix_rank(res.A, tol=1e-9) == res.rank
        assert_kkt_in_row_space(Y, None, res, r)


def test_rank_deficient_X_kkt_and_reference(rng):
    for _ in range(40):
        a, b, N = 3, int(rng.integers(2, 7)), int(rng.integers(3, 9))
        X = rank_deficient(rng, b, N, int(rng.integers(1, min(b, N))))
        Y = rng.standard_normal((a, N))
        r = int(rng.integers(1, 4))
        res = sd.dropblock_global_min(Y, block_size=r, theta_bar=0.4, X=X)
        ref = reference.dropblock_global_min(Y, r, 0.4, X=X)
        assert res.objective == pytest.approx(ref["objective"], rel=1e-9)
        np.testing.assert_allclose(res.A, ref["A"], atol=1e-9)
        assert res.objective == pytest.approx(F(Y, res.A, r, res.beta), rel=1e-9)
        assert res.residual == pytest.approx(
            np.sum((Y - Y @ np.linalg.pinv(X) @ X) ** 2), rel=1e-9, abs=1e-12
        )
        assert_kkt_in_row_space(Y, X, res, r)


def test_rank_deficient_X_against_numerical_minimisation(rng):
    """Minimise F(C X) over C numerically (derivative-free polish of a smooth start): the closed
    form must be a lower bound for every C and be reached to optimisation accuracy."""
    a, b, N, r, theta_bar = 2, 4, 6, 2, 0.5
    X = rank_deficient(rng, b, N, 2)
    Y = rng.standard_normal((a, N))
    res = sd.dropblock_global_min(Y, block_size=r, theta_bar=theta_bar, X=X)
    beta = res.beta

    def f(c):
        return F(Y, c.reshape(a, b) @ X, r, beta)

    best = np.inf
    for start in range(4):
        c0 = np.random.default_rng(start).standard_normal(a * b) * 0.1
        out = minimize(f, c0, method="L-BFGS-B", options={"maxiter": 2000})
        out = minimize(
            f,
            out.x,
            method="Nelder-Mead",
            options={"maxiter": 20000, "xatol": 1e-12, "fatol": 1e-14},
        )
        assert out.fun >= res.objective * (1 - 1e-12)
        best = min(best, out.fun)
    assert best == pytest.approx(res.objective, rel=1e-5)
    # random points of the row space never beat it
    for _ in range(500):
        assert f(rng.standard_normal(a * b)) >= res.objective


def test_full_column_rank_X_equals_no_X(rng):
    Y = rng.standard_normal((3, 4))
    X = rng.standard_normal((6, 4))  # b >= N: full column rank, row space = R^N
    with_x = sd.dropblock_global_min(Y, block_size=2, theta_bar=0.3, X=X)
    without = sd.dropblock_global_min(Y, block_size=2, theta_bar=0.3)
    assert with_x.objective == pytest.approx(without.objective, rel=1e-12)
    np.testing.assert_allclose(with_x.A, without.A, atol=1e-12)
    assert with_x.residual == 0.0


def test_paper_synthetic_setup_projection_matters():
    problem = sd.paper_synthetic(seed=3)
    assert problem.X.shape == (100, 1000) and problem.Y.shape == (80, 1000)
    assert np.linalg.matrix_rank(problem.M) == 50
    res = sd.dropblock_global_min(problem.Y, block_size=5, theta_bar=0.5, X=problem.X)
    # Y = M X lies in X's row space: nothing is lost to the projection
    assert res.residual <= 1e-12 * np.sum(problem.Y**2)
    assert res.rank <= 50
    noisy = problem.Y + np.random.default_rng(0).standard_normal(problem.Y.shape)
    projected = sd.dropblock_global_min(noisy, block_size=5, theta_bar=0.5, X=problem.X)
    free = sd.dropblock_global_min(noisy, block_size=5, theta_bar=0.5)
    # restricting A to X's row space can only raise the minimum, and the residual is the noise
    # outside the 100-dimensional row space: about 80 * (1000 - 100) unit variances
    assert projected.objective > free.objective
    assert projected.residual == pytest.approx(80 * 900, rel=0.05)


def test_zero_X_only_reaches_zero():
    Y = np.arange(6.0).reshape(2, 3)
    res = sd.dropblock_global_min(Y, block_size=1, theta_bar=0.5, X=np.zeros((4, 3)))
    assert res.rank == 0 and not res.A.any()
    assert res.objective == pytest.approx(np.sum(Y**2))


def test_width_scaling_formulas():
    # eq. 7 keeps (d/r) beta(d) = const; beta_for_width is the inverse reading
    for theta_bar in (0.1, 0.5, 0.9, 1.0):
        for d, r in ((10, 5), (50, 5), (1000, 10)):
            theta = sd.theta_for_width(theta_bar, d, r)
            beta_d = (1 - theta) / theta
            assert beta_d == pytest.approx(
                (d / r) * (1 - theta_bar) / theta_bar, rel=1e-12, abs=1e-15
            )
            assert sd.beta_for_width(theta, d, r) == pytest.approx(
                (1 - theta_bar) / theta_bar, rel=1e-12, abs=1e-15
            )
            assert sd.theta_for_width(theta_bar, d, r) == pytest.approx(
                reference.theta_for_width(theta_bar, d, r)
            )
    # Lemma 2: with theta fixed the product-space strength vanishes as d grows
    assert sd.beta_for_width(0.5, 10_000, 5) == pytest.approx(5e-4)
