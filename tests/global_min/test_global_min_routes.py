"""The global minimum from moments (Gram route) and from data read in chunks (QR route).

The oracle is the separately written NumPy route of structdrop.reference: an explicit projector
P = pinv(X) X (N x N) and a full SVD of Y P. Conditioning is controlled by building X from chosen
singular values.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from _oracles import variational_norm_sq

import structdrop as sd
from structdrop import reference


def conditioned(rng, b, N, cond, decay="log"):
    """b x N with singular values from 1 down to 1/cond (log-spaced, or only the last three
    small)."""
    left, _ = np.linalg.qr(rng.standard_normal((b, b)))
    right, _ = np.linalg.qr(rng.standard_normal((N, b)))
    if decay == "log":
        s = np.logspace(0, -np.log10(cond), b)
    else:
        s = np.r_[np.ones(b - 3), np.full(3, 1.0 / cond)]
    return (left * s) @ right.T


def targets(rng, X, a, kind):
    """Y along X's large directions ('model'), unrelated to X ('noise'), or along its smallest
    ('small')."""
    N = X.shape[1]
    if kind == "model":
        return rng.standard_normal((a, X.shape[0])) @ X + 0.1 * rng.standard_normal((a, N))
    if kind == "noise":
        return rng.standard_normal((a, N))
    _, _, vt = np.linalg.svd(X, full_matrices=False)
    return 100 * rng.standard_normal((a, 3)) @ vt[-3:] + 0.01 * rng.standard_normal((a, N))


def F(Y, A, r, beta):
    return float(
        np.sum((Y - A) ** 2) + beta * variational_norm_sq(np.linalg.svd(A, compute_uv=False), r)
    )


def rel(x, y):
    return abs(x - y) / abs(y)


@pytest.mark.parametrize("kind", ["model", "noise", "small"])
def test_from_moments_matches_svd_route_on_well_conditioned_data(rng, kind):
    for r, theta_bar in [(1, 0.5), (3, 0.3), (7, 0.9)]:
        X = conditioned(rng, 30, 400, 10.0)
        Y = targets(rng, X, 12, kind)
        ref = reference.dropblock_global_min(Y, r, theta_bar, X=X)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # well conditioned: no ConditioningWarning
            res = sd.global_min_from_moments(
                sd.data_moments(X, Y), block_size=r, theta_bar=theta_bar
            )
        assert res.route == "gram"
        assert rel(res.objective, ref["objective"]) <= 1e-10
        assert res.error_estimate <= 1e-10
        np.testing.assert_allclose(res.output(X), ref["A"], atol=1e-9 * np.abs(ref["A"]).max())
        np.testing.assert_allclose(
            res.coefficients @ X, ref["A"], atol=1e-9 * np.abs(ref["A"]).max()
        )
        assert res.rank == ref["rank"] and res.rho == ref["rho"]
        # The objective is what the minimiser achieves, by the variational form of the norm.
        assert res.objective == pytest.approx(F(Y, res.output(X), r, res.beta), rel=1e-9)


def test_coefficients_shape_and_factors(rng):
    X = conditioned(rng, 20, 300, 5.0)
    Y = targets(rng, X, 7, "model")
    res = sd.global_min_from_moments(sd.data_moments(X, Y), block_size=4, theta_bar=0.6)
    assert res.coefficients.shape == (7, 20)
    assert res.left_vectors.shape == (7, res.rank) and res.right_coefficients.shape == (
        res.rank,
        20,
    )
    Z = res.right_coefficients @ X  # orthonormal rows: the right singular vectors of A*
    np.testing.assert_allclose(Z @ Z.T, np.eye(res.rank), atol=1e-10)
    np.testing.assert_allclose(res.left_vectors.T @ res.left_vectors, np.eye(res.rank), atol=1e-12)
    np.testing.assert_allclose(
        np.linalg.svd(res.output(X), compute_uv=False)[: res.rank],
        res.singular_values[: res.rank],
        rtol=1e-10,
    )


@pytest.mark.parametrize("cond", [1e2, 1e3, 1e4, 1e6])
@pytest.mark.parametrize("kind", ["model", "noise", "small"])
@pytest.mark.parametrize("decay", ["log", "few"])
def test_gram_error_estimate_bounds_the_measured_error(rng, cond, kind, decay):
    X = conditioned(rng, 40, 600, cond, decay)
    Y = targets(rng, X, 10, kind)
    ref = reference.dropblock_global_min(Y, 3, 0.5, X=X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sd.ConditioningWarning)
        res = sd.global_min_from_moments(sd.data_moments(X, Y), block_size=3, theta_bar=0.5)
    assert res.x_rank == 40
    # The estimate is first order in the roundoff: a bound up to its own rounding floor.
    assert rel(res.objective, ref["objective"]) <= max(res.error_estimate, 1e-14)


def row_space_angle_bound(X, cond):
    """A bound on sin(angle) between X's exact row space and the one a backward-stable
    factorisation computes (Householder QR here, the SVD behind pinv in the reference).

    Wedin's theorem: sin(angle) <= ||E|| / sigma_min(X) for a backward error E. Both routes'
    backward errors are taken as sqrt(max(b, N)) u ||X||, the size the package's own QR-route
    estimate uses (``_solver.row_space``), so one side's angle is sqrt(max(b, N)) u kappa(X).
    """
    return np.sqrt(max(X.shape)) * np.finfo(float).eps / 2 * cond


def residual_bound(Y, out_sq, s):
    """How far ||Y (I - P)||^2 = out_sq may move when P's range turns by an angle s (see the
    test below), plus each side's rounding of its sum of squares (gamma_{Na} ||Y||^2)."""
    y_sq = float(np.sum(Y**2))
    in_norm = np.sqrt(max(y_sq - out_sq, 0.0))
    return (
        2 * in_norm * np.sqrt(out_sq) * s
        + 2 * y_sq * s**2
        + 2 * Y.size * np.finfo(float).eps * y_sq
    )


