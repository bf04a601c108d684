"""The sort-free prox: exactness on adversarial inputs, signs, matrices, rows, float32, out=,
and the check that sends input to it rather than to the sorted sweep.

Independent references used here:
- ``bisection_prox``: tau with sum clip(m tau - beta, 0, 1) = r by plain bisection on tau (no
  breakpoints, no selection), then a_i = m_i t_i/(t_i + beta), in tests/_support/_oracles.py;
- the sorted sweep (``structdrop._core.prox_sweep`` on a sorted copy: a different C++ algorithm);
- the KKT certificate of tests/ksupport/test_prox.py (dual norm = l2 norm of the r largest
  magnitudes);
- for matrices, ``structdrop.reference`` (NumPy) on the singular values, and the objective
  evaluated directly in the Frobenius norm.
"""

from __future__ import annotations

import time
from functools import partial

import numpy as np
import pytest
from _oracles import bisection_prox, dual_norm, sorted_sweep, variational_norm_sq

import structdrop as sd
from structdrop import _core, reference


def certify(m, r, beta, a, rtol=1e-8):
    """KKT: g = 2 (m - a)/beta is a subgradient of ||.||_(r)^2 at a (m, a >= 0)."""
    norm_sq = variational_norm_sq(a, r)
    scale = float(np.max(m))
    g = 2.0 * (m - a) / beta
    gscale = 2.0 * scale / beta
    assert abs(float(g @ a) - 2.0 * norm_sq) <= rtol * max(2.0 * norm_sq, gscale * scale)
    assert dual_norm(g, r) <= 2.0 * np.sqrt(norm_sq) + rtol * gscale


