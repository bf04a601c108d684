"""Masked SGD (Algorithm 1): structdrop.train / train_many and structdrop.reference.train.

Every check compares the engine with something independent of it:
* one step's expected update, by exhaustive enumeration of the masks, against the gradient of the
  closed-form deterministic objective (the Dropout identity) taken by finite differences;
* the engine's draws against the mask distributions (means, pair moments) within standard errors;
* whole runs against a separately written NumPy replay fed with the engine's draws;
* Monte Carlo over seeds against closed forms (unbiased stochastic curve, expected first step);
* the paper's synthetic setup against the corrected Theorem 7 minimum (lower bound, convergence);
* Dropout vs DropConnect against the corrected DropConnect identity;
* Philox4x32-10 against the Random123 known-answer vectors.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import structdrop
from structdrop import _core
from structdrop.reference import training as ref
from structdrop.schemes import DropBlock, DropConnect, Dropout, NoDropout, OverlappingDropBlock

SCHEMES = {
    "none": NoDropout(),
    "dropout": Dropout(0.6),
    "dropblock": DropBlock(2, theta=0.5),
    "overlapping": OverlappingDropBlock(2, gamma=0.2),
    "dropconnect": DropConnect(0.7),
}


def problem(a, b, N, d, seed=0, scale=0.5):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((b, N))
    Y = rng.standard_normal((a, N))
    U = scale * rng.standard_normal((a, d))
    V = scale * rng.standard_normal((b, d))
    return X, Y, U, V


def all_masks(scheme, d, b):
    """Every mask of the scheme with its probability (exhaustive enumeration)."""
    p = scheme._core_params()
    kind, theta, bs, gamma = p.kind, p.theta, p.block_size, p.gamma
    if kind == _core.SchemeKind.none:
        yield np.ones(d), 1.0
    elif kind == _core.SchemeKind.dropout:
        for bits in itertools.product([0, 1], repeat=d):
            z = np.array(bits, float)
            yield z, theta ** z.sum() * (1 - theta) ** (d - z.sum())
    elif kind == _core.SchemeKind.dropblock:
        k = d // bs
        for bits in itertools.product([0, 1], repeat=k):
            w = np.array(bits, float)
            yield np.repeat(w, bs), theta ** w.sum() * (1 - theta) ** (k - w.sum())
    elif kind == _core.SchemeKind.overlapping_dropblock:
        seeds = d - bs + 1
        for bits in itertools.product([0, 1], repeat=seeds):
            s = np.array(bits)
            z = np.ones(d)
            for j in np.flatnonzero(s):
                z[j : j + bs] = 0
            yield z, gamma ** s.sum() * (1 - gamma) ** (seeds - s.sum())
    else:
        for bits in itertools.product([0, 1], repeat=b * d):
            Z = np.array(bits, float).reshape(b, d)
            yield Z, theta ** Z.sum() * (1 - theta) ** (b * d - Z.sum())


def mask_bytes(mask):
    """A mask in the engine's byte layout (DropConnect: entry (j, i) of the b x d mask at
    i*b + j)."""
    return np.ascontiguousarray(
        np.asarray(mask, dtype=np.uint8).T.reshape(-1) if mask.ndim == 2 else mask, dtype=np.uint8
    )


def engine_step(U, V, Xb, Yb, masks, scheme, lr):
    m = np.stack([mask_bytes(z) for z in masks])
    F = np.asfortranarray
    return _core.sgd_step(F(U), F(V), F(Xb), F(Yb), m, scheme._core_params(), lr)


def numerical_gradient(f, A, h=1e-5):
    G = np.zeros_like(A)
    for idx in np.ndindex(A.shape):
        E = np.zeros_like(A)
        E[idx] = h
        G[idx] = (f(A + E) - f(A - E)) / (2 * h)
    return G


# ---- one step: enumeration over masks vs the gradient of the deterministic objective ----------


@pytest.mark.parametrize("name", list(SCHEMES))
def test_expected_step_is_gradient_step_of_deterministic_objective(name):
    scheme = SCHEMES[name]
    a, b, d = 2, 3, 4
    X, Y, U, V = problem(a, b, 1, d, seed=1)
    lr = 0.05
    expected_U = np.zeros_like(U)
    expected_V = np.zeros_like(V)
    expected_U_ref = np.zeros_like(U)
    expected_V_ref = np.zeros_like(V)
    total = 0.0
    for z, p in all_masks(scheme, d, b):
        Un, Vn = engine_step(U, V, X, Y, [z], scheme, lr)
        expected_U += p * Un
        expected_V += p * Vn
        Ur, Vr = ref.masked_step(U, V, X, Y, [z], scheme, lr)
        expected_U_ref += p * Ur
        expected_V_ref += p * Vr
        total += p
    assert total == pytest.approx(1.0, abs=1e-12)
    # The NumPy closed form used below agrees with structdrop.schemes' own exact objective.
    assert ref.deterministic_objective(X, Y, U, V, scheme) == pytest.approx(
        scheme.objective(X, Y, U, V), rel=1e-12
    )
    # The step is lr * grad of (1/2)||eps||^2 per sample, so its mean is -(lr/2) grad F_det.
    grad_U = numerical_gradient(lambda W: ref.deterministic_objective(X, Y, W, V, scheme), U)
    grad_V = numerical_gradient(lambda W: ref.deterministic_objective(X, Y, U, W, scheme), V)
    np.testing.assert_allclose(expected_U, U - lr / 2 * grad_U, rtol=1e-7, atol=1e-8)
    np.testing.assert_allclose(expected_V, V - lr / 2 * grad_V, rtol=1e-7, atol=1e-8)
    np.testing.assert_allclose(expected_U_ref, U - lr / 2 * grad_U, rtol=1e-7, atol=1e-8)
    np.testing.assert_allclose(expected_V_ref, V - lr / 2 * grad_V, rtol=1e-7, atol=1e-8)


@pytest.mark.parametrize("name", ["none", "dropout", "dropblock", "overlapping"])
def test_reference_objective_band_sum_equals_dense_lemma10(name):
    scheme = SCHEMES[name]
    X, Y, U, V = problem(3, 4, 9, 8, seed=17, scale=1.0)
    G = V.T @ X
    dense = np.sum((Y - U @ G) ** 2) + np.sum(
        ref.characteristic_matrix(scheme, 8) * (U.T @ U) * (G @ G.T)
    )
    assert ref.deterministic_objective(X, Y, U, V, scheme) == pytest.approx(dense, rel=1e-12)


@pytest.mark.parametrize("name", ["dropout", "overlapping", "dropconnect"])
def test_minibatch_step_is_mean_of_sample_steps(name):
    scheme = SCHEMES[name]
    a, b, d, B = 3, 4, 6 if name != "dropconnect" else 4, 3
    X, Y, U, V = problem(a, b, B, d, seed=2)
    rng = np.random.default_rng(3)
    masks = [ref.sample_mask(scheme, d, b, rng) for _ in range(B)]
    lr = 0.1
    Ub, Vb = engine_step(U, V, X, Y, masks, scheme, lr)
    singles = [engine_step(U, V, X[:, [s]], Y[:, [s]], [masks[s]], scheme, lr) for s in range(B)]
    np.testing.assert_allclose(
        Ub - U, np.mean([Us - U for Us, _ in singles], axis=0), rtol=1e-12, atol=1e-14
    )
    np.testing.assert_allclose(
        Vb - V, np.mean([Vs - V for _, Vs in singles], axis=0), rtol=1e-12, atol=1e-14
    )


def test_algorithm1_by_hand():
    """Dropout, one unit kept out of two: the paper's lines 7-9 written out by hand."""
    theta, lr = 0.5, 0.1
    U = np.array([[1.0, 2.0]])  # a = 1, d = 2
    V = np.array([[0.5, -1.0], [1.0, 3.0]])  # b = 2
    x = np.array([[2.0], [1.0]])
    y = np.array([[1.0]])
    z = np.array([1.0, 0.0])
    # eps = (1/theta) U D V^T x - y = 2 * 1 * (0.5*2 + 1*1) - 1 = 3
    # U <- U - (lr/theta) eps x^T V D = U - 0.2 * 3 * [2, 0] ; V <- V - (lr/theta) x eps U D
    Un, Vn = engine_step(U, V, x, y, [z], Dropout(theta), lr)
    np.testing.assert_allclose(Un, [[1.0 - 1.2, 2.0]], rtol=1e-14)
    np.testing.assert_allclose(
        Vn, [[0.5 - 0.2 * 3 * 2 * 1, -1.0], [1.0 - 0.2 * 3 * 1 * 1, 3.0]], rtol=1e-14
    )