@pytest.mark.parametrize("cond", [1e4, 1e6, 1e8, 1e10])
def test_data_at_hand_switches_to_qr_and_stays_exact(rng, cond):
    """The QR route against the pinv reference, with tolerances from the perturbation of the
    row-space projector P on both sides (angle s = s_route + s_reference, each bounded above):
    - the residual r = ||Y (I - P)||^2 = ||Y||^2 - ||Y P||^2 moves by at most
      2 ||Y P|| ||Y (I - P)|| s + 2 ||Y||^2 s^2 (first order: the off-diagonal blocks of the
      change of P; second order: its diagonal blocks), all norms Frobenius;
    - A* is the prox of Y P, and a prox of a convex function is non-expansive, so
      ||A*_route - A*_reference||_F <= ||Y||_F ||P_route - P_reference||_2 = ||Y||_F s.
    Under different BLAS kernels (AVX-512, Haswell, Sandybridge, generic) the two sides round
    differently; only the bound is a property of the code."""
    for kind in ("model", "noise", "small"):
        X = conditioned(rng, 40, 600, cond)
        Y = targets(rng, X, 10, kind)
        ref = reference.dropblock_global_min(Y, 3, 0.5, X=X)
        res = sd.dropblock_global_min(Y, block_size=3, theta_bar=0.5, X=X)
        assert res.route == "qr"
        assert res.x_rank == np.linalg.matrix_rank(X)
        assert rel(res.objective, ref["objective"]) <= max(1e-10, res.error_estimate)
        s = 2 * row_space_angle_bound(X, cond)
        P = reference.ksupport._pinv(X) @ X
        outside = Y - Y @ P
        out_sq = float(np.sum(outside**2))
        bound = residual_bound(Y, out_sq, s)
        assert abs(res.residual - out_sq) <= bound, (kind, res.residual, out_sq, bound)
        assert np.linalg.norm(res.A - ref["A"]) <= np.linalg.norm(Y) * s, kind


