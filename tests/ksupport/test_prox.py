"""The prox of beta ||.||_(r)^2 (corrected Theorem 7): optimality certificates and cross-checks."""

from __future__ import annotations

import numpy as np
import pytest
from _oracles import dual_norm, variational_norm_sq
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import structdrop as sd
from structdrop import _core, reference


def objective(m, a, r, beta):
    return float(np.sum((m - a) ** 2) + beta * variational_norm_sq(a, r))


def random_cases(rng, count, max_n=20):
    for _ in range(count):
        n = int(rng.integers(1, max_n))
        m = np.abs(rng.standard_normal(n)) * 10.0 ** rng.uniform(-3, 3)
        if rng.random() < 0.3:
            m[rng.random(n) < 0.3] = 0.0
        if rng.random() < 0.3:
            m = np.round(m, 1)
        r = int(rng.integers(1, n + 3))
        beta = 0.0 if rng.random() < 0.05 else float(10.0 ** rng.uniform(-4, 4))
        yield m, r, beta


def test_paper_counterexample_needs_rho_equal_r():
    """m = (3, 1, 0.5), r = 2, beta = 1: a* = (1.5, 0.5, 0) at rho = 2, F* = 5.25."""
    m = np.array([3.0, 1.0, 0.5])
    for method in ("sweep", "search"):
        res = sd.prox_ksupport_sq(m, 2, 1.0, method=method)
        np.testing.assert_allclose(res.values, [1.5, 0.5, 0.0], rtol=1e-15)
        assert res.rho == 2 and res.rank == 2
        assert res.objective == pytest.approx(5.25, rel=1e-15)
    # The printed rule (rho <= r - 1 = 1, so no head) can only reach worse points: scan its
    # candidates by hand. Its best is a = (2, 0, 0) with F = 6.25.
    beta, r = 1.0, 2
    best_printed = np.inf
    for lam in range(1, 4):  # rho = 1, lambda = 1..3
        S = m[:lam].sum()
        c = r + beta * lam
        a = np.zeros(3)
        a[:lam] = m[:lam] - beta * S / c
        if a.min() >= 0:
            best_printed = min(best_printed, objective(m, a, r, beta))
    assert best_printed == pytest.approx(6.25, rel=1e-9)
    assert objective(m, np.array([1.5, 0.5, 0.0]), r, beta) == pytest.approx(5.25, rel=1e-9)


def assert_optimal(m, r, beta, res):
    """KKT certificate: g = 2 (m - a)/beta must be a subgradient of ||.||_(r)^2 at a, i.e.
    <g, a> = 2 ||a||^2 and ||g||_* <= 2 ||a|| with ||.||_* the dual (top-r l2) norm."""
    a = res.values
    norm = np.sqrt(variational_norm_sq(a, r))
    scale = max(float(np.max(m)), 1e-300)
    assert np.all(a >= 0)
    assert res.objective == pytest.approx(objective(m, a, r, beta), rel=1e-9, abs=1e-12 * scale**2)
    if beta == 0:
        np.testing.assert_allclose(a, m, rtol=1e-15)
        return
    g = 2.0 * (m - a) / beta
    assert float(g @ a) == pytest.approx(
        2.0 * norm**2, rel=1e-8, abs=1e-10 * (scale / beta) * scale
    )
    assert dual_norm(g, r) <= 2.0 * norm * (1 + 1e-8) + 1e-10 * scale / beta


def test_kkt_certificate_on_random_inputs(rng):
    for m, r, beta in random_cases(rng, 1500):
        for method in ("sweep", "search"):
            assert_optimal(m, r, beta, sd.prox_ksupport_sq(m, r, beta, method=method))


def test_no_random_perturbation_lowers_the_objective(rng):
    for m, r, beta in random_cases(rng, 150, max_n=10):
        res = sd.prox_ksupport_sq(m, r, beta)
        best = objective(m, res.values, r, beta)
        scale = max(float(np.max(m)), 1e-300)
        for size in (1e-6, 1e-3, 1e-1):
            for _ in range(10):
                trial = res.values + size * scale * rng.standard_normal(m.size)
                assert objective(m, trial, r, beta) >= best - 1e-10 * scale**2


