"""Grid and width sweeps against the single-setting solver and Lemma 2 / eq. 7."""

from __future__ import annotations

import numpy as np
import pytest

import structdrop as sd
from structdrop import reference


def test_every_grid_cell_equals_the_single_setting_solver(rng):
    Y = rng.standard_normal((12, 30))
    X = rng.standard_normal((8, 4)) @ rng.standard_normal((4, 30))  # rank-deficient
    sizes = [1, 2, 3, 5, 8, 13, 40]
    thetas = np.linspace(0.05, 1.0, 11)
    for data in (None, X):
        grid = sd.sweep_global_min(Y, block_sizes=sizes, theta_bars=thetas, X=data)
        assert (
            grid.objective.shape == grid.rank.shape == grid.rho.shape == (len(sizes), len(thetas))
        )
        for i, r in enumerate(sizes):
            for j, theta_bar in enumerate(thetas):
                single = sd.dropblock_global_min(Y, block_size=r, theta_bar=theta_bar, X=data)
                assert grid.objective[i, j] == pytest.approx(single.objective, rel=1e-11)
                assert grid.rank[i, j] == single.rank
                assert grid.rho[i, j] == single.rho
                # and an independent check of the value: the NumPy reference
                assert grid.objective[i, j] == pytest.approx(
                    reference.dropblock_global_min(Y, r, theta_bar, X=data)["objective"], rel=1e-9
                )


def test_singular_value_input_and_thread_independence(rng):
    m = np.abs(rng.standard_normal(3000)) * 5
    sizes = np.arange(1, 65)
    thetas = np.linspace(0.05, 0.95, 19)
    one = sd.sweep_global_min(m, block_sizes=sizes, theta_bars=thetas, threads=1)
    many = sd.sweep_global_min(
        m[::-1], block_sizes=sizes, theta_bars=thetas, threads=7
    )  # any order
    np.testing.assert_array_equal(one.objective, many.objective)
    np.testing.assert_array_equal(one.rank, many.rank)
    for i, j in ((0, 0), (10, 5), (63, 18)):
        single = sd.prox_ksupport_sq(m, int(sizes[i]), (1 - thetas[j]) / thetas[j])
        assert one.objective[i, j] == pytest.approx(single.objective, rel=1e-11)


def test_monotone_structure_of_the_phase_diagram(rng):
    """Larger blocks and smaller theta_bar regularise more: the rank never grows with theta_bar
    decreasing, and the objective grows with r (||.||_(r) decreases in r, so -... ) is checked
    against the definition: at fixed beta, ||a||_(r) is non-increasing in r."""
    Y = rng.standard_normal((20, 40))
    grid = sd.sweep_global_min(Y, block_sizes=np.arange(1, 21), theta_bars=np.linspace(0.1, 0.9, 9))
    # the minimum of F = ||Y - A||^2 + beta ||A||_(r)^2 is non-increasing in r (norm shrinks with r)
    assert np.all(np.diff(grid.objective, axis=0) <= 1e-9 * grid.objective[1:])
    # and non-increasing in theta_bar (beta shrinks)
    assert np.all(np.diff(grid.objective, axis=1) <= 1e-9 * grid.objective[:, 1:])


def test_width_sweep_lemma2_and_eq7(rng):
    problem = sd.paper_synthetic(seed=1, a=20, b=30, N=200, rank=10)
    noisy = problem.Y + rng.standard_normal(problem.Y.shape)
    widths = [5, 10, 50, 100, 1000, 10_000, 1_000_000]
    out = sd.width_sweep(noisy, widths, block_size=5, theta_bar=0.5, X=problem.X)
    # eq. 7: the minimum does not depend on the width
    np.testing.assert_allclose(out.scaled_objective, out.scaled_objective[0], rtol=1e-12)
    np.testing.assert_allclose(out.scaled_beta, 1.0)
    # Lemma 2: with theta fixed, the minimum decreases with d towards ||Y(I - P)||^2
    assert np.all(np.diff(out.fixed_objective) <= 0)
    unreg = float(np.sum((noisy - noisy @ np.linalg.pinv(problem.X) @ problem.X) ** 2))
    assert out.unregularized_minimum == pytest.approx(unreg, rel=1e-9)
    # A = Y P is reachable, so the minimum is at most unreg + beta_bar ||Y P||_(r)^2 -> unreg
    YP = noisy @ np.linalg.pinv(problem.X) @ problem.X
    bound = unreg + out.fixed_beta * sd.ksupport_norm_sq(YP, 5)
    assert np.all(out.fixed_objective <= bound * (1 + 1e-12))
    assert out.fixed_objective[-1] - unreg <= 1e-5 * np.sum(noisy**2)
    assert out.fixed_objective[0] > 1.5 * unreg
    # each entry is the single solver at beta_for_width
    for d, value in zip(widths, out.fixed_objective):
        theta_bar = 1 / (1 + sd.beta_for_width(0.5, d, 5))
        assert value == pytest.approx(
            sd.dropblock_global_min(
                noisy, block_size=5, theta_bar=theta_bar, X=problem.X
            ).objective,
            rel=1e-10,
        )