def test_residual_bound_is_not_vacuous_where_it_can_be_sharp(rng):
    """The bound above is tight enough to mean something on moderately conditioned data: a
    residual off by one part in 10^5 breaks it at kappa = 10^4, for every kind of target."""
    for kind in ("model", "noise", "small"):
        X = conditioned(rng, 40, 600, 1e4)
        Y = targets(rng, X, 10, kind)
        outside = Y - Y @ reference.ksupport._pinv(X) @ X
        out_sq = float(np.sum(outside**2))
        bound = residual_bound(Y, out_sq, 2 * row_space_angle_bound(X, 1e4))
        assert bound < 1e-5 * out_sq, (kind, bound / out_sq)


@pytest.mark.parametrize("b, N", [(6, 40), (30, 200), (40, 41)])
def test_residual_is_never_negative_when_Y_lies_in_the_row_space(rng, b, N):
    """Y = M X exactly: the residual ||Y (I - P)||^2 is zero in exact arithmetic and computed as a
    difference on the Gram route, where rounding makes it negative about half the time unless it
    is clamped. Every route, many draws."""
    for _ in range(10):
        X = rng.standard_normal((b, N))
        Y = rng.standard_normal((5, b)) @ X
        moments = sd.data_moments(X, Y)
        results = [
            sd.dropblock_global_min(Y, block_size=2, theta_bar=0.5, X=X),
            sd.global_min_from_moments(moments, block_size=2, theta_bar=0.5),
        ]
        for res in results:
            assert res.residual >= 0.0, res.route
            assert res.residual <= 1e-10 * float(np.sum(Y**2))
            assert res.objective >= 0.0


@pytest.mark.parametrize("b, N", [(4, 1000), (12, 300), (30, 31)])
def test_qr_rank_follows_numpys_matrix_rank_rule(rng, b, N):
    """X's numerical rank by NumPy's rule: singular values above max(b, N) u s_1. A singular value
    ten times above or below that threshold is counted or not; one between b u s_1 and
    N u s_1 tells the rule from one that uses b alone (N > b here)."""
    eps = np.finfo(float).eps
    threshold = max(b, N) * eps
    for small in (threshold / 10, threshold * 10, 10 * b * eps if N >= 100 * b else threshold / 10):
        s = np.r_[np.ones(b - 1), small]
        left, _ = np.linalg.qr(rng.standard_normal((b, b)))
        right, _ = np.linalg.qr(rng.standard_normal((N, b)))
        X = (left * s) @ right.T
        Y = rng.standard_normal((3, N))
        res = sd.dropblock_global_min(Y, block_size=2, theta_bar=0.5, X=X)
        expected = np.linalg.matrix_rank(X)
        assert expected == (b if small > threshold else b - 1)
        assert res.x_rank == expected, (small / eps, res.route)


def test_well_conditioned_data_at_hand_uses_the_gram_route(rng):
    X = conditioned(rng, 40, 600, 10.0)
    Y = targets(rng, X, 10, "noise")
    res = sd.dropblock_global_min(Y, block_size=3, theta_bar=0.5, X=X)
    assert res.route == "gram"
    ref = reference.dropblock_global_min(Y, 3, 0.5, X=X)
    assert rel(res.objective, ref["objective"]) <= 1e-10
    assert res.residual == pytest.approx(
        float(np.sum((Y - Y @ np.linalg.pinv(X) @ X) ** 2)), rel=1e-9
    )


def test_rank_deficient_data_uses_qr_and_matches_reference(rng):
    for _ in range(20):
        b, N, k = int(rng.integers(3, 30)), int(rng.integers(5, 200)), None
        k = int(rng.integers(1, min(b, N)))
        X = rng.standard_normal((b, k)) @ rng.standard_normal((k, N))
        Y = rng.standard_normal((4, N))
        r, theta_bar = int(rng.integers(1, 5)), float(rng.uniform(0.1, 0.9))
        res = sd.dropblock_global_min(Y, block_size=r, theta_bar=theta_bar, X=X)
        ref = reference.dropblock_global_min(Y, r, theta_bar, X=X)
        assert res.route == "qr" and res.x_rank == k
        assert rel(res.objective, ref["objective"]) <= 1e-10
        np.testing.assert_allclose(res.A, ref["A"], atol=1e-9 * max(1.0, np.abs(ref["A"]).max()))
        np.testing.assert_allclose(
            res.coefficients @ X, res.A, atol=1e-9 * max(1.0, np.abs(res.A).max())
        )


