"""A zero minimum (Y in X's row space, beta = 0) is judged by an absolute floor: the Gram route is
kept when its error estimate is within the rounding of ||Y||^2, so the data are read once and the
reported estimate is small (before, the test error <= 1e-10 * 0 always failed: a second pass, and
an estimate of about 1e16)."""

from __future__ import annotations

import numpy as np
import pytest

import structdrop as sd
import structdrop.global_min as global_min_module

EPS = np.finfo(np.float64).eps


def _no_second_pass(*args, **kwargs):
    raise AssertionError("the data were read a second time (QR route)")


def _in_row_space(rng, a, b, n, scale=1.0):
    X = rng.standard_normal((b, n))
    return X, scale * rng.standard_normal((a, b)) @ X


@pytest.mark.parametrize("a, b, n", [(1, 1, 5), (3, 4, 50), (5, 10, 1000), (20, 8, 300)])
@pytest.mark.parametrize("scale", [1e-150, 1.0, 1e150])
def test_zero_objective_reads_the_data_once_and_reports_a_small_estimate(
    rng, monkeypatch, a, b, n, scale
):
    X, Y = _in_row_space(rng, a, b, n, scale)
    monkeypatch.setattr(global_min_module, "triangular_factor", _no_second_pass)
    res = sd.dropblock_global_min(Y, X=X, block_size=2, beta=0.0)
    assert res.route == "gram"
    assert res.error_estimate <= global_min_module.ACCURACY_TARGET
    # the true minimum is 0; the computed one carries at most the rounding of ||Y||^2
    # (a N terms: worst case a N u ||Y||^2) and of ||m||^2 (as much again)
    y_sq = float(np.sum(Y * Y))
    assert 0.0 <= res.objective <= 2 * a * n * EPS * y_sq
    grid = sd.sweep_global_min(Y, X=X, block_sizes=[1, 2], betas=[0.0, 0.5])
    assert np.all(grid.objective[:, 0] <= 2 * a * n * EPS * y_sq)


def test_ill_conditioned_X_still_takes_the_accurate_route_at_objective_zero(rng):
    # kappa(X) = 1e6 with Y along X's weakest direction: the Gram route's error (about
    # u kappa^2 ||Y||^2) is far above the floor, so the QR route runs, and its answer is ~0.
    b, n = 4, 200
    left, _ = np.linalg.qr(rng.standard_normal((b, b)))
    right, _ = np.linalg.qr(rng.standard_normal((n, b)))
    X = left @ np.diag([1.0, 1e-2, 1e-4, 1e-6]) @ right.T
    Y = np.outer(rng.standard_normal(3), right[:, -1])  # X's weakest right singular vector
    res = sd.dropblock_global_min(Y, X=X, block_size=1, beta=0.0)
    assert res.route == "qr"
    assert res.objective <= 1e-12 * float(np.sum(Y * Y))


def test_a_nonzero_objective_is_judged_relative_as_before(rng):
    X, Y = _in_row_space(rng, 3, 4, 60)
    res = sd.dropblock_global_min(Y, X=X, block_size=2, beta=0.5)
    assert res.route == "gram" and res.objective > 0
    # far above the floor the estimate is the relative error: fit_error / objective
    gram = sd.global_min_from_moments(sd.data_moments(X, Y), block_size=2, beta=0.5)
    assert gram.error_estimate == res.error_estimate < 1e-13
