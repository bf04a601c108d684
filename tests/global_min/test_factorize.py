"""A width-d network at the global minimum (balanced factorisation, Theorems 4/5, Corollary 8).

Oracles, all independent of the construction: the width-d DropBlock objective evaluated by
``DropBlock.for_width(...).objective`` (exact expectation from the data moments, C++), the
closed-form minimum (corrected Theorem 7), the r-support norm from its variational form (_oracles),
the minimiser A* formed from the solve, a hand-computed width-2 optimum, and L-BFGS on the width-d
objective written out here in NumPy with its gradient.
"""

from __future__ import annotations

import numpy as np
import pytest
from _oracles import variational_norm_sq
from scipy.optimize import minimize

import structdrop as sd
from structdrop import factorize as fz
from structdrop._solver.projector_sum import bases_from_plan, segment_plan, solve_numerically


def block_norms(U, V, X, r):
    return np.array(
        [np.linalg.norm(U[:, j : j + r] @ (V[:, j : j + r].T @ X)) for j in range(0, U.shape[1], r)]
    )


def data(seed, a, b, N, *, with_x=True, x_rank=None):
    rng = np.random.default_rng(seed)
    Y = rng.standard_normal((a, N))
    if not with_x:
        return Y, None
    if x_rank is None:
        return Y, rng.standard_normal((b, N))
    return Y, rng.standard_normal((b, x_rank)) @ rng.standard_normal((x_rank, N))


