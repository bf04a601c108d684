"""The squared spectral r-support norm (corrected Theorem 6) against independent formulations."""

from __future__ import annotations

import numpy as np
import pytest
from _oracles import variational_norm_sq

import structdrop as sd
from structdrop import reference


def random_vectors(rng: np.random.Generator, count: int):
    """Random vectors with ties, zeros, signs and scales from 1e-150 to 1e150."""
    for _ in range(count):
        n = int(rng.integers(1, 25))
        x = rng.standard_normal(n)
        kind = rng.integers(0, 5)
        if kind == 1:  # ties
            x = np.round(x * 2) / 2
        elif kind == 2:  # zeros
            x[rng.random(n) < 0.4] = 0.0
        elif kind == 3:  # all equal magnitudes
            x = np.sign(x) * 1.5
        x *= 10.0 ** rng.uniform(-150, 150) if rng.random() < 0.2 else 1.0
        r = int(rng.integers(1, n + 3))
        yield x, r


def test_matches_variational_form_on_thousands_of_vectors(rng):
    for x, r in random_vectors(rng, 3000):
        expected = variational_norm_sq(x, r)
        got = sd.ksupport_norm_sq(x, r)
        assert got == pytest.approx(expected, rel=1e-9, abs=0.0), (x, r)


def test_r_equal_one_is_squared_nuclear_norm(rng):
    for _ in range(200):
        M = rng.standard_normal(tuple(rng.integers(1, 8, size=2)))
        nuclear = np.linalg.svd(M, compute_uv=False).sum()
        assert sd.ksupport_norm_sq(M, 1) == pytest.approx(nuclear**2, rel=1e-12)
        assert sd.ksupport_split(M, 1) == 1


def test_large_r_is_squared_frobenius_norm(rng):
    for _ in range(200):
        M = rng.standard_normal(tuple(rng.integers(1, 8, size=2)))
        r = min(M.shape) + int(rng.integers(0, 4))
        assert sd.ksupport_norm_sq(M, r) == pytest.approx(np.sum(M**2), rel=1e-12)


def test_matrix_input_uses_singular_values(rng):
    M = rng.standard_normal((7, 5))
    s = np.linalg.svd(M, compute_uv=False)
    for r in range(1, 7):
        assert sd.ksupport_norm_sq(M, r) == pytest.approx(variational_norm_sq(s, r), rel=1e-10)
        assert sd.ksupport_split(M, r) == sd.ksupport_split(s, r)


def test_paper_counterexample_identity_three_by_three():
    """Printed Theorem 6 takes rho* maximising the bracket: 5 for I_3, r = 2. The norm^2 is 4.5."""
    assert sd.ksupport_norm_sq(np.eye(3), 2) == pytest.approx(4.5, rel=1e-15)
    assert variational_norm_sq(np.ones(3), 2) == pytest.approx(4.5, rel=1e-9)
    brackets = [sum([1.0] * (rho - 1)) + (3 - rho + 1) ** 2 / (2 - rho + 1) for rho in (1, 2)]
    assert max(brackets) == 5.0  # what the printed rule would return
    assert sd.ksupport_split(np.eye(3), 2) == 1


def test_split_satisfies_the_defining_inequalities(rng):
    for x, r in random_vectors(rng, 1000):
        s = np.sort(np.abs(x))[::-1]
        if np.count_nonzero(s) <= r:
            continue
        rho = sd.ksupport_split(x, r)
        tail = s[rho - 1 :].sum()
        level = tail / (r - rho + 1)
        assert level >= s[rho - 1] * (1 - 1e-12)
        if rho > 1:
            assert s[rho - 2] > level * (1 - 1e-12)


def test_homogeneous_of_degree_two_at_extreme_scales(rng):
    x = rng.standard_normal(30)
    base = sd.ksupport_norm_sq(x, 4)
    for exponent in (-150, -20, 20, 150):
        c = 10.0**exponent
        assert sd.ksupport_norm_sq(x * c, 4) == pytest.approx(base * c * c, rel=1e-12)
    # the square of 1e300 is not a float64: an error naming x, never a silent inf
    with pytest.raises(ValueError, match="x"):
        sd.ksupport_norm_sq(x * 1e300, 4)
    # the square of 1e-300 underflows to 0 only where the true value is below the smallest double
    assert sd.ksupport_norm_sq(x * 1e-150, 4) > 0


def test_agrees_with_numpy_reference(rng):
    for x, r in random_vectors(rng, 500):
        assert sd.ksupport_norm_sq(x, r) == pytest.approx(
            reference.ksupport_norm_sq(x, r), rel=1e-10
        )
        assert sd.ksupport_split(x, r) == reference.ksupport_split(x, r)


def test_is_a_norm_squared_triangle_inequality(rng):
    for _ in range(300):
        n = int(rng.integers(2, 12))
        r = int(rng.integers(1, n + 1))
        x, y = rng.standard_normal(n), rng.standard_normal(n)
        nx, ny, nxy = (np.sqrt(sd.ksupport_norm_sq(v, r)) for v in (x, y, x + y))
        assert nxy <= nx + ny + 1e-12 * (nx + ny)


def test_large_vector_linear_time():
    x = np.linspace(1.0, 2.0, 2_000_000)
    # all magnitudes in [1, 2]: with r = 10 the tail dominates and rho* = 1
    got = sd.ksupport_norm_sq(x, 10)
    assert got == pytest.approx(x.sum() ** 2 / 10, rel=1e-12)