@pytest.mark.parametrize(
    "call, error, match",
    [
        (
            lambda: sd.sweep_global_min(np.ones((2, 3)), block_sizes=[], theta_bars=[0.5]),
            ValueError,
            "block_sizes must be a non-empty",
        ),
        (
            lambda: sd.sweep_global_min(np.ones((2, 3)), block_sizes=[0, 2], theta_bars=[0.5]),
            ValueError,
            "block_sizes must all be >= 1",
        ),
        (
            lambda: sd.sweep_global_min(np.ones((2, 3)), block_sizes=[1.5], theta_bars=[0.5]),
            TypeError,
            "block_sizes must be integers",
        ),
        (
            lambda: sd.sweep_global_min(np.ones((2, 3)), block_sizes=[1], theta_bars=[0.0, 0.5]),
            ValueError,
            r"theta_bars must all lie in \(0, 1\]",
        ),
        (
            lambda: sd.sweep_global_min(np.ones((2, 3)), block_sizes=[1], theta_bars=[]),
            ValueError,
            "theta_bars must be a non-empty",
        ),
        (
            lambda: sd.sweep_global_min(np.array([1.0, -1.0]), block_sizes=[1], theta_bars=[0.5]),
            ValueError,
            "Y must be non-negative",
        ),
        (
            lambda: sd.sweep_global_min(
                np.ones(3), block_sizes=[1], theta_bars=[0.5], X=np.ones((2, 3))
            ),
            ValueError,
            "X can only be given",
        ),
        (
            lambda: sd.sweep_global_min(
                np.ones((2, 3)), block_sizes=[1], theta_bars=[0.5], X=np.ones((2, 4))
            ),
            ValueError,
            "same number of samples",
        ),
        (
            lambda: sd.width_sweep(np.ones((2, 3)), [10, 12], block_size=5, theta_bar=0.5),
            ValueError,
            "block_size must divide the width d",
        ),
        (
            lambda: sd.width_sweep(np.ones((2, 3)), [], block_size=5, theta_bar=0.5),
            ValueError,
            "widths must be",
        ),
        (
            lambda: sd.width_sweep(np.ones((2, 3)), [10], block_size=5, theta_bar=1.5),
            ValueError,
            "theta_bar must lie",
        ),
    ],
)
def test_bad_ranges_are_rejected(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_data_as_nested_lists_on_the_qr_route(rng):
    """X given as nested lists, rank-deficient so that the second pass (QR of [X; Y]^T, read in
    column chunks) runs: the same grid as with the array, checked against the NumPy reference."""
    Y = rng.standard_normal((5, 40))
    X = rng.standard_normal((6, 3)) @ rng.standard_normal((3, 40))  # rank 3 of 6 rows
    sizes, thetas = [1, 2, 4], [0.3, 0.8]
    grid = sd.sweep_global_min(Y, block_sizes=sizes, theta_bars=thetas, X=X.tolist())
    np.testing.assert_allclose(
        grid.objective,
        sd.sweep_global_min(Y, block_sizes=sizes, theta_bars=thetas, X=X).objective,
        rtol=1e-12,
    )
    expected = reference.dropblock_global_min(Y, 2, 0.8, X=X)["objective"]
    assert grid.objective[1, 1] == pytest.approx(expected, rel=1e-9)
    widths = sd.width_sweep(Y.tolist(), [2, 4, 8], block_size=2, theta_bar=0.5, X=X.tolist())
    np.testing.assert_allclose(
        widths.fixed_objective,
        sd.width_sweep(Y, [2, 4, 8], block_size=2, theta_bar=0.5, X=X).fixed_objective,
    )