# ---- the engine's draws vs the mask distributions ---------------------------------------------


@pytest.mark.parametrize("name", ["dropout", "dropblock", "overlapping"])
def test_unit_masks_have_the_scheme_distribution(name):
    scheme = SCHEMES[name]
    d, b, N, steps = 6, 3, 7, 20000
    index, masks = _core.sgd_draws(scheme._core_params(), d, b, N, 123, 1, steps, 2)
    Z = masks.reshape(-1, d).astype(float)
    n = Z.shape[0]
    mu = ref.mask_means(scheme, d)
    second = (ref.characteristic_matrix(scheme, d) + 1) * np.outer(mu, mu)  # E[z_i z_j]
    observed = Z.T @ Z / n
    se = np.sqrt(second * (1 - second) / n) + 1e-12
    assert np.all(np.abs(observed - second) <= 5 * se), (observed, second)
    if name == "dropblock":  # units of one block are dropped together, exactly
        assert np.array_equal(Z[:, 0::2], Z[:, 1::2])
    counts = np.bincount(index.ravel(), minlength=N)
    p = 1 / N
    assert np.all(np.abs(counts - n * p) <= 5 * np.sqrt(n * p * (1 - p)))


def test_dropconnect_masks_are_independent_bernoulli():
    scheme = SCHEMES["dropconnect"]
    d, b, steps = 3, 4, 20000
    theta = scheme.theta
    _, masks = _core.sgd_draws(scheme._core_params(), d, b, 5, 9, 1, steps, 1)
    Z = masks.reshape(-1, b * d).astype(float)
    n = Z.shape[0]
    second = np.full((b * d, b * d), theta**2)
    np.fill_diagonal(second, theta)
    se = np.sqrt(second * (1 - second) / n)
    assert np.all(np.abs(Z.T @ Z / n - second) <= 5 * se)


