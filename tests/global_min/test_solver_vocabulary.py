"""The 1.0 spelling of the closed-form solvers: the strength as theta_bar= or beta= (exactly one),
block_size, X keyword-only; every old spelling still gives the same answer, with a FutureWarning
at the caller's line."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest

import structdrop as sd


@pytest.fixture
def data(rng):
    X = rng.standard_normal((4, 30))
    Y = rng.standard_normal((3, 4)) @ X + 0.1 * rng.standard_normal((3, 30))
    return X, Y


def _old(call):
    """Run an old spelling: one FutureWarning, pointing at this file (the caller's line)."""
    with pytest.warns(FutureWarning) as rec:
        result = call()
    assert len(rec) == 1, [str(w.message) for w in rec]
    assert rec[0].filename == __file__
    return result, str(rec[0].message)


def _new(call):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return call()


def test_theta_bar_and_beta_give_the_same_minimum(data):
    X, Y = data
    for tb in (0.1, 0.5, 0.9, 1.0):
        beta = (1 - tb) / tb
        by_theta = _new(lambda tb=tb: sd.dropblock_global_min(Y, X=X, block_size=2, theta_bar=tb))
        by_beta = _new(lambda beta=beta: sd.dropblock_global_min(Y, X=X, block_size=2, beta=beta))
        assert by_theta == by_beta
        moments = sd.data_moments(X, Y)
        assert sd.global_min_from_moments(
            moments, block_size=2, theta_bar=tb
        ) == sd.global_min_from_moments(moments, block_size=2, beta=beta)


@pytest.mark.parametrize(
    "call",
    [
        lambda Y, X: sd.dropblock_global_min(Y, X=X, block_size=2),
        lambda Y, X: sd.dropblock_global_min(Y, X=X, block_size=2, theta_bar=0.5, beta=1.0),
        lambda Y, X: sd.global_min_from_moments(sd.data_moments(X, Y), block_size=2),
        lambda Y, X: sd.global_min_from_moments(
            sd.data_moments(X, Y), block_size=2, theta_bar=0.5, beta=1.0
        ),
        lambda Y, X: sd.sweep_global_min(Y, X=X, block_sizes=[1, 2]),
        lambda Y, X: sd.sweep_global_min(Y, X=X, block_sizes=[1], theta_bars=[0.5], betas=[1.0]),
        lambda Y, X: sd.width_sweep(Y, [2, 4], X=X, block_size=2),
        lambda Y, X: sd.width_sweep(Y, [2, 4], X=X, block_size=2, theta_bar=0.5, beta=1.0),
    ],
)
def test_neither_or_both_strengths_is_a_type_error_naming_both(data, call):
    X, Y = data
    with pytest.raises(TypeError, match=r"theta_bars?= or betas?="):
        call(Y, X)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"beta": -0.1}, ValueError, "beta must be >= 0"),
        ({"beta": float("inf")}, ValueError, "beta must be finite"),
        ({"beta": float("nan")}, ValueError, "beta must be finite"),
        ({"beta": "1"}, TypeError, "beta must be a real number"),
        ({"theta_bar": 0.0}, ValueError, r"theta_bar must lie in \(0, 1\]"),
        ({"theta_bar": 1.5}, ValueError, r"theta_bar must lie in \(0, 1\]"),
        ({"theta_bar": 1e-320}, ValueError, "theta_bar is too small"),
    ],
)
def test_strength_out_of_range_is_refused(kwargs, error, match):
    Y = np.diag([3.0, 1.0])
    with pytest.raises(error, match=match):
        sd.dropblock_global_min(Y, block_size=1, **kwargs)
    with pytest.raises(error, match=match):
        sd.width_sweep(Y, [2], block_size=1, **kwargs)


@pytest.mark.parametrize(
    "grid, match",
    [
        ({"betas": [0.5, -1.0]}, "betas must all be finite and >= 0"),
        ({"betas": [np.inf]}, "betas must all be finite and >= 0"),
        ({"betas": []}, "betas must be a non-empty"),
        ({"theta_bars": [0.5, 0.0]}, r"theta_bars must all lie in \(0, 1\]"),
    ],
)
def test_sweep_strengths_out_of_range_are_refused(grid, match):
    with pytest.raises(ValueError, match=match):
        sd.sweep_global_min(np.array([3.0, 1.0]), block_sizes=[1], **grid)