def test_moments_of_rank_deficient_or_ill_conditioned_data_warn(rng):
    X = rng.standard_normal((10, 3)) @ rng.standard_normal((3, 200))
    Y = rng.standard_normal((4, 200))
    with pytest.warns(sd.ConditioningWarning, match="numerically singular"):
        sd.global_min_from_moments(sd.data_moments(X, Y), block_size=2, theta_bar=0.5)
    X = conditioned(rng, 30, 400, 1e6)
    Y = targets(rng, X, 5, "small")
    with pytest.warns(sd.ConditioningWarning, match="estimated relative error"):
        res = sd.global_min_from_moments(sd.data_moments(X, Y), block_size=2, theta_bar=0.5)
    assert res.error_estimate > 1e-10
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sd.global_min_from_moments(sd.data_moments(X, Y), block_size=2, theta_bar=0.5, warn=False)


def test_a_is_formed_only_on_request(rng):
    X = conditioned(rng, 20, 300, 5.0)
    Y = targets(rng, X, 7, "model")
    from_moments = sd.global_min_from_moments(sd.data_moments(X, Y), block_size=2, theta_bar=0.5)
    with pytest.raises(AttributeError, match="output"):
        from_moments.A  # noqa: B018
    with pytest.raises(ValueError, match="pass the data"):
        from_moments.output()
    with pytest.raises(ValueError, match="b = 20 rows"):
        from_moments.output(X[:5])
    from_data = sd.dropblock_global_min(Y, block_size=2, theta_bar=0.5, X=X)
    assert "A" not in vars(from_data)  # nothing a x N until asked for
    np.testing.assert_allclose(
        from_data.A, from_moments.output(X), atol=1e-10 * np.abs(from_data.A).max()
    )
    # any 2-D array-like is converted like the solvers' own input; a 1-D one is refused by name
    np.testing.assert_array_equal(from_moments.output(X.tolist()), from_moments.output(X))
    with pytest.raises(ValueError, match="X must be 2-D"):
        from_moments.output(X[0])
    assert from_data.objective == pytest.approx(from_moments.objective, rel=1e-12)


def test_pickling_sends_the_factors_not_the_data(rng):
    import pickle

    X = conditioned(rng, 20, 5000, 5.0)
    Y = targets(rng, X, 4, "model")
    res = sd.dropblock_global_min(Y, block_size=2, theta_bar=0.5, X=X)
    _ = res.A  # formed and cached: a x N
    blob = pickle.dumps(res)
    assert len(blob) < X.nbytes / 10
    back = pickle.loads(blob)
    assert back.objective == res.objective and back.route == res.route
    np.testing.assert_array_equal(back.coefficients, res.coefficients)
    np.testing.assert_array_equal(back.output(X), res.output(X))
    with pytest.raises(AttributeError, match="output"):
        back.A  # noqa: B018


def test_memmap_and_float32_data(rng, tmp_path):
    for cond in (5.0, 1e6):  # one problem per route
        X = conditioned(rng, 25, 700, cond)
        Y = targets(rng, X, 6, "noise")
        ref = sd.dropblock_global_min(Y, block_size=3, theta_bar=0.4, X=X)
        np.save(tmp_path / "X.npy", X)
        mapped = np.load(tmp_path / "X.npy", mmap_mode="r")
        res = sd.dropblock_global_min(Y, block_size=3, theta_bar=0.4, X=mapped)
        assert res.route == ref.route
        assert rel(res.objective, ref.objective) <= 1e-12
    X32 = conditioned(rng, 25, 700, 3.0).astype(np.float32)
    Y = targets(rng, X32.astype(np.float64), 6, "noise")
    res = sd.dropblock_global_min(Y, block_size=3, theta_bar=0.4, X=X32)
    ref = reference.dropblock_global_min(Y, 3, 0.4, X=X32.astype(np.float64))
    assert rel(res.objective, ref["objective"]) <= 1e-10


