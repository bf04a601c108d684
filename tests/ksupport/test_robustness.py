"""Numerical robustness of the k-support solver.

Every answer is checked against something independent of the kernels: the KKT certificate built
from the variational norm and the dual norm in _oracles, closed forms (all-equal values, r = 1),
the NumPy reference, and exact scaling identities.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from _oracles import dual_norm, variational_norm_sq

import structdrop as sd
from structdrop import reference

METHODS = ("sweep", "search")


def certify(m, r, beta, a, rtol=1e-8, norm_sq_fn=variational_norm_sq):
    """KKT certificate: g = 2 (m - a)/beta is a subgradient of ||.||_(r)^2 at a.

    Returns the two relative residuals (complementarity and dual feasibility), so callers can
    assert and report measured errors."""
    m = np.asarray(m, dtype=float)
    a = np.asarray(a, dtype=float)
    assert np.all(np.isfinite(a)) and np.all(a >= 0)
    scale = float(np.max(m))
    norm_sq = norm_sq_fn(a, r)
    g = 2.0 * (m - a) / beta
    gscale = 2.0 * scale / beta  # |g| <= this
    comp = abs(float(g @ a) - 2.0 * norm_sq) / max(2.0 * norm_sq, gscale * scale * 1e-300, 1e-300)
    comp_abs = abs(float(g @ a) - 2.0 * norm_sq) / (gscale * scale)
    feas = (dual_norm(g, r) - 2.0 * np.sqrt(norm_sq)) / max(gscale, 1e-300)
    assert min(comp, comp_abs) <= rtol, (comp, comp_abs)
    assert feas <= rtol, feas
    return min(comp, comp_abs), feas


# --- ties and all-equal values ------------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("n,r", [(1, 1), (5, 1), (5, 3), (5, 5), (5, 8), (1000, 7), (1000, 1000)])
@pytest.mark.parametrize("beta", [1e-12, 1e-3, 1.0, 37.0, 1e12])
def test_all_equal_values_closed_form(method, n, r, beta):
    """m = c 1_n: by symmetry a = alpha 1_n, ||alpha 1_n||_(r)^2 = alpha^2 n^2 / min(n, r)
    (t_i = min(n, r)/n), so alpha = c / (1 + beta n / min(n, r))."""
    c = 3.0
    m = np.full(n, c)
    res = sd.prox_ksupport_sq(m, r, beta, method=method)
    alpha = c / (1.0 + beta * n / min(n, r))
    if beta <= 1e3:
        np.testing.assert_allclose(res.values, alpha, rtol=1e-12)
    else:
        # Documented loss of componentwise accuracy: a = m - cut cancels when a << m. The error
        # stays normwise small (measured: sweep <= 1.4e-16 max|m|, search <= 1e-12 max|m| at
        # beta = 1e12; see "Known limits" in docs/guarantees.md).
        bound = 1e-15 if method == "sweep" else 1e-11
        assert np.max(np.abs(res.values - alpha)) <= bound * c
    expected_obj = n * (c - alpha) ** 2 + beta * alpha**2 * n * n / min(n, r)
    assert res.objective == pytest.approx(expected_obj, rel=1e-10)
    # Ties: the solution keeps equal inputs equal (the search, at beta = 1e12, only to its
    # normwise accuracy: measured ptp 3e-12 c, some tied units flushed to 0 and others not).
    tie_bound = 1e-15 if (method == "sweep" or beta <= 1e3) else 1e-11
    assert np.ptp(res.values) <= tie_bound * c


@pytest.mark.parametrize("method", METHODS)
def test_ties_among_values(method, rng):
    for _ in range(200):
        n = int(rng.integers(2, 40))
        levels = np.array([0.0, 0.5, 1.0, 2.0, 1e3])
        m = rng.choice(levels[: int(rng.integers(1, 6))], size=n)
        if m.max() == 0:
            m[0] = 1.0
        r = int(rng.integers(1, n + 2))
        beta = float(10.0 ** rng.uniform(-6, 6))
        res = sd.prox_ksupport_sq(m, r, beta, method=method)
        certify(m, r, beta, res.values)
        # equal inputs -> equal outputs
        for level in np.unique(m):
            vals = res.values[m == level]
            assert np.ptp(vals) <= 1e-12 * m.max()
        ref = reference.prox_ksupport_sq(m, r, beta, method=method)
        np.testing.assert_allclose(res.values, ref["values"], rtol=1e-9, atol=1e-12 * m.max())


# --- r = 1: closed form ---------------------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_r1_is_l1_squared_soft_threshold(method, rng):
    """||a||_(1) = ||a||_1, so KKT gives a_i = max(m_i - beta L, 0) with L = sum a; found here by
    scanning the support size k: L = S_k / (1 + beta k)."""
    cases = [(np.array([4.0, 2.0, 1.0]), 0.5)]
    for _ in range(200):
        n = int(rng.integers(1, 30))
        m = np.abs(rng.standard_normal(n)) * 10.0 ** rng.uniform(-6, 6)
        cases.append((m, float(10.0 ** rng.uniform(-8, 8))))
    for m, beta in cases:
        n = m.size
        s = np.sort(m)[::-1]
        for k in range(n, 0, -1):
            L = s[:k].sum() / (1.0 + beta * k)
            if s[k - 1] - beta * L > 0:
                break
        expected = np.maximum(m - beta * L, 0.0)
        res = sd.prox_ksupport_sq(m, 1, beta, method=method)
        np.testing.assert_allclose(res.values, expected, rtol=1e-9, atol=1e-12 * m.max())


# --- extreme magnitudes and beta ------------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("beta", [1e-12, 1e-6, 1e-2, 1.0, 1e2, 1e6, 1e12])
def test_single_huge_value(method, beta):
    m = np.concatenate([[1e12], np.linspace(1.0, 2.0, 50)])
    for r in (1, 2, 10, 51, 60):
        res = sd.prox_ksupport_sq(m, r, beta, method=method)
        certify(m, r, beta, res.values)
        ref = reference.prox_ksupport_sq(m, r, beta, method=method)
        np.testing.assert_allclose(res.values, ref["values"], rtol=1e-9, atol=1e-15 * m.max())


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("beta", [1e-12, 1e-6, 1e-2, 1.0, 1e2, 1e6, 1e12])
def test_values_spanning_24_decades(method, beta, rng):
    """Magnitudes from 1e-12 to 1e12: a shuffled log-spaced grid and 200 sorted random ones (the
    sweep's own path), against the certificate, the NumPy reference and the variational norm."""
    grid = np.logspace(-12, 12, 97)
    rng.shuffle(grid)
    drawn = np.sort(10.0 ** rng.uniform(-12, 12, 200))[::-1]
    for m, sizes in ((grid, (1, 3, 20, 97, 200)), (drawn, (1, 7, 150))):
        for r in sizes:
            res = sd.prox_ksupport_sq(m, r, beta, method=method)
            certify(m, r, beta, res.values)
            ref = reference.prox_ksupport_sq(m, r, beta, method=method)
            np.testing.assert_allclose(res.values, ref["values"], rtol=1e-9, atol=1e-15 * m.max())
            assert res.objective == pytest.approx(ref["objective"], rel=1e-9)
            # norm on the same class, against the independent variational formula
            assert sd.ksupport_norm_sq(m, r) == pytest.approx(variational_norm_sq(m, r), rel=1e-9)


def test_sweep_and_search_agree_across_beta(rng):
    for beta in 10.0 ** np.arange(-12, 13, 1.0):
        m = np.abs(rng.standard_normal(200)) * 10.0 ** rng.uniform(-12, 12, 200)
        for r in (1, 5, 50):
            a = sd.prox_ksupport_sq(m, r, beta, method="sweep").values
            b = sd.prox_ksupport_sq(m, r, beta, method="search").values
            # normwise agreement (componentwise is lost for tiny a_i: docs/guarantees.md, "Known
            # limits");
            # measured worst case here ~5e-13 max|m|, from the search's near-tie selection.
            assert np.max(np.abs(a - b)) <= 1e-11 * m.max()
            certify(m, r, beta, a)


@pytest.mark.parametrize("method", METHODS)
def test_scaling_identity(method, rng):
    """prox(c m) = c prox(m); exact for c a power of two, to rounding for other c, from 1e-300
    (whose objective underflows) to 1e150 (whose objective is near the top of the range)."""
    cases = [(np.abs(rng.standard_normal(40)), 5, 2.0)]
    for _ in range(50):
        n = int(rng.integers(1, 60))
        m, r = np.abs(rng.standard_normal(n)), int(rng.integers(1, n + 2))
        cases.append((m, r, float(10.0 ** rng.uniform(-4, 4))))
    for m, r, beta in cases:
        base = sd.prox_ksupport_sq(m, r, beta, method=method)
        for c in (2.0**-900, 2.0**-40, 2.0**40, 2.0**500):
            res = sd.prox_ksupport_sq(c * m, r, beta, method=method)
            np.testing.assert_array_equal(res.values, c * base.values)
        # c = 2^900: the minimum value c^2 F* is beyond float64, an error rather than a silent inf
        with pytest.raises(ValueError, match="m is too large"):
            sd.prox_ksupport_sq(2.0**900 * m, r, beta, method=method)
        for c in (1e-300, 1e-150, 1e-100, 3.7, 1e100, 1e150):
            res = sd.prox_ksupport_sq(c * m, r, beta, method=method)
            np.testing.assert_allclose(res.values, c * base.values, rtol=1e-12, atol=0.0)
            assert res.objective == pytest.approx(
                c * c * base.objective, rel=1e-12, abs=1e-14 * (c * m.max()) ** 2
            )


@pytest.mark.parametrize("method", METHODS)
def test_float32_in_float32_out(method, rng):
    """float32 in, float32 out, computed in double: the values are the double-precision prox of the
    same float32 data rounded once, and within the prox's Lipschitz bound of the float64 data's."""
    eps32 = float(np.finfo(np.float32).eps)
    for _ in range(100):
        n = int(rng.integers(1, 3000))
        m64 = rng.standard_normal(n) * 10.0 ** rng.uniform(-20, 20)
        if rng.random() < 0.5:
            m64 = np.abs(m64)
        m32 = m64.astype(np.float32)
        r = int(rng.integers(1, n + 2))
        beta = float(10.0 ** rng.uniform(-3, 3))
        res = sd.prox_ksupport_sq(m32, r, beta, method=method)
        a32 = res.values
        assert a32.dtype == np.float32
        exact = sd.prox_ksupport_sq(m32.astype(np.float64), r, beta, method=method)  # same data
        np.testing.assert_allclose(
            a32, exact.values, rtol=eps32, atol=eps32 * np.abs(exact.values).max()
        )
        assert res.objective == pytest.approx(exact.objective, rel=1e-12)  # accumulated in double
        # the prox is 1-Lipschitz in l2: ||a32 - a64|| <= ||m32 - m64|| <= eps32 ||m||, plus the
        # final rounding of a to float32 (eps32/2 per entry)
        a64 = sd.prox_ksupport_sq(m64, r, beta, method=method).values
        rounding = 0.5 * eps32 * np.linalg.norm(a64)
        gap = np.linalg.norm(a32.astype(float) - a64)
        assert gap <= 1.01 * np.linalg.norm(m32.astype(float) - m64) + rounding + 1e-300
        assert gap <= 1.5 * eps32 * np.linalg.norm(m64)
        n32 = sd.ksupport_norm_sq(m32, r)
        assert n32 == pytest.approx(sd.ksupport_norm_sq(m32.astype(np.float64), r), rel=1e-12)
        assert n32 == pytest.approx(sd.ksupport_norm_sq(m64, r), rel=4 * eps32)


# --- global minima on extreme inputs --------------------------------------------------------------


def test_global_min_scaling_and_reference(rng):
    Y0 = rng.standard_normal((6, 9))
    for c in (1e-100, 1e-6, 1.0, 1e6, 1e100):
        Y = c * Y0
        for r in (1, 2, 6):
            for theta_bar in (1e-6, 0.3, 0.999999):
                got = sd.dropblock_global_min(Y, block_size=r, theta_bar=theta_bar)
                ref = reference.dropblock_global_min(Y, r, theta_bar)
                assert got.objective == pytest.approx(ref["objective"], rel=1e-9)
                base = sd.dropblock_global_min(Y0, block_size=r, theta_bar=theta_bar)
                assert got.objective == pytest.approx(c * c * base.objective, rel=1e-9)
    s = np.sort(np.logspace(-12, 12, 25))[::-1]
    Y = np.diag(s)
    sw = sd.sweep_global_min(s, block_sizes=[1, 3, 25], theta_bars=[1e-6, 0.5, 0.999999])
    for i, r in enumerate([1, 3, 25]):
        for j, theta_bar in enumerate([1e-6, 0.5, 0.999999]):
            ref = reference.dropblock_global_min(Y, r, theta_bar)
            assert sw.objective[i, j] == pytest.approx(ref["objective"], rel=1e-9)


# --- large n --------------------------------------------------------------------------------------


def _large_case(n, seed=1):
    rng = np.random.default_rng(seed)
    return rng.exponential(size=n)


def test_large_n_matches_reference_and_is_kkt_optimal():
    """n = 3e5 and 1e6 (well past the selection's and the sweep's small-n paths): the NumPy
    reference's values and objective for small, medium and large r, and the KKT certificate."""
    normal = np.abs(np.random.default_rng(7).standard_normal(300_000)) * 3
    for m, cases in (
        (normal, ((1, 0.1), (50, 2.0), (100_000, 0.5))),
        (_large_case(10**6), ((1000, 0.5),)),
    ):
        for r, beta in cases:
            t0 = time.perf_counter()
            res = sd.prox_ksupport_sq(m, r, beta)
            assert time.perf_counter() - t0 < 5.0  # linear time: ~0.05 s; quadratic: hours
            ref = reference.prox_ksupport_sq(m, r, beta)
            np.testing.assert_allclose(res.values, ref["values"], rtol=1e-8, atol=1e-10)
            assert res.objective == pytest.approx(ref["objective"], rel=1e-9)
            certify(m, r, beta, res.values, rtol=1e-8)


def _peak_rss_bytes():
    resource = pytest.importorskip("resource")  # Unix only: the module must import on Windows
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


@pytest.mark.slow
def test_n_1e7_sweep_is_kkt_optimal():
    """n = 10^7 takes ~2 s on the 2-core machine (over the default-run budget)."""
    m = _large_case(10**7, seed=4)
    res = sd.prox_ksupport_sq(m, 1000, 0.5)
    certify(m, 1000, 0.5, res.values, rtol=1e-8, norm_sq_fn=sd.ksupport_norm_sq)


@pytest.mark.slow
def test_n_1e8_sweep_memory_linear_and_correct():
    n = 10**8
    m = _large_case(n, seed=2)
    before = _peak_rss_bytes()
    res = sd.prox_ksupport_sq(m, 100_000, 2.0)
    growth = _peak_rss_bytes() - before
    # argsort (8n) + sorted copy (8n) + kernel output (8n) + result (8n): <= 6 input sizes.
    assert growth <= 6 * m.nbytes, growth / m.nbytes
    assert res.rank <= n and np.all(res.values >= 0)
    # the norm by the library's O(n log n) closed form (Theorem 6, a kernel separate from the
    # prox); 200 bisection passes of variational_norm_sq over 1e8 values would take minutes.
    certify(m, 100_000, 2.0, res.values, rtol=1e-7, norm_sq_fn=sd.ksupport_norm_sq)


@pytest.mark.slow
def test_search_index_safety_n_times_r_above_2_31():
    """The O(n r) scan with n * r > 2^31: equal to the sweep (a 32-bit index would wrap)."""
    n, r = 2**21 + 3, 1100
    assert n * r > 2**31
    m = _large_case(n, seed=3)
    a = sd.prox_ksupport_sq(m, r, 0.7, method="search")
    b = sd.prox_ksupport_sq(m, r, 0.7, method="sweep")
    np.testing.assert_allclose(a.values, b.values, rtol=1e-9, atol=1e-12)
    assert a.rho == b.rho and a.rank == b.rank
