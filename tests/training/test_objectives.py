"""Exact deterministic objectives against independent oracles.

- exhaustive enumeration of every mask / seed pattern, averaging the stochastic loss computed
  directly (to 1e-12 relative), for every scheme and every block size at small sizes;
- DropConnect: enumeration of every mask of V; the printed Theorem 13 formula differs on random X
  and agrees when X X^T is diagonal;
- Monte Carlo at larger sizes with a tolerance from the sample standard error;
- the C++ kernels against the separately written NumPy reference at large sizes;
- Lemma 10 (generalized_objective) against enumeration of an arbitrary finite distribution.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from _mask_enumeration import unit_mask_distribution, unit_schemes

import structdrop as sd
from structdrop.reference import objectives as ref
from structdrop.schemes import DropBlock, DropConnect, Dropout, NoDropout, OverlappingDropBlock


def problem(rng, a, b, N, d):
    return (
        rng.standard_normal((a, N)),  # Y
        rng.standard_normal((a, d)),  # U
        rng.standard_normal((b, d)),  # V
        rng.standard_normal((b, N)),  # X
    )


def enumerated_loss(Y, U, V, X, Z, P):
    """E ||Y - U diag(z / mu) V^T X||^2 over the finite distribution (Z, P); mu from (Z, P)
    itself."""
    mu = P @ Z
    G = V.T @ X
    losses = np.array([np.sum((Y - (U * (z / mu)) @ G) ** 2) for z in Z])
    return float(P @ losses), float(np.sum((Y - U @ G) ** 2))


def rel_err(actual, expected):
    return abs(actual - expected) / max(abs(expected), 1e-300)


# ---------------------------------------------------------------------------------------------
# Exhaustive enumeration
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "a, b, N, d", [(3, 4, 5, 6), (1, 1, 1, 1), (2, 3, 4, 2), (3, 2, 5, 4), (2, 5, 3, 5)]
)
def test_unit_schemes_match_enumeration(a, b, N, d):
    rng = np.random.default_rng(1000 * a + 100 * b + 10 * N + d)
    Y, U, V, X = problem(rng, a, b, N, d)
    for scheme in unit_schemes(d) + unit_schemes(d, theta=0.15, gamma=0.6):
        Z, P = unit_mask_distribution(scheme, d)
        expected, fit = enumerated_loss(Y, U, V, X, Z, P)
        # by keyword: with a = b and N = d the shapes fit both argument orders
        terms = scheme.objective_terms(X=X, Y=Y, U=U, V=V)
        assert rel_err(terms.objective, expected) < 1e-12, (scheme, terms, expected)
        assert rel_err(scheme.objective(X=X, Y=Y, U=U, V=V), expected) < 1e-12
        assert rel_err(terms.fit, fit) < 1e-12
        # The regulariser compared on its own, scaled by the objective (it is E - fit).
        assert abs(scheme.regularizer(U, V, X) - (expected - fit)) < 1e-12 * expected, scheme
        assert terms.objective == pytest.approx(terms.fit + terms.regularizer, rel=1e-15)


def test_hand_derived_scalar_dropout():
    # d = a = b = N = 1: E (y - u (z/theta) v x)^2 = (y - u v x)^2 + beta u^2 v^2 x^2.
    y, u, v, x, theta = 1.5, 0.7, -2.0, 0.3, 0.4
    beta = (1 - theta) / theta
    expected = (y - u * v * x) ** 2 + beta * (u * v * x) ** 2
    arr = lambda t: np.array([[t]])  # noqa: E731
    # every array 1 x 1 fits both argument orders: the arrays go by keyword
    one = dict(X=arr(x), Y=arr(y), U=arr(u), V=arr(v))
    for scheme in (Dropout(theta), DropBlock(1, theta=theta), DropConnect(theta)):
        assert scheme.objective(**one) == pytest.approx(expected, rel=1e-14)
    q = 1 - 0.25  # overlapping, d = r = 1: keep prob q, C-bar = 1/q - 1
    assert OverlappingDropBlock(1, gamma=0.25).objective(**one) == pytest.approx(
        (y - u * v * x) ** 2 + (1 / q - 1) * (u * v * x) ** 2, rel=1e-14
    )
    assert NoDropout().objective(**one) == pytest.approx((y - u * v * x) ** 2, rel=1e-14)


def dropconnect_enumeration(Y, U, V, X, theta):
    """E ||Y - (1/theta) U (Z (.) V)^T X||^2 over all 2^(b d) masks Z of V."""
    b, d = V.shape
    total = 0.0
    for bits in itertools.product((0, 1), repeat=b * d):
        Z = np.array(bits, dtype=float).reshape(b, d)
        p = math.prod(theta if zi else 1 - theta for zi in bits)
        total += p * np.sum((Y - U @ (Z * V).T @ X / theta) ** 2)
    return total


@pytest.mark.parametrize("a, b, N, d", [(2, 3, 4, 2), (3, 4, 5, 3), (1, 2, 3, 2)])
def test_dropconnect_matches_enumeration_and_printed_formula_does_not(a, b, N, d):
    rng = np.random.default_rng(77 + a + b + N + d)
    Y, U, V, X = problem(rng, a, b, N, d)
    theta = 0.6
    scheme = DropConnect(theta)
    expected = dropconnect_enumeration(Y, U, V, X, theta)
    fit = float(np.sum((Y - U @ V.T @ X) ** 2))
    assert rel_err(scheme.objective(X, Y, U, V), expected) < 1e-12
    assert abs(scheme.regularizer(U, V, X) - (expected - fit)) < 1e-12 * expected
    # The printed Theorem 13 / Corollary 14 is the Dropout regulariser: not the expectation here.
    printed = scheme.paper_approx_objective(X, Y, U, V)
    assert rel_err(printed, expected) > 1e-3, (printed, expected)
    assert rel_err(scheme.paper_approx_regularizer(U, V, X), expected - fit) > 1e-2
    assert scheme.paper_approx_regularizer(U, V, X) == pytest.approx(
        Dropout(theta).regularizer(U, V, X), rel=1e-13
    )


def test_dropconnect_gap_at_sizes_2_3_4_2():
    """a, b, N, d = 2, 3, 4, 2: the printed formula is off by several percent."""
    rng = np.random.default_rng(2020)
    Y, U, V, X = problem(rng, 2, 3, 4, 2)
    theta = 0.5
    expected = dropconnect_enumeration(Y, U, V, X, theta)
    exact = DropConnect(theta).objective(X, Y, U, V)
    printed = DropConnect(theta).paper_approx_objective(X, Y, U, V)
    assert rel_err(exact, expected) < 1e-12
    assert rel_err(printed, expected) > 0.01


@pytest.mark.parametrize("a, b, N, d", [(2, 3, 4, 2), (3, 3, 6, 3)])
def test_dropconnect_printed_formula_holds_when_gram_is_diagonal(a, b, N, d):
    rng = np.random.default_rng(5)
    Y, U, V, _ = problem(rng, a, b, N, d)
    Q, _ = np.linalg.qr(rng.standard_normal((N, b)))  # orthonormal columns
    X = np.diag([0.5, 2.0, 1.3][:b]) @ Q.T  # X X^T diagonal
    assert np.abs(X @ X.T - np.diag(np.diag(X @ X.T))).max() < 1e-14
    theta = 0.7
    expected = dropconnect_enumeration(Y, U, V, X, theta)
    scheme = DropConnect(theta)
    assert rel_err(scheme.objective(X, Y, U, V), expected) < 1e-12
    assert rel_err(scheme.paper_approx_objective(X, Y, U, V), expected) < 1e-12


def test_generalized_objective_lemma10_for_an_arbitrary_distribution():
    rng = np.random.default_rng(31)
    a, d, N = 3, 5, 7
    Y = rng.standard_normal((a, N))
    U = rng.standard_normal((a, d))
    G = rng.standard_normal((d, N))  # e.g. features of a deep network
    # Arbitrary finite distribution over 9 masks (correlated, non-uniform means, all means > 0).
    Z = rng.integers(0, 2, size=(9, d)).astype(float)
    Z[0] = 1.0
    P = rng.random(9)
    P /= P.sum()
    mu = P @ Z
    C = (Z * P[:, None]).T @ Z - np.outer(mu, mu)
    expected = float(P @ [np.sum((Y - (U * (z / mu)) @ G) ** 2) for z in Z])
    terms = sd.generalized_objective(G, Y, U, mu, C)
    assert rel_err(terms.objective, expected) < 1e-12
    assert rel_err(terms.fit, float(np.sum((Y - U @ G) ** 2))) < 1e-13
    # Non-binary masks too (Lemma 10 needs only the mean and covariance).
    W = rng.random((6, d)) * 2.0 + 0.1
    Pw = np.full(6, 1 / 6)
    muw = Pw @ W
    Cw = (W * Pw[:, None]).T @ W - np.outer(muw, muw)
    expected_w = float(Pw @ [np.sum((Y - (U * (w / muw)) @ G) ** 2) for w in W])
    assert rel_err(sd.generalized_objective(G, Y, U, muw, Cw).objective, expected_w) < 1e-12


def test_generalized_objective_agrees_with_every_scheme():
    rng = np.random.default_rng(8)
    Y, U, V, X = problem(rng, 3, 4, 9, 6)
    for scheme in unit_schemes(6):
        g = sd.generalized_objective(V.T @ X, Y, U, scheme.mask_mean(6), scheme.mask_covariance(6))
        assert rel_err(g.objective, scheme.objective(X, Y, U, V)) < 1e-12


# ---------------------------------------------------------------------------------------------
# Monte Carlo at larger sizes
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "scheme",
    [
        Dropout(0.6),
        DropBlock(8, theta=0.5),
        OverlappingDropBlock(5, theta=0.7),
        DropBlock(1, theta=0.8),
    ],
    ids=repr,
)
def test_unit_schemes_monte_carlo(scheme):
    rng = np.random.default_rng(4242)
    a, b, N, d = 4, 30, 120, 160
    Y, U, V, X = problem(rng, a, b, N, d)
    U /= np.sqrt(d)
    G = V.T @ X
    mu = scheme.mask_mean(d)
    masks = scheme.sample_masks(d, 3000, 17)
    losses = np.empty(len(masks))
    for start in range(0, len(masks), 500):
        Zc = masks[start : start + 500] / mu
        pred = np.matmul(U[None, :, :] * Zc[:, None, :], G)  # (m, a, N)
        losses[start : start + 500] = np.sum((Y[None] - pred) ** 2, axis=(1, 2))
    se = losses.std(ddof=1) / np.sqrt(len(losses))
    exact = scheme.objective(X, Y, U, V)
    assert abs(losses.mean() - exact) < 5.0 * se, (losses.mean(), exact, se)
    # The test has power: the fit alone is many standard errors away.
    assert abs(losses.mean() - float(np.sum((Y - U @ G) ** 2))) > 10 * se


def test_dropconnect_monte_carlo_separates_exact_from_printed():
    rng = np.random.default_rng(99)
    a, b, N, d = 3, 12, 60, 40
    Y, U, V, _ = problem(rng, a, b, N, d)
    # Positively correlated input features and non-negative V, so that X X^T is far from diagonal
    # and ||X^T v_i||^2 (printed) is far above sum_j V_ji^2 ||x_j||^2 (exact).
    X = np.ones((b, 1)) @ rng.standard_normal((1, N)) + 0.3 * rng.standard_normal((b, N))
    V = np.abs(V)
    theta = 0.5
    scheme = DropConnect(theta)
    masks = scheme.sample_masks(d, 4000, 3, in_features=b)
    W = np.einsum("ai,mji->maj", U, masks * V[None]) / theta  # U (Z (.) V)^T / theta, (m, a, b)
    losses = np.sum((Y[None] - W @ X) ** 2, axis=(1, 2))
    se = losses.std(ddof=1) / np.sqrt(len(losses))
    exact = scheme.objective(X, Y, U, V)
    printed = scheme.paper_approx_objective(X, Y, U, V)
    assert abs(losses.mean() - exact) < 5.0 * se
    assert abs(losses.mean() - printed) > 10.0 * se


# ---------------------------------------------------------------------------------------------
# C++ kernels against the NumPy reference at large sizes
# ---------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_cpp_matches_numpy_reference_at_large_sizes():
    rng = np.random.default_rng(123)
    a, b, N, d = 10, 40, 20_000, 300
    Y, U, V, X = problem(rng, a, b, N, d)
    moments = sd.data_moments(X, Y)
    np.testing.assert_allclose(moments.gram, X @ X.T, rtol=1e-12, atol=1e-9 * N)
    np.testing.assert_allclose(moments.cross, Y @ X.T, rtol=1e-12, atol=1e-9 * N)
    assert moments.y_sq_norm == pytest.approx(float(np.sum(Y**2)), rel=1e-13)
    assert moments.n_samples == N and moments.in_features == b and moments.out_features == a
    schemes = [
        NoDropout(),
        Dropout(0.3),
        DropBlock(1, theta=0.6),
        DropBlock(20, theta=0.6),
        DropBlock(300, theta=0.45),
        OverlappingDropBlock(7, gamma=0.05),
        OverlappingDropBlock(1, theta=0.8),
        DropConnect(0.75),
    ]
    for scheme in schemes:
        terms = sd.objective_terms(scheme, U, V, moments)
        fit, reg = ref.objective_terms(scheme, Y, U, V, X, chunk_size=7000)
        assert rel_err(terms.fit, fit) < 1e-10, scheme
        if isinstance(scheme, NoDropout):
            assert terms.regularizer == 0.0 and reg == 0.0
        else:
            assert rel_err(terms.regularizer, reg) < 1e-10, scheme
    printed = sd.dropconnect_paper_approx_terms(DropConnect(0.75), U, V, moments)
    assert rel_err(printed.regularizer, ref.dropconnect_paper_regularizer(U, V, X, 0.75)) < 1e-10


def test_reference_overlapping_stats_match_core():
    for d, r, g in [(9, 3, 0.2), (7, 7, 0.5), (12, 1, 0.1)]:
        mean, cbar = ref.overlapping_dropblock_stats(d, r, g)
        s = OverlappingDropBlock(r, gamma=g)
        np.testing.assert_allclose(s.mask_mean(d), mean, rtol=1e-14)
        np.testing.assert_allclose(s.characteristic_matrix(d), cbar, rtol=1e-12, atol=1e-15)


def test_width_scaled_dropblock_objective_eq8():
    """With theta(d) of eq. 7 the regulariser is (d/r) (1 - theta_bar)/theta_bar sum ||U_i V_i^T
    X||^2 (eq. 8)."""
    rng = np.random.default_rng(6)
    a, b, N, d, r = 3, 5, 40, 12, 3
    Y, U, V, X = problem(rng, a, b, N, d)
    theta_bar = 0.7
    blocks = sum(
        float(np.sum((U[:, i : i + r] @ V[:, i : i + r].T @ X) ** 2)) for i in range(0, d, r)
    )
    expected = float(np.sum((Y - U @ V.T @ X) ** 2)) + d / r * (1 - theta_bar) / theta_bar * blocks
    scheme = DropBlock.for_width(theta_bar, d, r)
    assert rel_err(scheme.objective(X, Y, U, V), expected) < 1e-12
    assert sd.beta_for_width(scheme.theta, d, r) == pytest.approx(
        (1 - theta_bar) / theta_bar, rel=1e-12
    )


# ---------------------------------------------------------------------------------------------
# Cached moments, layouts, and the N-free path
# ---------------------------------------------------------------------------------------------


def test_cached_moments_layouts_and_no_targets():
    rng = np.random.default_rng(3)
    Y, U, V, X = problem(rng, 3, 6, 50, 8)
    scheme = OverlappingDropBlock(3, gamma=0.2)
    base = sd.objective_terms(scheme, U, V, sd.data_moments(X, Y))
    variants = [
        (np.asfortranarray(X), Y),
        (X, np.asfortranarray(Y)),
        (np.asfortranarray(X), np.asfortranarray(Y)),
    ]
    strided = np.zeros((X.shape[0], 2 * X.shape[1]))
    strided[:, ::2] = X
    variants.append((strided[:, ::2], Y))  # non-contiguous view: copied once, same values
    for Xv, Yv in variants:
        t = sd.objective_terms(scheme, np.asfortranarray(U), V, sd.data_moments(Xv, Yv))
        assert rel_err(t.objective, base.objective) < 1e-13
    only_x = sd.data_moments(X)
    assert only_x.cross is None and only_x.out_features is None
    t = sd.objective_terms(scheme, U, V, only_x)
    assert math.isnan(t.fit) and math.isnan(t.objective)
    assert rel_err(t.regularizer, base.regularizer) < 1e-13
    # Integer data are converted (documented); results equal the float computation.
    Xi = rng.integers(-3, 4, size=(6, 50))
    assert (
        rel_err(
            sd.objective_terms(scheme, U, V, sd.data_moments(Xi, Y)).objective,
            sd.objective_terms(scheme, U, V, sd.data_moments(Xi.astype(float), Y)).objective,
        )
        < 1e-15
    )


def test_exact_fit_is_not_negative():
    rng = np.random.default_rng(4)
    _, U, V, X = problem(rng, 3, 5, 30, 4)
    Y = U @ V.T @ X  # zero residual: the moment expansion may round below 0
    t = sd.objective_terms(NoDropout(), U, V, sd.data_moments(X, Y))
    assert 0.0 <= t.fit < 1e-9 * float(np.sum(Y**2))


# ---------------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------------


def test_bad_inputs_give_clear_errors():
    rng = np.random.default_rng(0)
    Y, U, V, X = problem(rng, 2, 3, 5, 4)
    s = Dropout(0.5)
    with pytest.raises(ValueError, match="U and V"):
        s.objective(X, Y, U[:, :3], V)
    with pytest.raises(ValueError, match="V must have b = 3 rows"):
        s.objective(X, Y, U, V[:2])
    with pytest.raises(ValueError, match="same number of columns"):
        s.objective(X, Y[:, :4], U, V)
    with pytest.raises(ValueError, match="U must have a = 2 rows"):
        s.objective(X, Y, np.vstack([U, U]), V)
    with pytest.raises(ValueError, match="X must be 2-D"):
        s.regularizer(U, V, X[0])
    with pytest.raises(ValueError, match="NaN"):
        s.objective(np.where(X > 1, np.nan, X), Y, U, V)
    with pytest.raises(ValueError, match="NaN"):
        s.regularizer(np.full_like(U, np.inf), V, X)
    with pytest.raises(TypeError, match="U"):
        s.regularizer(U.astype(complex), V, X)
    with pytest.raises(ValueError, match="divide"):
        DropBlock(3, theta=0.5).objective(X, Y, U, V)
    with pytest.raises(ValueError, match="block_size <= d"):
        OverlappingDropBlock(5, gamma=0.1).regularizer(U, V, X)
    moments = sd.data_moments(X, Y)
    with pytest.raises(TypeError, match="moments"):
        sd.objective_terms(s, U, V, (X @ X.T, Y @ X.T, 1.0))
    with pytest.raises(TypeError, match="scheme"):
        sd.objective_terms("dropout", U, V, moments)
    with pytest.raises(TypeError, match="DropConnect"):
        sd.dropconnect_paper_approx_terms(s, U, V, moments)
    with pytest.raises(ValueError, match="V must have b"):
        sd.objective_terms(s, U, V[:2], moments)


def test_generalized_objective_bad_inputs():
    rng = np.random.default_rng(1)
    Y, U, G = rng.standard_normal((2, 5)), rng.standard_normal((2, 3)), rng.standard_normal((3, 5))
    mu, C = np.full(3, 0.5), 0.25 * np.eye(3)
    assert sd.generalized_objective(G, Y, U, mu, C).regularizer > 0
    with pytest.raises(ValueError, match="zero"):
        sd.generalized_objective(G, Y, U, np.array([0.5, 0.0, 0.5]), C)
    with pytest.raises(ValueError, match="symmetric"):
        sd.generalized_objective(G, Y, U, mu, C + np.triu(np.ones((3, 3)), 1))
    with pytest.raises(ValueError, match="G must have d = 3 rows"):
        sd.generalized_objective(G[:2], Y, U, mu, C)
    with pytest.raises(ValueError, match="Y must have shape"):
        sd.generalized_objective(G, Y[:, :4], U, mu, C)
    with pytest.raises(ValueError, match="mean must have"):
        sd.generalized_objective(G, Y, U, mu[:2], C)
    with pytest.raises(ValueError, match="covariance must be"):
        sd.generalized_objective(G, Y, U, mu, C[:2])
    with pytest.raises(ValueError, match="NaN"):
        sd.generalized_objective(G, Y, U, mu, np.full((3, 3), np.nan))


def test_core_rejects_bad_shapes_directly():
    from structdrop import _core

    rng = np.random.default_rng(2)
    Y, U, V, X = problem(rng, 2, 3, 5, 4)
    g, c, ys = _core.objective_moments(X, Y)
    dropout = _core.SchemeParams(_core.SchemeKind.dropout, 0.5)
    with pytest.raises(ValueError, match="V must have b"):
        _core.objective_terms(dropout, g, c, ys, U, V[:2])
    with pytest.raises(ValueError, match="U must have a"):
        _core.objective_terms(dropout, g, c, ys, U[:1], V)
    with pytest.raises(ValueError, match="same number of columns"):
        _core.objective_terms(dropout, g, c, ys, np.ascontiguousarray(U[:, :3]), V)
    with pytest.raises(ValueError, match="contiguous"):
        _core.objective_terms(dropout, g, c, ys, U[:, ::2], V[:, ::2])
    with pytest.raises(ValueError, match="gram must be square"):
        _core.objective_terms(dropout, np.ascontiguousarray(g[:2]), c, ys, U, V)
    with pytest.raises(ValueError, match="contiguous"):
        _core.objective_moments(np.concatenate([X, X], axis=1)[:, ::2], None)
    with pytest.raises(ValueError, match="same number of columns"):
        _core.objective_moments(X, np.ascontiguousarray(Y[:, :4]))
    with pytest.raises(TypeError):
        _core.objective_moments(X.astype(np.float32), Y)  # no silent dtype conversion in the core
    with pytest.raises(ValueError, match="2-D"):
        _core.objective_moments(X[0], None)
    with pytest.raises(ValueError, match="dropconnect"):
        _core.objective_terms(dropout, g, c, ys, U, V, True)
