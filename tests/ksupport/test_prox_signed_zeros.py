"""Zero entries of the prox are +0.0 on every route (vector sweep and search, sorted input, the
beta = 0 shortcut, rows of a batch, matrices), as ProxResult promises, whatever the signs of the
input's zeros."""

from __future__ import annotations

import numpy as np
import pytest

import structdrop as sd


def _signed_zeros(values: np.ndarray) -> int:
    return int(np.count_nonzero((values == 0) & np.signbit(values)))


def _inputs(rng):
    """Adversarial families: -0.0 entries among random signs, sorted descending magnitudes with
    -0.0 in the tail (the sorted fast path), all -0.0, and tiny negatives below the cut."""
    for n in (1, 2, 7, 64, 300):
        m = rng.standard_normal(n)
        m[rng.random(n) < 0.3] = -0.0
        yield m
        s = np.sort(np.abs(rng.standard_normal(n)))[::-1]
        s[n // 2 :] = -0.0
        yield s
        yield np.full(n, -0.0)
        yield -np.abs(rng.standard_normal(n)) * 1e-3


@pytest.mark.parametrize("beta", [0.0, 5e-324, 0.5, 10.0])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_vector_and_batch_zeros_are_positive(rng, beta, dtype):
    for m in _inputs(rng):
        m = m.astype(dtype)
        for r in (1, 2, 5):
            for method in ("sweep", "search"):
                values = sd.prox_ksupport_sq(m, r, beta, method=method).values
                assert _signed_zeros(values) == 0, (method, r, m)
                np.testing.assert_array_equal(
                    np.signbit(values[values != 0]), np.signbit(m[values != 0])
                )
            batch = sd.prox_ksupport_sq_batch(np.stack([m, m[::-1]]), r, beta, threads=1).values
            assert _signed_zeros(batch) == 0, (r, m)


@pytest.mark.parametrize("beta", [0.0, 0.5])
def test_matrix_zeros_are_positive(beta):
    # rank-1 matrices with zero rows and columns: entries 0 * (negative) sum to -0.0 in U S V^T
    u = np.array([1.0, 0.0, -2.0])
    v = np.array([-1.0, 0.0, 3.0, -0.5])
    for M in (np.outer(u, v), -np.outer(u, v), np.outer(-u, v).T):
        for r in (1, 2):
            values = sd.prox_ksupport_sq(M, r, beta).values
            assert _signed_zeros(values) == 0
            out = np.empty(M.shape)
            sd.prox_ksupport_sq(M, r, beta, out=out)
            assert _signed_zeros(out) == 0