def test_sweep_by_beta_reports_the_theta_bars_and_matches_the_single_solver(data):
    X, Y = data
    betas = np.array([0.0, 0.25, 3.0])
    grid = _new(lambda: sd.sweep_global_min(Y, X=X, block_sizes=[1, 3], betas=betas))
    np.testing.assert_array_equal(grid.betas, betas)
    np.testing.assert_array_equal(grid.theta_bars, 1.0 / (1.0 + betas))
    for i, r in enumerate([1, 3]):
        for j, beta in enumerate(betas):
            one = sd.dropblock_global_min(Y, X=X, block_size=r, beta=float(beta))
            assert grid.objective[i, j] == pytest.approx(one.objective, rel=1e-12, abs=1e-12)
            assert grid.rank[i, j] == one.rank


def test_width_sweep_by_beta_equals_by_theta_bar():
    Y = np.diag([3.0, 1.0, 0.5, 0.2])
    by_theta = sd.width_sweep(Y, [2, 4, 8], block_size=2, theta_bar=0.4)
    by_beta = sd.width_sweep(Y, [2, 4, 8], block_size=2, beta=(1 - 0.4) / 0.4)
    np.testing.assert_allclose(by_beta.fixed_objective, by_theta.fixed_objective, rtol=1e-14)
    np.testing.assert_allclose(by_beta.scaled_objective, by_theta.scaled_objective, rtol=1e-14)
    assert by_beta.theta_bar == pytest.approx(0.4, rel=1e-15)
    # the fixed runs use the layer theta equal to theta_bar: beta_bar(d) = (r/d) beta
    np.testing.assert_allclose(
        by_theta.fixed_beta, [sd.beta_for_width(0.4, d, 2) for d in (2, 4, 8)], rtol=0
    )


def test_old_positional_and_keyword_spellings_give_the_same_answer(data):
    X, Y = data
    want = _new(lambda: sd.dropblock_global_min(Y, X=X, block_size=2, theta_bar=0.6))
    got, message = _old(lambda: sd.dropblock_global_min(Y, 2, 0.6, X))
    assert got == want and "block_size=..., theta_bar=..., X=..." in message
    got, message = _old(lambda: sd.dropblock_global_min(Y, 2, 0.6, X, "search"))
    assert got.objective == pytest.approx(want.objective, rel=1e-12)
    got, message = _old(lambda: sd.dropblock_global_min(Y, r=2, theta_bar=0.6, X=X))
    assert got == want and "block_size=" in message

    moments = sd.data_moments(X, Y)
    want = _new(lambda: sd.global_min_from_moments(moments, block_size=2, theta_bar=0.6))
    assert _old(lambda: sd.global_min_from_moments(moments, 2, 0.6))[0] == want
    assert _old(lambda: sd.global_min_from_moments(moments, r=2, theta_bar=0.6))[0] == want

    want = _new(lambda: sd.sweep_global_min(Y, X=X, block_sizes=[1, 2], theta_bars=[0.5]))
    assert _old(lambda: sd.sweep_global_min(Y, [1, 2], [0.5], X))[0] == want
    assert _old(lambda: sd.sweep_global_min(Y, [1, 2], [0.5], X, None))[0] == want
    got, message = _old(lambda: sd.sweep_global_min(x=Y, X=X, block_sizes=[1, 2], theta_bars=[0.5]))
    assert got == want and "Y=" in message

    want = _new(lambda: sd.width_sweep(Y, [2, 4], X=X, block_size=2, theta_bar=0.6))
    assert _old(lambda: sd.width_sweep(Y, [2, 4], 2, 0.6, X))[0] == want
    assert _old(lambda: sd.width_sweep(Y, [2, 4], block_size=2, theta=0.6, X=X))[0] == want