def assert_exact_network(Y, X, res, d, theta_bar):
    r = res.block_size
    Xe = np.eye(Y.shape[1]) if X is None else X
    fact = fz.balanced_factorization(res, d)
    assert fact.exact, (d, fact.method)
    assert fact.U.shape == (Y.shape[0], d) and fact.V.shape == (Xe.shape[0], d)
    objective = sd.DropBlock.for_width(theta_bar, d, r).objective(X=Xe, Y=Y, U=fact.U, V=fact.V)
    assert objective == pytest.approx(res.objective, rel=1e-9)
    A_star = res.output(Xe) if X is not None else res.A
    scale = max(np.linalg.norm(A_star), 1.0)
    np.testing.assert_allclose(fact.U @ (fact.V.T @ Xe), A_star, atol=1e-9 * scale)
    norms = block_norms(fact.U, fact.V, Xe, r)  # Definition 3: all equal, to ||sigma(A*)||_(r) / k
    norm = np.sqrt(variational_norm_sq(np.linalg.svd(A_star, compute_uv=False), r))
    np.testing.assert_allclose(norms, norm / (d // r), rtol=1e-7, atol=1e-12 * scale)
    return fact


CASES = [
    # (seed, a, b, N, with_x, x_rank, r, theta_bar)
    (0, 5, 7, 12, True, None, 1, 0.5),
    (1, 6, 8, 14, True, None, 2, 0.7),
    (2, 6, 9, 15, True, None, 3, 0.85),
    (3, 7, 9, 16, True, 5, 2, 0.9),  # rank-deficient X
    (4, 5, 0, 8, False, None, 2, 0.8),  # no X: V is N x d
    (5, 6, 0, 9, False, None, 4, 0.95),
    (6, 8, 10, 20, True, None, 4, 0.9),
]


@pytest.mark.parametrize("seed,a,b,N,with_x,x_rank,r,theta_bar", CASES)
def test_exact_at_every_width_from_min_exact_width(seed, a, b, N, with_x, x_rank, r, theta_bar):
    Y, X = data(seed, a, b, N, with_x=with_x, x_rank=x_rank)
    res = sd.dropblock_global_min(Y, block_size=r, theta_bar=theta_bar, X=X)
    start = fz.min_exact_width(res)
    assert start % r == 0
    for d in range(start, start + 4 * r, r):
        assert_exact_network(Y, X, res, d, theta_bar)


def test_minimum_from_moments_factorizes_without_the_data():
    Y, X = data(11, 6, 8, 30)
    moments = sd.data_moments(X, Y)
    res = sd.global_min_from_moments(moments, block_size=2, theta_bar=0.8)
    d = fz.min_exact_width(res) + 2
    U, V = res.factorize(d)  # only the coefficients are needed
    objective = sd.DropBlock.for_width(0.8, d, 2).objective(X=X, Y=Y, U=U, V=V)
    assert objective == pytest.approx(res.objective, rel=1e-9)
    np.testing.assert_allclose(
        U @ V.T, res.coefficients, atol=1e-10 * np.linalg.norm(res.coefficients)
    )


def test_factorize_method_and_balanced_factors_agree():
    Y, X = data(12, 5, 6, 10)
    res = sd.dropblock_global_min(Y, block_size=2, theta_bar=0.6, X=X)
    d = fz.min_exact_width(res)
    U1, V1 = res.factorize(d)
    U2, V2 = fz.balanced_factors(res, d)
    np.testing.assert_array_equal(U1, U2)
    np.testing.assert_array_equal(V1, V2)


def test_q1_threshold_is_the_rank_bound():
    """r = 1: exact iff d >= rank(A*) (the product of a width-d network has rank <= d)."""
    Y, X = data(13, 6, 8, 12)
    res = sd.dropblock_global_min(Y, block_size=1, theta_bar=0.9, X=X)
    assert res.rank >= 3
    assert fz.min_exact_width(res) == res.rank
    assert not fz.balanced_factorization(res, res.rank - 1).exact
    assert_exact_network(Y, X, res, res.rank, 0.9)


def test_small_or_zero_minimiser_is_exact_at_every_width():
    Y, _ = data(14, 4, 0, 6, with_x=False)
    res = sd.dropblock_global_min(
        Y, block_size=4, theta_bar=0.5
    )  # rank(A*) <= r: the blocks are A*/k
    assert res.rank <= 4 and fz.min_exact_width(res) == 4
    for d in (4, 8, 12):
        assert_exact_network(Y, None, res, d, 0.5)
    zero = sd.dropblock_global_min(np.zeros((3, 5)), block_size=2, theta_bar=0.5)
    U, V = zero.factorize(6)
    assert U.shape == (3, 6) and V.shape == (5, 6) and not U.any()
    assert fz.balanced_factorization(zero, 6).exact


def test_tied_singular_values_saturate():
    """Equal singular values put t_i at 1 within rounding: still exact and balanced."""
    Y = np.diag([2.0, 2.0, 2.0, 1.0, 1.0])
    res = sd.dropblock_global_min(Y, block_size=2, theta_bar=0.7)
    for d in range(fz.min_exact_width(res), fz.min_exact_width(res) + 6, 2):
        assert_exact_network(Y, None, res, d, 0.7)


# --- the projector-sum core ------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(6))
def test_segment_construction_sums_to_k_diag_t(seed):
    rng = np.random.default_rng(seed)
    m = int(rng.integers(4, 9))
    q = int(rng.integers(2, m - 1))
    t = rng.dirichlet(np.ones(m)) * q
    while t.max() >= 0.98:
        t = rng.dirichlet(np.ones(m) * 3) * q
    for k in range(m, 3 * m):
        plan = segment_plan(t, q, k)
        if plan is None:
            continue
        bases = bases_from_plan(t, k, plan)
        assert len(bases) == k
        for W in bases:
            np.testing.assert_allclose(W.T @ W, np.eye(q), atol=1e-13)
        np.testing.assert_allclose(sum(W @ W.T for W in bases), k * np.diag(t), atol=1e-12 * k)


def test_projector_sum_respects_the_rank_bound():
    t = np.array([0.6, 0.5, 0.5, 0.4])  # q = 2, m = 4: k = 1 would need one projector = diag(t)
    assert segment_plan(t, 2, 1) is None and solve_numerically(t, 2, 1) is None
    bases = solve_numerically(t, 2, 2)  # Halmos pairing: 0.6 + 0.4 = 0.5 + 0.5 = 1
    assert bases is not None
    np.testing.assert_allclose(sum(W @ W.T for W in bases), 2 * np.diag(t), atol=1e-12)


# --- below the exact widths -------------------------------------------------------------------


def width_objective(Y, X, r, strength, d):
    """f_d(U, V) = ||Y - U V^T X||^2 + strength sum_j ||U_j V_j^T X||^2 and its gradient."""
    a, b = Y.shape[0], X.shape[0]

    def f(z):
        U, V = z[: a * d].reshape(a, d), z[a * d :].reshape(b, d)
        VX = V.T @ X
        R = U @ VX - Y
        value, gU, gV = np.sum(R * R), 2 * R @ VX.T, 2 * X @ R.T @ U
        for j in range(0, d, r):
            s = slice(j, j + r)
            B = U[:, s] @ VX[s]
            value += strength * np.sum(B * B)
            gU[:, s] += 2 * strength * B @ VX[s].T
            gV[:, s] += 2 * strength * X @ B.T @ U[:, s]
        return value, np.concatenate([gU.ravel(), gV.ravel()])

    return f


def best_lbfgs(Y, X, r, strength, d, starts, seed):
    f = width_objective(Y, X, r, strength, d)
    rng = np.random.default_rng(seed)
    size = (Y.shape[0] + X.shape[0]) * d
    best = np.inf
    for _ in range(starts):
        out = minimize(
            f,
            0.5 * rng.standard_normal(size),
            jac=True,
            method="L-BFGS-B",
            options={"maxiter": 2000, "gtol": 1e-11, "ftol": 1e-15},
        )
        best = min(best, out.fun)
    return best


def test_counterexample_rank3_r1_width2():
    """No width-2 network reaches F* (its product has rank <= 2 < rank A* = 3); the returned one is
    the width-2 optimum: the truncation to the top two singular values, f_2 = 37/12."""
    Y = np.diag([3.0, 2.0, 1.0])
    theta_bar = 1 / 1.1  # beta = 0.1
    res = sd.dropblock_global_min(Y, block_size=1, theta_bar=theta_bar)
    assert res.rank == 3
    fact = fz.balanced_factorization(res, 2)
    assert not fact.exact and fact.kept_rank == 2
    assert fact.objective == pytest.approx(37 / 12, rel=1e-12)  # by hand: a = (3, 2) - 5/12
    assert fact.objective > res.objective + 0.3
    X = np.eye(3)
    measured = sd.DropBlock.for_width(theta_bar, 2, 1).objective(X=X, Y=Y, U=fact.U, V=fact.V)
    assert measured == pytest.approx(fact.objective, rel=1e-10)
    assert best_lbfgs(Y, X, 1, 2 * res.beta, 2, starts=6, seed=0) >= fact.objective - 1e-6
    gap = fz.width_gap(res, [1, 2, 3, 4])
    np.testing.assert_array_equal(gap.exact, [False, False, True, True])
    assert gap.objectives[1] == pytest.approx(37 / 12)
    assert gap.objectives[2] == pytest.approx(res.objective)
    assert (
        np.all(np.diff(gap.objectives) <= 1e-12) and gap.relative_gap[0] > gap.relative_gap[1] > 0
    )


@pytest.mark.parametrize("seed", [0, 1])
def test_below_exact_width_r2_is_a_good_network(seed):
    """r = 2, d = 4 (k = 2 < what four generic t_i need): not exact; the network's objective is what
    it claims and no L-BFGS start beats it."""
    rng = np.random.default_rng(seed + 30)
    Y = rng.standard_normal((6, 6))
    X = np.eye(6)
    theta_bar = 0.85
    res = sd.dropblock_global_min(Y, block_size=2, theta_bar=theta_bar)
    fact = fz.balanced_factorization(res, 4)
    if fact.exact:
        pytest.skip("this draw admits an exact width-4 network")
    measured = sd.DropBlock.for_width(theta_bar, 4, 2).objective(X=X, Y=Y, U=fact.U, V=fact.V)
    assert measured == pytest.approx(fact.objective, rel=1e-9)
    assert fact.objective > res.objective
    assert (
        best_lbfgs(Y, X, 2, 2 * res.beta, 4, starts=3, seed=seed)
        >= fact.objective - 1e-6 * fact.objective
    )


def test_width_gap_matches_the_networks():
    Y, X = data(21, 5, 7, 12)
    res = sd.dropblock_global_min(Y, block_size=2, theta_bar=0.9, X=X)
    widths = [2, 4, fz.min_exact_width(res)]
    gap = fz.width_gap(res, widths)
    for d, objective, exact in zip(gap.widths, gap.objectives, gap.exact):
        fact = fz.balanced_factorization(res, int(d))
        measured = sd.DropBlock.for_width(0.9, int(d), 2).objective(X=X, Y=Y, U=fact.U, V=fact.V)
        assert measured == pytest.approx(objective, rel=1e-9)
        assert exact == fact.exact
    assert gap.exact[-1] and gap.minimum == res.objective


# --- bad input --------------------------------------------------------------------------------


def test_bad_width_and_result():
    Y, X = data(22, 4, 5, 9)
    res = sd.dropblock_global_min(Y, block_size=2, theta_bar=0.7, X=X)
    with pytest.raises(ValueError, match="d must be >= 1"):
        res.factorize(0)
    with pytest.raises(ValueError, match="d must be >= 1"):
        fz.balanced_factors(res, -2)
    with pytest.raises(ValueError, match="r must divide d"):
        res.factorize(5)
    with pytest.raises(TypeError, match="d must be an integer"):
        res.factorize(2.5)
    with pytest.raises(TypeError, match="result must be a GlobalMin"):
        fz.balanced_factors("not a result", 2)
    with pytest.raises(ValueError, match="r must divide d"):
        fz.width_gap(res, [4, 3])


def test_numerical_solve_reaches_below_the_construction():
    """Y = diag(4, 3, 2, 1), r = 2, theta_bar = 0.9: t = (13, 28/3, 17/3, 2)/15 pairs to 1
    (t_1 + t_4 = t_2 + t_3), so k = 2 admits two rank-2 projectors (Halmos); the construction needs
    k = 4, the numerical solve finds k = 2."""
    Y = np.diag([4.0, 3.0, 2.0, 1.0])
    res = sd.dropblock_global_min(Y, block_size=2, theta_bar=0.9)
    assert fz.min_exact_width(res) > 4
    fact = assert_exact_network(Y, None, res, 4, 0.9)
    assert fact.method == "numerical"


def test_solutions_add_up_to_every_larger_block_count():
    """From the first count where every larger one is a sum of constructible counts, the parts are
    constructible and sum to k, and the concatenated projectors sum to k diag(t)."""
    from structdrop._solver.projector_sum import SummedPlans

    t = np.array([0.93, 0.9, 0.1, 0.04, 0.03])  # q = 2, m = 5: the construction needs large k alone
    q = 2
    summed = SummedPlans(t, q, 4096)
    k0 = summed.first_of_all_larger()
    assert k0 is not None
    for k in range(k0, 3 * k0):
        parts = summed.decompose(k)
        assert parts is not None and sum(parts) == k
        bases = [W for c in parts for W in bases_from_plan(t, c, segment_plan(t, q, c))]
        np.testing.assert_allclose(sum(W @ W.T for W in bases), k * np.diag(t), atol=1e-12 * k)


def test_near_saturated_band_is_exact_from_the_rank_bound():
    """t = (0.9957, 0.9957, 0.0056, 0.0023, 0.0007): the construction alone needs k = 348, the
    numerical solve at small counts (and their sums) reaches every k >= 3 = the rank bound."""
    Y = np.diag([5.0, 3.0, 2.9999, 0.02, 0.01, 0.005])
    res = sd.dropblock_global_min(Y, block_size=3, theta_bar=0.999)
    assert sd.min_exact_width(res) == 3 * 348
    for d in (9, 12, 300, 3 * 348):
        fact = assert_exact_network(Y, None, res, d, 0.999)
        assert fact.method == ("construction" if d == 3 * 348 else "numerical")
    assert not fz.balanced_factorization(res, 6).exact  # k = 2 < rank bound 3


# --- widths whose arrays cannot fit ----------------------------------------------------------


def test_width_beyond_memory_is_refused_up_front():
    """A width whose U and V alone exceed the physical memory is refused at once, naming the
    width, the bytes and the largest width that fits (before: O(d) Python lists grew until the
    process was killed)."""
    Y, X = data(0, 4, 5, 40)
    res = sd.dropblock_global_min(Y, block_size=1, theta_bar=0.5, X=X)
    memory = fz._physical_memory()
    if memory is None:
        pytest.skip("the OS does not report the physical memory here")
    d = memory // 8  # U alone (4 rows of float64) needs 4x the memory
    with pytest.raises(MemoryError, match=rf"width-{d} .* largest width .* is \d+"):
        res.factorize(d)


@pytest.mark.parametrize(("r", "with_x"), [(1, True), (2, False), (3, True)])
def test_largest_width_named_fits_and_the_next_does_not(monkeypatch, r, with_x):
    """With the memory pinned small, the largest width the error names is built and one block
    more is refused; the bound per unit of width covers U and V (a + b rows of float64)."""
    Y, X = data(1, 4, 6, 30, with_x=with_x)
    res = sd.dropblock_global_min(Y, block_size=r, theta_bar=0.6, X=X)
    monkeypatch.setattr(fz, "_physical_memory", lambda: 1 << 20)
    with pytest.raises(MemoryError) as err:
        res.factorize(r * (1 << 20))
    largest = int(str(err.value).rsplit(" ", 1)[-1])
    assert largest > 0 and largest % r == 0
    U, V = res.factorize(largest)
    assert U.nbytes + V.nbytes <= 1 << 20
    with pytest.raises(MemoryError):
        res.factorize(largest + r)