def test_merged_moments_give_the_same_minimum(rng):
    X = conditioned(rng, 30, 900, 20.0)
    Y = targets(rng, X, 8, "model")
    whole = sd.global_min_from_moments(sd.data_moments(X, Y), block_size=5, theta_bar=0.7)
    parts = [sd.data_moments(X[:, i : i + 250], Y[:, i : i + 250]) for i in range(0, 900, 250)]
    merged = sd.DataMoments(
        gram=sum(p.gram for p in parts),
        cross=sum(p.cross for p in parts),
        y_sq_norm=sum(p.y_sq_norm for p in parts),
        n_samples=sum(p.n_samples for p in parts),
    )
    chunked = sd.global_min_from_moments(merged, block_size=5, theta_bar=0.7)
    assert chunked.objective == pytest.approx(whole.objective, rel=1e-12)
    np.testing.assert_allclose(
        chunked.coefficients, whole.coefficients, atol=1e-10 * np.abs(whole.coefficients).max()
    )


def test_zero_data_reaches_only_zero(rng):
    Y = rng.standard_normal((3, 50))
    res = sd.global_min_from_moments(
        sd.data_moments(np.zeros((4, 50)), Y), block_size=2, theta_bar=0.5, warn=False
    )
    assert res.rank == 0 and res.objective == pytest.approx(float(np.sum(Y**2)))
    assert res.coefficients.shape == (3, 4) and not res.coefficients.any()
    res = sd.dropblock_global_min(Y, block_size=2, theta_bar=0.5, X=np.zeros((4, 50)))
    assert res.rank == 0 and res.objective == pytest.approx(float(np.sum(Y**2)))
    assert not res.A.any()


def test_sweeps_use_the_accurate_route(rng):
    X = conditioned(rng, 30, 400, 1e7)
    Y = targets(rng, X, 6, "small")
    sweep = sd.sweep_global_min(Y, block_sizes=[1, 3], theta_bars=[0.3, 0.8], X=X)
    for i, r in enumerate([1, 3]):
        for j, tb in enumerate([0.3, 0.8]):
            ref = reference.dropblock_global_min(Y, r, tb, X=X)
            assert rel(sweep.objective[i, j], ref["objective"]) <= 1e-8


def test_bad_input():
    with pytest.raises(TypeError, match="DataMoments"):
        sd.global_min_from_moments(np.eye(3), block_size=2, theta_bar=0.5)
    with pytest.raises(ValueError, match="without targets"):
        sd.global_min_from_moments(sd.data_moments(np.eye(3)), block_size=2, theta_bar=0.5)
    moments = sd.data_moments(np.eye(3), np.ones((2, 3)))
    with pytest.raises(ValueError, match="block_size must be"):
        sd.global_min_from_moments(moments, block_size=0, theta_bar=0.5)
    with pytest.raises(ValueError, match="theta_bar"):
        sd.global_min_from_moments(moments, block_size=2, theta_bar=1.5)
    with pytest.raises(ValueError, match="same number of samples"):
        sd.dropblock_global_min(np.ones((2, 3)), block_size=2, theta_bar=0.5, X=np.ones((2, 4)))
    with pytest.raises(ValueError, match="NaN"):
        sd.dropblock_global_min(
            np.ones((2, 3)), block_size=2, theta_bar=0.5, X=np.array([[1.0, np.nan, 0.0]])
        )
    with pytest.raises(ValueError, match="2-D"):
        sd.dropblock_global_min(np.ones((2, 3)), block_size=2, theta_bar=0.5, X=np.ones(3))