def test_sweep_search_and_reference_agree(rng):
    for m, r, beta in random_cases(rng, 1500):
        sweep = sd.prox_ksupport_sq(m, r, beta, method="sweep")
        search = sd.prox_ksupport_sq(m, r, beta, method="search")
        ref = reference.prox_ksupport_sq(m, r, beta)
        ref_search = reference.prox_ksupport_sq(m, r, beta, method="search")
        scale = max(float(np.max(m)), 1e-300)
        for other in (search.values, ref["values"], ref_search["values"]):
            np.testing.assert_allclose(sweep.values, other, rtol=1e-9, atol=1e-9 * scale)
        for other in (search.objective, ref["objective"], ref_search["objective"]):
            assert sweep.objective == pytest.approx(other, rel=1e-9, abs=1e-12 * scale**2)
        # rho and rank are unique away from breakpoints (distinct values, none on a threshold)
        gaps = np.diff(np.sort(m))
        on_head = np.abs(sweep.values - m / (1 + beta)) <= 1e-12 * scale
        near_head = np.abs(sweep.values - m / (1 + beta)) <= 1e-6 * scale
        near_zero = (sweep.values > 0) & (sweep.values <= 1e-6 * scale)
        generic = bool(
            np.all(gaps > 1e-6 * scale) and not near_zero.any() and np.all(on_head | ~near_head)
        )
        if generic and beta > 0:
            assert sweep.rho == search.rho == ref["rho"]
            assert sweep.rank == search.rank == np.count_nonzero(ref["values"] > 1e-9 * scale)


@settings(max_examples=300, deadline=None)
@given(
    m=hnp.arrays(np.float64, st.integers(1, 30), elements=st.floats(0, 1e6, allow_subnormal=False)),
    r=st.integers(1, 35),
    beta=st.floats(0, 1e6, allow_subnormal=False),
)
def test_hypothesis_sweep_equals_search_equals_reference(m, r, beta):
    sweep = sd.prox_ksupport_sq(m, r, beta)
    search = sd.prox_ksupport_sq(m, r, beta, method="search")
    ref = reference.prox_ksupport_sq(m, r, beta)
    scale = max(float(np.max(m)), 1.0)
    np.testing.assert_allclose(sweep.values, search.values, rtol=1e-8, atol=1e-9 * scale)
    np.testing.assert_allclose(sweep.values, ref["values"], rtol=1e-8, atol=1e-9 * scale)
    assert sweep.objective == pytest.approx(search.objective, rel=1e-8, abs=1e-9 * scale**2)
    assert sweep.objective == pytest.approx(ref["objective"], rel=1e-8, abs=1e-9 * scale**2)


def test_values_follow_input_order(rng):
    m = np.abs(rng.standard_normal(12))
    res = sd.prox_ksupport_sq(m, 3, 0.7)
    perm = rng.permutation(12)
    res_perm = sd.prox_ksupport_sq(m[perm], 3, 0.7)
    np.testing.assert_array_equal(res_perm.values, res.values[perm])
    # shrinkage never increases a value and keeps the order of m
    assert np.all(res.values <= m)
    order = np.argsort(-m)
    assert np.all(np.diff(res.values[order]) <= 0)


def test_zero_input_and_zero_beta():
    """All-zero m gives a = 0 and F = 0; beta = 0 is the identity (the closed forms for r >= the
    number of non-zeros and for r = 1 are in test_prox_select and test_robustness)."""
    res = sd.prox_ksupport_sq(np.zeros(4), 2, 1.0)
    assert res.rank == 0 and res.objective == 0.0 and not res.values.any()
    m = np.array([4.0, 2.0, 1.0])
    res = sd.prox_ksupport_sq(m, 2, 0.0)
    np.testing.assert_array_equal(res.values, m)


def test_batch_matches_single_calls(rng):
    m = np.sort(np.abs(rng.standard_normal(500)))[::-1].copy()
    r = rng.integers(1, 600, size=200).astype(np.int64)
    beta = 10.0 ** rng.uniform(-3, 3, size=200)
    for threads in (1, 2, 5):
        obj, rho, rank = _core.prox_batch(m, r, beta, threads)
        for j in range(200):
            single = sd.prox_ksupport_sq(m, int(r[j]), float(beta[j]))
            assert obj[j] == pytest.approx(single.objective, rel=1e-10)
            assert rho[j] == single.rho and rank[j] == single.rank