def families(n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Inputs that break naive selection (sorted, reversed, organ pipe, ties, two clusters, ...)."""
    base = np.sort(rng.exponential(size=n))[::-1].copy()
    half = np.sort(rng.exponential(size=n // 2))
    return {
        "random": rng.exponential(size=n),
        "sorted": base,
        "reverse_sorted": base[::-1].copy(),
        "organ_pipe": np.concatenate([half, half[::-1], [0.5] * (n - 2 * half.size)]),
        "all_ties": np.full(n, 1.7),
        "two_clusters": np.where(rng.random(n) < 0.5, 1.0, 1.0 + 1e-9),
        "far_clusters": np.where(rng.random(n) < 0.1, 100.0, 1.0),
        "sawtooth": (np.arange(n) % 17).astype(float) + 1.0,
        "mostly_zero": np.where(rng.random(n) < 0.9, 0.0, rng.exponential(size=n)),
        "one_nonzero": np.eye(1, n, n // 3).ravel() * 3.0,
    }


@pytest.mark.parametrize("n", [1, 2, 7, 300, 5000])
def test_adversarial_families_match_sweep_and_bisection(n, rng):
    for name, m in families(n, rng).items():
        for r in sorted({1, 2, max(1, n // 10), max(1, n - 1), n, n + 3}):
            for beta in (1e-12, 1e-3, 1.0, 1e3, 1e12):
                res = sd.prox_ksupport_sq(m, r, beta)
                scale = max(float(m.max()), 1e-300)
                sweep = sorted_sweep(m, r, beta)
                np.testing.assert_allclose(
                    res.values, sweep, rtol=1e-9, atol=1e-12 * scale, err_msg=name
                )
                bis = bisection_prox(m, r, beta)
                # the bisection's own t_i = m_i tau - beta loses ~eps beta absolutely: a ~ m t/beta
                atol = 1e-9 * scale * (1.0 if beta <= 1 else 1e-4 * beta / (1 + beta) + 1e-9)
                np.testing.assert_allclose(
                    res.values, bis, rtol=1e-6, atol=atol + 1e-12 * scale, err_msg=name
                )
                ref_obj = float(np.sum((m - bis) ** 2) + beta * variational_norm_sq(bis, r))
                assert res.objective == pytest.approx(ref_obj, rel=1e-7, abs=1e-12 * scale**2), name
                # the certificate compares quantities of size m/beta whose rounding is eps m (the
                # band values m_i - c cancel): it can only hold to ~eps beta, so for moderate beta
                if 1e-3 <= beta <= 1e3 and m.max() > 0:
                    certify(m, r, beta, res.values)


@pytest.mark.parametrize(
    "c", [1e-300, 1e-150, 3.0e-100, 1e100, 1.0e150]
)  # 1e300: see the overflow test
def test_extreme_scales_on_adversarial_families(c, rng):
    for name, m in families(400, rng).items():
        for r, beta in ((1, 0.5), (40, 2.0), (399, 1e-6)):
            base = sd.prox_ksupport_sq(m, r, beta)
            res = sd.prox_ksupport_sq(m * c, r, beta)
            np.testing.assert_allclose(
                res.values, base.values * c, rtol=1e-12, atol=1e-15 * c * m.max(), err_msg=name
            )
            assert res.objective == pytest.approx(base.objective * c * c, rel=1e-11), name
            assert (res.rho, res.rank) == (base.rho, base.rank), name


def test_overflowing_objective_raises():
    with pytest.raises(ValueError, match="m is too large"):
        sd.prox_ksupport_sq(np.full(10, 1e300), 2, 1.0)
    with pytest.raises(ValueError, match="M is too large: the prox objective of row 1"):
        sd.prox_ksupport_sq_batch(np.array([[1.0, 2.0], [1e300, 1e300]]), 1, 1.0)


def test_n_equal_one_and_r_at_least_n():
    for x in (3.0, -3.0, 0.0, 1e-300, -1e150 / 3):
        for r in (1, 2, 50):
            res = sd.prox_ksupport_sq([x], r, 0.5)
            np.testing.assert_allclose(res.values, [x / 1.5], rtol=1e-15)
            assert res.rank == (x != 0)
    # r >= number of non-zeros: a = m/(1 + beta), F = beta/(1 + beta) ||m||^2
    for m, beta in ((np.array([3.0, -1.0, 0.5, 0.0]), 2.0), (np.array([4.0, 2.0, 1.0]), 1.0)):
        for r in (3, 4, 10):
            res = sd.prox_ksupport_sq(m, r, beta)
            np.testing.assert_allclose(res.values, m / (1 + beta), rtol=1e-15)
            assert res.objective == pytest.approx(beta / (1 + beta) * np.sum(m**2), rel=1e-15)


def test_signed_vectors_act_on_magnitudes(rng):
    for _ in range(300):
        n = int(rng.integers(1, 60))
        x = rng.standard_normal(n) * 10.0 ** rng.uniform(-3, 3)
        if rng.random() < 0.3:
            x[rng.random(n) < 0.3] = 0.0
        r = int(rng.integers(1, n + 2))
        beta = float(10.0 ** rng.uniform(-3, 3))
        for method in ("sweep", "search"):
            res = sd.prox_ksupport_sq(x, r, beta, method=method)
            ref = reference.prox_ksupport_sq(np.abs(x), r, beta)
            np.testing.assert_allclose(
                res.values, np.sign(x) * ref["values"], rtol=1e-9, atol=1e-12 * np.abs(x).max()
            )
            assert res.objective == pytest.approx(ref["objective"], rel=1e-9, abs=1e-300)
            assert not np.signbit(res.values[res.values == 0]).any()  # +0.0, never -0.0
            # the objective with signs, evaluated directly
            direct = float(
                np.sum((x - res.values) ** 2) + beta * variational_norm_sq(res.values, r)
            )
            assert res.objective == pytest.approx(
                direct, rel=1e-8, abs=1e-12 * np.abs(x).max() ** 2
            )


def test_matrix_input_is_the_spectral_prox(rng):
    for shape in ((1, 1), (3, 5), (8, 4), (20, 20)):
        X = rng.standard_normal(shape) * 3.0
        for r, beta in ((1, 0.3), (2, 1.0), (4, 10.0)):
            res = sd.prox_ksupport_sq(X, r, beta)
            U, s, Vt = np.linalg.svd(X, full_matrices=False)
            ref = reference.prox_ksupport_sq(s, r, beta)
            expected = (U * ref["values"]) @ Vt
            assert res.values.shape == X.shape
            np.testing.assert_allclose(res.values, expected, rtol=1e-9, atol=1e-12 * s[0])
            assert res.rank == ref["rank"] == np.linalg.matrix_rank(res.values, tol=1e-9 * s[0])
            direct = float(
                np.sum((X - res.values) ** 2) + beta * sd.ksupport_norm_sq(res.values, r)
            )
            assert res.objective == pytest.approx(direct, rel=1e-9)
            searched = sd.prox_ksupport_sq(X, r, beta, method="search")
            np.testing.assert_allclose(searched.values, res.values, rtol=1e-9, atol=1e-12 * s[0])
    X32 = X.astype(np.float32)
    assert sd.prox_ksupport_sq(X32, 2, 1.0).values.dtype == np.float32
    out = np.empty_like(X)
    res = sd.prox_ksupport_sq(X, 2, 1.0, out=out)
    assert res.values is out
    np.testing.assert_array_equal(out, sd.prox_ksupport_sq(X, 2, 1.0).values)


def test_batch_rows_equal_single_calls_for_any_thread_count(rng):
    M = rng.standard_normal((97, 300)) * 10.0 ** rng.uniform(-2, 2, size=(97, 1))
    M[5] = 0.0
    M[6] = np.sort(np.abs(M[6]))[::-1]  # a sorted row takes the sweep
    M[7, :] = 2.5  # ties
    first = sd.prox_ksupport_sq_batch(M, 12, 0.7, threads=1)
    assert (
        first.values.shape == M.shape
        and first.rho.dtype == np.int64
        and first.objective.dtype == np.float64
    )
    for threads in (None, 2, 3, 8, 200):
        again = sd.prox_ksupport_sq_batch(M, 12, 0.7, threads=threads)
        np.testing.assert_array_equal(again.values, first.values)
        np.testing.assert_array_equal(again.objective, first.objective)
        np.testing.assert_array_equal(again.rho, first.rho)
        np.testing.assert_array_equal(again.rank, first.rank)
    for i in range(M.shape[0]):
        single = sd.prox_ksupport_sq(M[i], 12, 0.7)
        np.testing.assert_array_equal(first.values[i], single.values)
        assert (first.rho[i], first.rank[i], first.objective[i]) == (
            single.rho,
            single.rank,
            single.objective,
        )
    M32 = M.astype(np.float32)
    res32 = sd.prox_ksupport_sq_batch(M32, 12, 0.7, threads=2)
    assert res32.values.dtype == np.float32
    np.testing.assert_array_equal(res32.values[3], sd.prox_ksupport_sq(M32[3], 12, 0.7).values)
    out = np.empty_like(M)
    assert sd.prox_ksupport_sq_batch(M, 12, 0.7, out=out).values is out


def test_results_are_reproducible_bit_for_bit(rng):
    m = rng.standard_normal(200_001)
    a = sd.prox_ksupport_sq(m, 1000, 0.3)
    b = sd.prox_ksupport_sq(m.copy(), 1000, 0.3)
    np.testing.assert_array_equal(a.values, b.values)
    assert a.objective == b.objective


def test_unaligned_input_is_copied_not_misread(rng):
    m = rng.standard_normal(33)
    buffer = bytearray(8 * 33 + 1)
    unaligned = np.frombuffer(buffer, np.float64, 33, 1)
    unaligned[...] = m
    assert not unaligned.flags.aligned
    np.testing.assert_array_equal(
        sd.prox_ksupport_sq(unaligned, 3, 0.5).values, sd.prox_ksupport_sq(m, 3, 0.5).values
    )
    assert sd.ksupport_norm_sq(unaligned, 3) == sd.ksupport_norm_sq(m, 3)
    rows = np.frombuffer(bytearray(8 * 66 + 1), np.float64, 66, 1).reshape(2, 33)
    rows[...] = m
    np.testing.assert_array_equal(
        sd.prox_ksupport_sq_batch(rows, 3, 0.5).values[1], sd.prox_ksupport_sq(m, 3, 0.5).values
    )


def test_out_argument(rng):
    m = rng.standard_normal(50)
    out = np.full(50, np.nan)
    res = sd.prox_ksupport_sq(m, 5, 1.0, out=out)
    assert res.values is out
    np.testing.assert_array_equal(out, sd.prox_ksupport_sq(m, 5, 1.0).values)
    out32 = np.empty(50, np.float32)
    assert sd.prox_ksupport_sq(m.astype(np.float32), 5, 1.0, out=out32).values is out32
    searched = np.empty(50)
    assert sd.prox_ksupport_sq(m, 5, 1.0, method="search", out=searched).values is searched
    np.testing.assert_allclose(searched, out, rtol=1e-9, atol=1e-12)


def test_norm_by_partial_selection_matches_sorting(rng):
    for name, m in families(3000, rng).items():
        x = m * np.where(rng.random(m.size) < 0.5, -1.0, 1.0)
        for r in (1, 5, 300, 2999, 3000, 5000):
            expected = reference.ksupport_norm_sq(x, r)
            assert sd.ksupport_norm_sq(x, r) == pytest.approx(expected, rel=1e-12, abs=1e-300), name
            assert sd.ksupport_split(x, r) == reference.ksupport_split(x, r), name
            assert sd.ksupport_norm_sq(x.astype(np.float32), r) == pytest.approx(
                reference.ksupport_norm_sq(x.astype(np.float32).astype(float), r),
                rel=1e-12,
                abs=1e-300,
            )


def _seconds_per_element(fn, n, repeats=7):
    """Least CPU time per element (the process's CPU time: waiting for a core on a shared machine
    does not count)."""
    best = np.inf
    for _ in range(repeats):
        start = time.process_time()
        fn()
        best = min(best, time.process_time() - start)
    return best / n


@pytest.mark.slow
@pytest.mark.parametrize(
    "family", ["random", "sorted", "reverse_sorted", "organ_pipe", "all_ties", "two_clusters"]
)
def test_time_per_element_is_flat_in_n(family, rng):
    """No quadratic worst case: from n = 2e4 to 1e6 (50x) the CPU time per element may not grow
    more than 3x (least of 7 runs; measured ratios are 0.5-1.5, the bound is loose for noise)."""
    per = {}
    for n in (20_000, 1_000_000):
        m = families(n, rng)[family]
        out = np.empty_like(m)
        per[n] = _seconds_per_element(
            partial(sd.prox_ksupport_sq, m, max(1, n // 20), 1.0, out=out), n
        )
    assert per[1_000_000] <= 3.0 * per[20_000] + 5e-9, per


def test_values_at_the_bottom_of_the_double_range():
    """Units whose breakpoints (1 + beta)/m overflow after the rescaling (found by hypothesis:
    (1, 2, tiny, tiny)) are zero, as the sorted sweep and the independent bisection say."""
    tiny = np.finfo(float).tiny
    for t in (5e-324, tiny, 1.5 * tiny, 4 * tiny, 1e-300):
        m = np.array([1.0, 2.0, t, t, 0.5])
        for r in (1, 2, 3):
            for beta in (1e-3, 2.0, 1e3):
                res = sd.prox_ksupport_sq(m, r, beta)
                np.testing.assert_allclose(
                    res.values, sorted_sweep(m, r, beta), rtol=1e-12, atol=1e-300
                )
                if t >= 1e-300:  # below, the bisection's own bracket (1 + beta)/min(m) overflows
                    np.testing.assert_allclose(
                        res.values, bisection_prox(m, r, beta), rtol=1e-6, atol=1e-300
                    )
                assert res.rank == np.count_nonzero(sorted_sweep(m, r, beta))


# --- the "is it already sorted?" check ------------------------------------------------------------
# Descending non-negative float64 input goes to the O(n) sweep, which assumes the order; the check
# reads the input in blocks of 64 values (and two at a time inside a block). An input that descends
# inside every block but rises where two blocks meet, or rises once at any one position (every
# offset within a block and within a pair of lanes, the last entry, the last partial block), must
# go to the selection instead, and the sorted-only entry points must reject it. The reference sorts
# a copy first (the sweep on sorted input, a different code path from the one under test) and is
# checked against an independent bisection on tau.

BLOCK = 64  # the check's block (cpp/ksupport.cpp, SortedProfile::kBlock)


def descending(n: int, rng: np.random.Generator) -> np.ndarray:
    return np.sort(rng.uniform(1.0, 2.0, n))[::-1].copy()


def almost_sorted(n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Inputs with at least one ascent, each descending everywhere else."""
    out = {}
    blocks = -(-n // BLOCK)
    # every block descending, every block above the one before: an ascent at each boundary
    if blocks > 1:
        levels = np.repeat(np.arange(blocks, dtype=float), BLOCK)[:n]
        out["rising blocks"] = levels + descending(n, rng) - 1.0
    # one ascent, at each block boundary, at each position of the first two blocks, at the end
    positions = set(range(1, min(n, 2 * BLOCK + 3)))
    positions |= {b * BLOCK for b in range(1, blocks)} | {n - 1, n - 2, n - BLOCK // 2}
    for p in sorted(q for q in positions if 0 < q < n):
        x = descending(n, rng)
        x[p] = 3.0 * x[0]  # the largest: a sweep that took the order on trust would misplace it
        out[f"one ascent at {p}"] = x
    return out


@pytest.mark.parametrize("n", [5, 63, 64, 65, 200, 1000, 4099])
def test_input_descending_within_blocks_is_not_taken_as_sorted(n):
    rng = np.random.default_rng(n)
    for name, x in almost_sorted(n, rng).items():
        assert np.any(np.diff(x) > 0), name
        # the entry points that require sorted input say so
        with pytest.raises(ValueError, match="descending"):
            _core.prox_sweep(x, 1, 1.0)
        with pytest.raises(ValueError, match="descending"):
            _core.ksupport_norm_sq_sorted(x, 1)
        for r, beta in ((1, 1.0), (max(1, n // 20), 0.5), (max(1, n // 2), 10.0)):
            if r >= n:
                continue
            res = sd.prox_ksupport_sq(x, r, beta)
            ref = sorted_sweep(x, r, beta)
            np.testing.assert_allclose(res.values, ref, rtol=1e-12, atol=1e-14, err_msg=name)
            np.testing.assert_allclose(bisection_prox(x, r, beta), ref, rtol=1e-8, err_msg=name)


def test_sorted_input_itself_takes_the_sweep_and_agrees():
    """The check's other side: truly sorted input (ties included) gives the sweep's answer."""
    rng = np.random.default_rng(7)
    for n in (64, 65, 1000):
        x = descending(n, rng)
        x[n // 3 : n // 3 + 70] = x[n // 3]  # a run of ties across a block boundary
        x = np.ascontiguousarray(np.sort(x)[::-1])
        for r, beta in ((1, 1.0), (n // 20 or 1, 0.5)):
            res = sd.prox_ksupport_sq(x, r, beta)
            direct = _core.prox_sweep(x, r, beta)
            np.testing.assert_array_equal(res.values, direct[0])
            assert (res.rho, res.rank, res.objective) == tuple(direct[1:])
