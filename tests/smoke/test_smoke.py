"""Smoke test of an installed structdrop (what a wheel build runs against the wheel; < 30 s).

A few fast checks of the compiled core against independent references, chosen to fail when a
wheel is broken (missing or mis-compiled extension, wrong kernels for the CPU, wrong version):
* the version attribute against the installed distribution's metadata;
* every instruction set this CPU runs gives the same bits (the dispatch of the kernel units);
* masked-SGD runs of every scheme against a separately written NumPy replay of their draws;
* the squared k-support norm against its variational form, and the closed-form DropBlock minimum
  against the NumPy reference route and against nearby points.
Run from anywhere: ``python -m pytest <project>/tests/smoke``.
"""

from __future__ import annotations

import importlib.metadata
import sys
from pathlib import Path

import numpy as np
import pytest

import structdrop
from structdrop import _core
from structdrop.reference import ksupport as ref_ksupport

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the suite's helpers (tests/)
from conftest import variational_norm_sq  # noqa: E402
from test_training import SCHEMES, problem, replay  # noqa: E402


def test_version_is_the_installed_metadata():
    assert structdrop.__version__ == importlib.metadata.version("structdrop")


def test_every_available_instruction_set_gives_the_same_bits():
    assert _core.sgd_kernel_isa() in ("baseline", "avx2", "avx512")
    X, Y, U0, V0 = problem(5, 67, 30, 70, seed=3, scale=0.2)  # two-word masks, vector tails
    runs = {}
    try:
        for isa in ("baseline", "avx2", "avx512"):
            try:
                _core.set_sgd_kernel_isa(isa)
            except ValueError:
                continue
            runs[isa] = structdrop.train_many(
                X, Y, U0, V0, list(SCHEMES.values()), 2e-4, 60, batch_size=[1, 2, 1, 3, 1], seed=[1, 2, 3, 4, 5]
            )
    finally:
        _core.set_sgd_kernel_isa("auto")
    base = runs.pop("baseline")
    for other in runs.values():
        for f, s in zip(other, base):
            assert np.array_equal(f.U, s.U) and np.array_equal(f.V, s.V)
            assert np.array_equal(f.stochastic_objective, s.stochastic_objective)


@pytest.mark.parametrize("name", list(SCHEMES))
@pytest.mark.parametrize("batch_size", [1, 3])
def test_run_matches_numpy_replay(name, batch_size):
    scheme = SCHEMES[name]
    X, Y, U0, V0 = problem(4, 5, 15, 6, seed=8)
    T, lr, seed, every = 25, 0.02, 5, 10
    run = structdrop.train(X, Y, U0, V0, scheme, lr, T, batch_size=batch_size, record_every=every, seed=seed)
    U, V, steps, stochastic, deterministic = replay(X, Y, U0, V0, scheme, lr, T, batch_size, seed, None, every)
    assert np.array_equal(run.record_iterations, steps)
    np.testing.assert_allclose(run.U, U, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(run.V, V, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(run.stochastic_objective, stochastic, rtol=1e-10)
    np.testing.assert_allclose(run.deterministic_objective, deterministic, rtol=1e-10)


def test_ksupport_norm_and_global_minimum(rng):
    for r in (1, 2, 3, 5):
        s = rng.standard_normal(9)
        assert structdrop.ksupport_norm_sq(s, r) == pytest.approx(variational_norm_sq(s, r), rel=1e-6)
    Y = rng.standard_normal((6, 8))
    r, theta_bar = 2, 0.6
    result = structdrop.dropblock_global_min(Y, r, theta_bar)
    expected = ref_ksupport.dropblock_global_min(Y, r, theta_bar)
    assert result.objective == pytest.approx(expected["objective"], rel=1e-10)
    beta = (1 - theta_bar) / theta_bar
    A = expected["A"]
    for _ in range(20):  # F(A*) <= F(A* + small perturbation)
        B = A + 1e-3 * rng.standard_normal(A.shape)
        assert result.objective <= np.sum((Y - B) ** 2) + beta * structdrop.ksupport_norm_sq(B, r) + 1e-12