def test_philox_known_answers():
    """Random123's kat_vectors for philox4x32 10."""
    cases = [
        ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
        ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
        (
            (0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344),
            (0xA4093822, 0x299F31D0),
            (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1),
        ),
    ]
    for counter, key, expected in cases:
        assert tuple(_core.philox4x32_10(counter, key)) == expected


def test_draws_follow_the_documented_philox_counter_layout():
    """random.hpp: key = seed, counter = (word pair, slot, step low, step high | purpose << 24);
    sample index = floor(word * N / 2^64); Dropout(1/2) keeps unit i iff bit i of the word is 0."""
    seed, step, N, d = 0x123456789ABCDEF0, 2**33 + 5, 1000, 40
    dropout = _core.SchemeParams(_core.SchemeKind.dropout, 0.5)
    index, masks = _core.sgd_draws(dropout, d, 3, N, seed, step, 1, 2)
    key = (seed & 0xFFFFFFFF, seed >> 32)

    def word(slot, purpose, j):
        counter = (j // 2, slot, step & 0xFFFFFFFF, ((step >> 32) & 0xFFFFFF) | (purpose << 24))
        block = _core.philox4x32_10(counter, key)
        lo, hi = (block[0], block[1]) if j % 2 == 0 else (block[2], block[3])
        return lo | (hi << 32)

    for slot in range(2):
        assert index[0, slot] == (word(slot, 0, 0) * N) >> 64
        assert masks[0, slot].tolist() == [1 - ((word(slot, 1, 0) >> i) & 1) for i in range(d)]


# ---- whole runs vs a NumPy replay of the same draws ----------------------------------------------


def replay(X, Y, U0, V0, scheme, lr, T, B, seed, lr_decay, record_every):
    b, N = X.shape
    d = U0.shape[1]
    params = scheme._core_params()
    index, raw = _core.sgd_draws(params, d, b, N, seed, 1, T + 1, B)
    if params.kind == _core.SchemeKind.dropconnect:
        masks = raw.reshape(T + 1, B, d, b).transpose(0, 1, 3, 2).astype(float)
    else:
        masks = raw.astype(float)
    U, V = U0.copy(), V0.copy()
    steps, stochastic, deterministic = [], [], []

    def record(t):
        steps.append(t)
        stochastic.append(ref.stochastic_loss(X, Y, U, V, masks[t, 0], scheme))
        deterministic.append(ref.deterministic_objective(X, Y, U, V, scheme))

    record(0)
    for t in range(1, T + 1):
        rate = lr if lr_decay is None else lr / (1 + (t - 1) / lr_decay)
        j = index[t - 1]
        U, V = ref.masked_step(U, V, X[:, j], Y[:, j], list(masks[t - 1]), scheme, rate)
        if t % record_every == 0 or t == T:
            record(t)
    return U, V, np.array(steps), np.array(stochastic), np.array(deterministic)


@pytest.mark.parametrize("name", list(SCHEMES))
@pytest.mark.parametrize("batch_size", [1, 3])
def test_run_matches_numpy_replay_of_its_draws(name, batch_size):
    scheme = SCHEMES[name]
    a, b, N, d = 5, 6, 20, 8
    X, Y, U0, V0 = problem(a, b, N, d, seed=4)
    T, lr, seed, decay, every = 47, 0.02, 11, 10.0, 10
    result = structdrop.train(
        X,
        Y,
        U0,
        V0,
        scheme,
        lr,
        T,
        batch_size=batch_size,
        record_every=every,
        seed=seed,
        lr_decay=decay,
    )
    U, V, steps, stochastic, deterministic = replay(
        X, Y, U0, V0, scheme, lr, T, batch_size, seed, decay, every
    )
    assert np.array_equal(result.record_iterations, [0, 10, 20, 30, 40, 47])
    assert np.array_equal(result.record_iterations, steps)
    np.testing.assert_allclose(result.U, U, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(result.V, V, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(result.stochastic_objective, stochastic, rtol=1e-10)
    np.testing.assert_allclose(result.deterministic_objective, deterministic, rtol=1e-10)
    assert not np.allclose(result.U, U0)
    assert result.seconds >= 0


# ---- Monte Carlo over seeds vs closed forms ------------------------------------------------------


@pytest.mark.parametrize("name", ["dropout", "overlapping", "dropconnect"])
def test_stochastic_curve_is_unbiased_for_the_deterministic_objective(name):
    scheme = SCHEMES[name]
    X, Y, U0, V0 = problem(3, 4, 10, 6 if name != "dropconnect" else 3, seed=5, scale=1.0)
    runs = structdrop.train_many(X, Y, U0, V0, scheme, 1e-3, 1, seed=range(3000), threads=2)
    samples = np.array([r.stochastic_objective[0] for r in runs])
    exact = ref.deterministic_objective(X, Y, U0, V0, scheme)
    assert runs[0].deterministic_objective[0] == pytest.approx(exact, rel=1e-10)
    se = samples.std(ddof=1) / np.sqrt(len(samples))
    assert abs(samples.mean() - exact) <= 5 * se
    assert len(np.unique(samples)) > 10  # different seeds, different masks


@pytest.mark.parametrize("name", ["dropblock", "dropconnect"])
def test_expected_first_step_over_seeds(name):
    """Sampling with replacement + fresh masks: E[U_1 - U_0] = -(lr / 2N) grad F_det."""
    scheme = SCHEMES[name]
    a, b, N, d = 2, 3, 4, 4 if name != "dropconnect" else 2
    X, Y, U0, V0 = problem(a, b, N, d, seed=6, scale=1.0)
    lr = 0.01
    runs = structdrop.train_many(
        X, Y, U0, V0, scheme, lr, 1, record_every=1, seed=range(20000), threads=2
    )
    dU = np.array([r.U - U0 for r in runs])
    dV = np.array([r.V - V0 for r in runs])
    grad_U = numerical_gradient(lambda W: ref.deterministic_objective(X, Y, W, V0, scheme), U0)
    grad_V = numerical_gradient(lambda W: ref.deterministic_objective(X, Y, U0, W, scheme), V0)
    for samples, grad in ((dU, grad_U), (dV, grad_V)):
        se = samples.std(axis=0, ddof=1) / np.sqrt(len(samples))
        assert np.all(np.abs(samples.mean(axis=0) + lr / (2 * N) * grad) <= 5 * se + 1e-15)


def test_reference_train_agrees_in_distribution():
    scheme = DropBlock(2, theta=0.5)
    X, Y, U0, V0 = problem(3, 4, 12, 4, seed=7)
    seeds = range(150)
    kwargs = dict(lr=0.02, iterations=60, record_every=60)
    engine = [
        r.deterministic_objective[-1]
        for r in structdrop.train_many(X, Y, U0, V0, scheme, seed=seeds, **kwargs)
    ]
    numpy_runs = [ref.train(X, Y, U0, V0, scheme, seed=s, **kwargs) for s in seeds]
    reference = [r.deterministic_objective[-1] for r in numpy_runs]
    se = np.sqrt(np.var(engine, ddof=1) / len(engine) + np.var(reference, ddof=1) / len(reference))
    assert abs(np.mean(engine) - np.mean(reference)) <= 5 * se
    r = numpy_runs[0]
    assert np.array_equal(r.record_iterations, [0, 60])
    assert r.deterministic_objective[0] == pytest.approx(
        ref.deterministic_objective(X, Y, U0, V0, scheme)
    )


# ---- Dropout vs DropConnect: the corrected identity ----------------------------------------------


def test_dropout_and_dropconnect_objectives_differ_as_the_corrected_identity_says():
    theta = 0.6
    X, Y, U0, V0 = problem(4, 5, 30, 6, seed=8, scale=1.0)
    trained = structdrop.train(X, Y, U0, V0, Dropout(theta), 1e-3, 500, seed=1)
    for U, V in ((U0, V0), (trained.U, trained.V)):
        drop = structdrop.train(X, Y, U, V, Dropout(theta), 1e-12, 1).deterministic_objective[0]
        connect = structdrop.train(
            X, Y, U, V, DropConnect(theta), 1e-12, 1
        ).deterministic_objective[0]
        beta = (1 - theta) / theta
        u2 = np.sum(U**2, axis=0)
        connect_reg = beta * np.sum(
            u2 * ((V**2).T @ np.sum(X**2, axis=1))
        )  # sum_i |u_i|^2 sum_j V_ji^2 |x_j|^2
        dropout_reg = beta * np.sum(
            u2 * np.sum((X.T @ V) ** 2, axis=0)
        )  # sum_i |u_i|^2 |X^T v_i|^2
        assert connect - drop == pytest.approx(connect_reg - dropout_reg, rel=1e-8, abs=1e-9 * drop)
        assert abs(connect_reg - dropout_reg) > 1e-3 * drop  # X X^T is not diagonal: they differ
    # With X X^T diagonal (orthogonal rows) the two coincide (Corollary 14's special case).
    Q, _ = np.linalg.qr(np.random.default_rng(9).standard_normal((30, 5)))
    Xo = (Q * np.array([1.0, 2.0, 0.5, 3.0, 1.5])).T
    drop = structdrop.train(Xo, Y, U0, V0, Dropout(theta), 1e-12, 1).deterministic_objective[0]
    connect = structdrop.train(Xo, Y, U0, V0, DropConnect(theta), 1e-12, 1).deterministic_objective[
        0
    ]
    assert connect == pytest.approx(drop, rel=1e-10)


# ---- the paper's synthetic setup vs the corrected Theorem 7 minimum ------------------------------


@pytest.mark.parametrize("block_size", [5, 10])
def test_dropblock_training_converges_to_the_theorem7_minimum(block_size):
    """Paper's Section 5.1 setup: a, b, N, d = 80, 100, 1000, 50, DropBlock theta = 0.5.

    Step size lr = 2e-5 with decay lr / (1 + (t-1)/20000), 10^5 steps (about 0.1-0.2 s in C++).
    Every recorded deterministic objective is >= the corrected Theorem 7 minimum with
    beta_bar = beta_for_width(theta, d, r) (a lower bound for every U, V), and the last is within
    3 % of it.
    """
    problem_ = structdrop.paper_synthetic(seed=0)
    X, Y = problem_.X, problem_.Y
    d, theta = 50, 0.5
    rng = np.random.default_rng(1)
    U0 = rng.standard_normal((80, d))
    V0 = rng.standard_normal((100, d))
    beta_bar = structdrop.beta_for_width(theta, d, block_size)
    minimum = structdrop.dropblock_global_min(
        Y, block_size=block_size, theta_bar=1 / (1 + beta_bar), X=X
    ).objective
    result = structdrop.train(
        X,
        Y,
        U0,
        V0,
        DropBlock(block_size, theta=theta),
        LR,
        ITERATIONS,
        record_every=1000,
        seed=3,
        lr_decay=DECAY,
    )
    det = result.deterministic_objective
    assert np.all(det >= minimum * (1 - 1e-10))
    assert det[-1] <= 1.03 * minimum, (det[-1] / minimum, det[0] / minimum)


LR, ITERATIONS, DECAY = 2e-5, 100_000, 20_000.0


# ---- reproducibility -----------------------------------------------------------------------------


def test_same_seed_same_run_any_thread_count_any_record_every():
    X, Y, U0, V0 = problem(5, 6, 30, 8, seed=10)
    settings = dict(lr=0.01, iterations=300, seed=[5, 6, 7, 8, 9])
    schemes = [
        Dropout(0.5),
        DropBlock(2, theta=0.5),
        OverlappingDropBlock(2, gamma=0.1),
        DropConnect(0.8),
        NoDropout(),
    ]
    one = structdrop.train_many(X, Y, U0, V0, schemes, threads=1, **settings)
    two = structdrop.train_many(X, Y, U0, V0, schemes, threads=2, **settings)
    many = structdrop.train_many(X, Y, U0, V0, schemes, threads=5, **settings)
    for r1, r2, r3, scheme, seed in zip(one, two, many, schemes, settings["seed"]):
        single = structdrop.train(X, Y, U0, V0, scheme, 0.01, 300, seed=seed)
        for r in (r2, r3, single):
            assert np.array_equal(r.U, r1.U) and np.array_equal(r.V, r1.V)
            assert np.array_equal(r.stochastic_objective, r1.stochastic_objective)
            assert np.array_equal(r.deterministic_objective, r1.deterministic_objective)
        coarse = structdrop.train(X, Y, U0, V0, scheme, 0.01, 300, seed=seed, record_every=200)
        keep = np.isin(r1.record_iterations, [0, 200, 300])
        assert np.array_equal(coarse.record_iterations, [0, 200, 300])
        assert np.array_equal(coarse.U, r1.U)
        assert np.array_equal(coarse.stochastic_objective, r1.stochastic_objective[keep])
        assert np.array_equal(coarse.deterministic_objective, r1.deterministic_objective[keep])
    other = structdrop.train(X, Y, U0, V0, Dropout(0.5), 0.01, 300, seed=6)
    assert not np.array_equal(other.U, one[0].U)


def test_train_many_broadcasts_per_run_settings():
    X, Y, U0, V0 = problem(3, 4, 10, 4, seed=11)
    U1, V1 = 2 * U0[:, :2], 2 * V0[:, :2]
    runs = structdrop.train_many(
        X,
        Y,
        [U0, U1],
        [V0, V1],
        [Dropout(0.5), Dropout(0.8)],
        [0.01, 0.02],
        [20, 30],
        batch_size=[1, 2],
        seed=3,
    )
    assert runs[0].U.shape == (3, 4) and runs[1].U.shape == (3, 2)
    alone = structdrop.train(X, Y, U1, V1, Dropout(0.8), 0.02, 30, batch_size=2, seed=3)
    assert np.array_equal(runs[1].U, alone.U)
    assert runs[1].record_iterations[-1] == 30


# ---- bad input, divergence, progress, cancellation -----------------------------------------------


def test_bad_inputs():
    X, Y, U0, V0 = problem(3, 4, 10, 4, seed=12)
    s = Dropout(0.5)
    train = structdrop.train
    with pytest.raises(ValueError, match="U0"):
        train(X, Y, U0[:2], V0, s, 0.1, 10)
    with pytest.raises(ValueError, match="V0"):
        train(X, Y, U0, V0[:3], s, 0.1, 10)
    with pytest.raises(ValueError, match="columns"):
        train(X, Y, U0, V0[:, :3], s, 0.1, 10)
    with pytest.raises(ValueError, match="N"):
        train(X, Y[:, :5], U0, V0, s, 0.1, 10)
    with pytest.raises(ValueError, match="X"):
        train(X[0], Y, U0, V0, s, 0.1, 10)
    Xn = X.copy()
    Xn[0, 0] = np.nan
    with pytest.raises(ValueError, match="X"):
        train(Xn, Y, U0, V0, s, 0.1, 10)
    for lr in (0, -1.0, np.inf, np.nan):
        with pytest.raises(ValueError, match="lr"):
            train(X, Y, U0, V0, s, lr, 10)
    for iterations in (0, -3):
        with pytest.raises(ValueError, match="iterations"):
            train(X, Y, U0, V0, s, 0.1, iterations)
    with pytest.raises(TypeError, match="iterations"):
        train(X, Y, U0, V0, s, 0.1, 2.5)
    with pytest.raises(ValueError, match="batch_size"):
        train(X, Y, U0, V0, s, 0.1, 10, batch_size=0)
    with pytest.raises(ValueError, match="record_every"):
        train(X, Y, U0, V0, s, 0.1, 10, record_every=0)
    with pytest.raises(ValueError, match="seed"):
        train(X, Y, U0, V0, s, 0.1, 10, seed=-1)
    for decay in (0, -5.0):
        with pytest.raises(ValueError, match="lr_decay"):
            train(X, Y, U0, V0, s, 0.1, 10, lr_decay=decay)
    with pytest.raises(ValueError):
        train(X, Y, U0, V0, DropBlock(3, theta=0.5), 0.1, 10)  # 3 does not divide d = 4
    with pytest.raises(ValueError):
        train(X, Y, U0, V0, OverlappingDropBlock(5, gamma=0.1), 0.1, 10)  # block wider than d
    with pytest.raises(TypeError, match="scheme"):
        train(X, Y, U0, V0, 0.5, 0.1, 10)
    with pytest.raises(ValueError, match="same length"):
        structdrop.train_many(X, Y, U0, V0, s, [0.1, 0.2], 10, seed=[1, 2, 3])
    with pytest.raises(ValueError, match="run 1"):
        structdrop.train_many(X, Y, U0, V0, s, [0.1, -0.2], 10)


def test_divergence_names_the_step():
    X, Y, U0, V0 = problem(3, 4, 10, 4, seed=13, scale=3.0)
    with pytest.raises(structdrop.TrainingDiverged, match=r"diverged at step \d+") as info:
        structdrop.train(X, Y, U0, V0, Dropout(0.5), 10.0, 10_000)
    assert isinstance(info.value, FloatingPointError)
    assert 1 <= info.value.step < 10_000
    with pytest.raises(structdrop.TrainingDiverged, match=r"run 1 \(seed 4\)"):
        structdrop.train_many(
            X, Y, U0, V0, DropConnect(0.5), [1e-4, 10.0], 10_000, seed=[3, 4], batch_size=2
        )


def test_progress_line_and_same_result(capsys):
    X, Y, U0, V0 = problem(3, 4, 10, 4, seed=14)
    quiet = structdrop.train(X, Y, U0, V0, Dropout(0.5), 0.01, 2000)
    loud = structdrop.train(X, Y, U0, V0, Dropout(0.5), 0.01, 2000, progress=True)
    assert "structdrop.train: done, 2000 steps" in capsys.readouterr().err
    assert np.array_equal(quiet.U, loud.U)


def test_a_raising_progress_callback_cancels_the_run():
    X, Y, U0, V0 = problem(3, 4, 10, 4, seed=15)
    calls = []

    def callback(done, total):
        calls.append(done)
        raise KeyboardInterrupt

    F = np.asfortranarray
    with pytest.raises(KeyboardInterrupt):
        job = _core.SgdJob(
            F(U0),
            F(V0),
            _core.SchemeParams(_core.SchemeKind.dropout, 0.5),
            lr=1e-4,
            iterations=10**10,
            record_every=10**9,
        )
        _core.sgd_train_runs(F(X), F(Y), [job], 1, callback, 0.05)
    assert len(calls) == 1


def test_sgd_job_and_result_structs():
    """The binding's job/result structs: a job unpickled with C-ordered arrays (what a Dask
    worker may receive) runs to the same bits as structdrop.train; results name their fields."""
    X, Y, U0, V0 = problem(3, 5, 12, 4, seed=21)
    F = np.asfortranarray
    scheme = DropBlock(2, theta=0.5)
    Uf = F(U0)
    job = _core.SgdJob(Uf, F(V0), scheme._core_params(), lr=1e-3, iterations=50, seed=3)
    assert np.shares_memory(job.U0, Uf) and job.seed == 3  # held, not copied
    assert "iterations=50" in repr(job) and "SchemeKind.dropblock" in repr(job)
    state = list(job.__getstate__())
    state[0], state[1] = np.ascontiguousarray(state[0]), np.ascontiguousarray(state[1])
    moved = _core.SgdJob.__new__(_core.SgdJob)
    moved.__setstate__(tuple(state))
    assert moved.U0.flags.f_contiguous and np.array_equal(moved.U0, U0)
    (result,) = _core.sgd_train_runs(F(X), F(Y), [moved])
    expected = structdrop.train(X, Y, U0, V0, scheme, 1e-3, 50, seed=3)
    assert result.status == "ok" and result.message == "" and result.seconds >= 0.0
    for field, name in [
        ("U", "U"),
        ("V", "V"),
        ("record_steps", "record_iterations"),
        ("stochastic", "stochastic_objective"),
        ("deterministic", "deterministic_objective"),
    ]:
        assert np.array_equal(getattr(result, field), getattr(expected, name)), field

    wild = _core.SgdJob(F(U0), F(V0), Dropout(0.5)._core_params(), lr=1e3, iterations=1000)
    (diverged,) = _core.sgd_train_runs(F(X), F(Y), [wild])
    assert diverged.status == "diverged" and diverged.diverged_step >= 1
    assert "diverged" in diverged.message and diverged.U is None and diverged.stochastic is None


def test_sgd_job_rejects_bad_inputs():
    X, Y, U0, V0 = problem(3, 5, 12, 4, seed=22)
    F = np.asfortranarray
    params = Dropout(0.5)._core_params()
    with pytest.raises(TypeError):  # no silent copy to Fortran order
        _core.SgdJob(np.ascontiguousarray(U0), F(V0), params, lr=1e-3, iterations=5)
    with pytest.raises(ValueError, match="same number of columns d"):
        _core.SgdJob(F(U0), F(V0[:, :3]), params, lr=1e-3, iterations=5)
    with pytest.raises(ValueError, match="U0 must be 2-D"):
        _core.SgdJob(F(U0[0]), F(V0), params, lr=1e-3, iterations=5)
    swapped = _core.SgdJob(F(V0), F(U0), params, lr=1e-3, iterations=5)  # b x d, a x d
    with pytest.raises(ValueError, match="run 0: U0 must be a x d"):
        _core.sgd_train_runs(F(X), F(Y), [swapped])


def test_every_kernel_instruction_set_gives_identical_bits():
    """The loops are compiled for the x86-64 baseline, AVX2 and AVX-512VL with a fixed evaluation
    order: a run must not depend on which one this machine picks."""
    X, Y, U0, V0 = problem(6, 13, 25, 12, seed=16)  # odd sizes: vector tails
    schemes = [
        NoDropout(),
        Dropout(0.5),
        DropBlock(3, theta=0.3),
        OverlappingDropBlock(3, gamma=0.1),
        DropConnect(0.6),
    ]
    settings = dict(
        lr=0.002, iterations=200, record_every=50, seed=[1, 2, 3, 4, 5], batch_size=[1, 2, 1, 3, 1]
    )
    outcomes = {}
    try:
        for isa in ("baseline", "avx2", "avx512"):
            try:
                _core.set_sgd_kernel_isa(isa)
            except ValueError:
                continue  # not on this CPU
            assert _core.sgd_kernel_isa() == isa
            runs = structdrop.train_many(X, Y, U0, V0, schemes, **settings)
            runs.append(
                structdrop.train(X, Y, U0, V0, DropConnect(0.6), 0.002, 100, batch_size=2, seed=9)
            )
            outcomes[isa] = runs
    finally:
        _core.set_sgd_kernel_isa("auto")
    if len(outcomes) < 2:
        pytest.skip("only the baseline kernels exist on this CPU")
    base = outcomes.pop("baseline")
    for runs in outcomes.values():
        for f, s in zip(runs, base):
            assert np.array_equal(f.U, s.U) and np.array_equal(f.V, s.V)
            assert np.array_equal(f.deterministic_objective, s.deterministic_objective)
    with pytest.raises(ValueError):
        _core.set_sgd_kernel_isa("sse9")