def test_old_keywords_of_the_width_helpers_and_the_prox(rng):
    assert _old(lambda: sd.beta_for_width(0.5, d=10, block_size=5))[0] == 0.5
    assert _old(lambda: sd.beta_for_width(0.5, 10, r=5))[0] == 0.5
    with pytest.warns(FutureWarning) as rec:
        assert sd.theta_for_width(0.5, d=10, r=5) == sd.theta_for_width(0.5, 10, 5)
    assert len(rec) == 2 and all(w.filename == __file__ for w in rec)
    assert _new(lambda: sd.beta_for_width(0.5, width=10, block_size=5)) == 0.5
    m = rng.standard_normal(50)
    assert _old(lambda: sd.ksupport_norm_sq(m, r=3))[0] == sd.ksupport_norm_sq(m, block_size=3)
    assert _old(lambda: sd.ksupport_split(m, r=3))[0] == sd.ksupport_split(m, block_size=3)
    want = sd.prox_ksupport_sq(m, block_size=3, beta=0.7)
    assert _old(lambda: sd.prox_ksupport_sq(m, r=3, beta=0.7))[0] == want
    M = rng.standard_normal((4, 20))
    want = sd.prox_ksupport_sq_batch(M, block_size=3, beta=0.7, threads=1)
    assert _old(lambda: sd.prox_ksupport_sq_batch(M, r=3, beta=0.7, threads=1))[0] == want
    with pytest.raises(TypeError, match="both r="):
        sd.prox_ksupport_sq(m, r=3, block_size=3, beta=0.7)


def test_pyproximal_operators_take_block_size():
    pytest.importorskip("pyproximal")
    from structdrop.pyproximal import KSupport, KSupportSq, dual_ksupport_norm

    x = np.array([3.0, -1.0, 0.5])
    op = _old(lambda: KSupportSq(r=2, sigma=0.5))[0]
    assert op.block_size == 2 and _old(lambda: op.r)[0] == 2
    assert _old(lambda: KSupport(r=2).block_size)[0] == 2
    assert _old(lambda: dual_ksupport_norm(x, r=2))[0] == dual_ksupport_norm(x, block_size=2)
    np.testing.assert_array_equal(
        KSupportSq(block_size=2, sigma=0.5).prox(x, 1.0), sd.prox_ksupport_sq(x, 2, 1.0).values
    )


def test_renamed_result_fields_warn_and_keep_equality_copy_and_pickle():
    grid = sd.sweep_global_min(np.diag([3.0, 1.0]), block_sizes=[1], theta_bars=[0.5])
    old, message = _old(lambda: grid.singular_values)
    assert old is grid.target_singular_values and "SweepResult.target_singular_values" in message
    widths = sd.width_sweep(np.diag([3.0, 1.0]), [1, 2], block_size=1, theta_bar=0.5)
    assert _old(lambda: widths.theta)[0] == widths.theta_bar == 0.5
    for result in (grid, widths):
        assert pickle.loads(pickle.dumps(result)) == result
        names = {f for f in type(result).__dataclass_fields__}
        assert "singular_values" not in names and "theta" not in names


def test_signatures_show_the_new_spelling():
    import inspect

    params = inspect.signature(sd.dropblock_global_min).parameters
    assert list(params) == [
        "Y",
        "X",
        "block_size",
        "theta_bar",
        "beta",
        "method",
        "progress",
    ]
    assert all(p.kind is p.KEYWORD_ONLY for name, p in params.items() if name != "Y")
    assert list(inspect.signature(sd.sweep_global_min).parameters)[:3] == ["Y", "X", "block_sizes"]
    assert list(inspect.signature(sd.width_sweep).parameters)[:4] == [
        "Y",
        "widths",
        "X",
        "block_size",
    ]
    for function in (sd.ksupport_norm_sq, sd.prox_ksupport_sq, sd.prox_ksupport_sq_batch):
        assert list(inspect.signature(function).parameters)[1] == "block_size"
    assert list(inspect.signature(sd.beta_for_width).parameters) == [
        "theta",
        "width",
        "block_size",
    ]


def test_reference_oracle_takes_block_size_and_width():
    from structdrop import reference

    assert _old(lambda: reference.prox_ksupport_sq([3.0, 1.0, 0.5], r=2, beta=1.0))[0][
        "objective"
    ] == pytest.approx(5.25)
    assert reference.ksupport_norm_sq([1.0, 1.0, 1.0], block_size=2) == pytest.approx(4.5)
    assert reference.beta_for_width(0.5, width=10, block_size=5) == pytest.approx(0.5)
    assert _old(lambda: reference.theta_for_width(0.5, 10, r=5))[0] == pytest.approx(1 / 3)
    Y = np.diag([3.0, 1.0])
    assert reference.dropblock_global_min(Y, block_size=1, theta_bar=0.5)["objective"] == (
        pytest.approx(sd.dropblock_global_min(Y, block_size=1, theta_bar=0.5).objective)
    )
