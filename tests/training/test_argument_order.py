"""The 1.0 vocabulary of schemes and objectives: inputs before targets, block_size first, and the
old spellings still giving the old answer with a FutureWarning at the caller's line."""

from __future__ import annotations

import inspect
import re
import warnings

import numpy as np
import pytest

import structdrop as sd

SCHEMES = [
    sd.NoDropout(),
    sd.Dropout(0.6),
    sd.DropBlock(2, theta=0.5),
    sd.OverlappingDropBlock(3, gamma=0.2),
    sd.DropConnect(0.7),
]


def data(a=3, b=4, N=9, d=6, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape) for shape in ((b, N), (a, N), (a, d), (b, d)))


def silent(call):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return call()


@pytest.mark.parametrize("scheme", SCHEMES, ids=lambda s: type(s).__name__)
@pytest.mark.parametrize("method", ["objective", "objective_terms"])
def test_old_order_gives_the_old_answer_and_warns_at_the_callers_line(scheme, method):
    X, Y, U, V = data()
    call = getattr(scheme, method)
    new = silent(lambda: call(X, Y, U, V))
    assert silent(lambda: call(X=X, Y=Y, U=U, V=V)) == new
    # an independent evaluation: the scheme's terms from the data moments
    expected = sd.objective_terms(scheme, U, V, sd.data_moments(X, Y))
    assert (new if method == "objective_terms" else expected.objective) == (
        expected if method == "objective_terms" else new
    )
    with pytest.warns(
        FutureWarning, match=rf"{method}\(Y, U, V, X\).*{method}\(X, Y, U, V\)"
    ) as rec:
        old = call(Y, U, V, X)
    assert rec[0].filename == __file__
    assert old == new
    # the old order with X by keyword (a common 0.x call) is recognised from the clash
    with pytest.warns(FutureWarning, match=r"the order before 1\.0") as rec:
        assert call(Y, U, V, X=X) == new
    assert rec[0].filename == __file__


def test_paper_approx_objective_takes_inputs_first():
    X, Y, U, V = data(seed=1)
    scheme = sd.DropConnect(0.4)
    new = silent(lambda: scheme.paper_approx_objective(X, Y, U, V))
    printed = sd.dropconnect_paper_approx_terms(scheme, U, V, sd.data_moments(X, Y)).objective
    assert new == printed
    with pytest.warns(FutureWarning, match=r"paper_approx_objective\(Y, U, V, X\)") as rec:
        assert scheme.paper_approx_objective(Y, U, V, X) == new
    assert rec[0].filename == __file__


@pytest.mark.parametrize("n", [1, 4])
def test_shapes_that_fit_both_orders_are_refused_and_keywords_always_work(n):
    # a = b and N = d: every array n x n, so (X, Y, U, V) and (Y, U, V, X) both fit
    X, Y, U, V = data(a=n, b=n, N=n, d=n, seed=2)
    scheme = sd.Dropout(0.5)
    for call in (lambda: scheme.objective(X, Y, U, V), lambda: scheme.objective(Y, U, V, X)):
        with pytest.raises(TypeError, match=r"ambiguous.*objective\(X=X, Y=Y, U=U, V=V\)"):
            call()
    by_keyword = silent(lambda: scheme.objective(X=X, Y=Y, U=U, V=V))
    assert by_keyword == sd.objective_terms(scheme, U, V, sd.data_moments(X, Y)).objective


def test_shapes_that_fit_neither_order_are_reported_by_the_function():
    X, Y, U, V = data()
    with pytest.raises(ValueError, match="V must have b = 4 rows"):
        sd.Dropout(0.5).objective(X, Y, U, V[:2])


def test_generalized_objective_takes_features_first():
    rng = np.random.default_rng(3)
    a, d, N = 2, 3, 5
    G, Y, U = rng.standard_normal((d, N)), rng.standard_normal((a, N)), rng.standard_normal((a, d))
    scheme = sd.Dropout(0.5)
    mean, cov = scheme.mask_mean(d), scheme.mask_covariance(d)
    new = silent(lambda: sd.generalized_objective(G, Y, U, mean, cov))
    # G = V^T X with X = I: the scheme's own objective is an independent value
    assert new.objective == pytest.approx(scheme.objective(X=np.eye(N), Y=Y, U=U, V=G.T), rel=1e-12)
    with pytest.warns(FutureWarning, match=r"generalized_objective\(Y, U, G\)") as rec:
        assert sd.generalized_objective(Y, U, G, mean, cov) == new
    assert rec[0].filename == __file__
    square = [rng.standard_normal((3, 3)) for _ in range(3)]
    with pytest.raises(TypeError, match=r"generalized_objective\(G=G, Y=Y, U=U\)"):
        sd.generalized_objective(*square, mean, cov)
    assert silent(lambda: sd.generalized_objective(G=G, Y=Y, U=U, mean=mean, covariance=cov)) == new


def test_data_moments_keeps_inputs_first_and_is_silent():
    X, Y, _, _ = data()
    m = silent(lambda: sd.data_moments(X, Y))
    np.testing.assert_array_equal(m.gram, X @ X.T)
    np.testing.assert_array_equal(m.cross, Y @ X.T)


def test_new_signatures_are_what_inspect_shows():
    for method in ("objective", "objective_terms"):
        assert list(inspect.signature(getattr(sd.MaskScheme, method)).parameters) == [
            "self",
            "X",
            "Y",
            "U",
            "V",
        ]
    assert list(inspect.signature(sd.generalized_objective).parameters)[:3] == ["G", "Y", "U"]
    params = inspect.signature(sd.DropBlock).parameters
    assert list(params) == ["block_size", "theta"]
    assert params["theta"].kind is inspect.Parameter.KEYWORD_ONLY
    params = inspect.signature(sd.OverlappingDropBlock).parameters
    assert list(params) == ["block_size", "theta", "gamma"]
    assert params["gamma"].kind is inspect.Parameter.KEYWORD_ONLY


@pytest.mark.parametrize(
    "theta, block_size",
    [(0.5, 3), (0.25, 1), (1.0, 4), (1, 4), (np.float32(0.5), np.int64(2))],
)
def test_dropblock_old_order_where_the_values_prove_it(theta, block_size):
    new = silent(lambda: sd.DropBlock(block_size, theta=theta))
    assert new.block_size == block_size and new.theta == float(theta)
    with pytest.warns(
        FutureWarning, match=rf"DropBlock\({re.escape(repr(block_size))}, theta="
    ) as rec:
        assert sd.DropBlock(theta, block_size) == new
    assert rec[0].filename == __file__
    with pytest.warns(FutureWarning) as rec:
        assert sd.DropBlock(theta, block_size=block_size) == new
    assert rec[0].filename == __file__


def test_dropblock_one_one_is_the_same_either_way_and_theta_by_position_is_refused():
    with pytest.warns(FutureWarning):
        assert sd.DropBlock(1, 1) == sd.DropBlock(1, theta=1.0)
    with pytest.raises(TypeError, match=r"DropBlock\(3, theta=0\.5\)"):
        sd.DropBlock(3, 0.5)
    with pytest.raises(TypeError, match="keyword|theta"):
        sd.DropBlock(3)  # theta is required
    # a non-integer first number can only be the old theta: the old call's own error follows
    with pytest.warns(FutureWarning), pytest.raises(ValueError, match="block_size must be >= 1"):
        sd.DropBlock(0.5, 0)
    with pytest.warns(FutureWarning), pytest.raises(TypeError, match="block_size must be an int"):
        sd.DropBlock(0.5, 1.5)


def test_overlapping_dropblock_gamma_by_position_warns_with_the_keyword():
    new = silent(lambda: sd.OverlappingDropBlock(3, gamma=0.1))
    with pytest.warns(FutureWarning, match=r"OverlappingDropBlock\(\.\.\., gamma=\.\.\.\)") as rec:
        assert sd.OverlappingDropBlock(3, 0.1) == new
    assert rec[0].filename == __file__
    with pytest.warns(FutureWarning, match="theta=") as rec:
        old_theta = sd.OverlappingDropBlock(3, None, 0.5)
    assert rec[0].filename == __file__
    assert old_theta == silent(lambda: sd.OverlappingDropBlock(3, theta=0.5))
    assert old_theta.theta == pytest.approx(0.5, rel=1e-15)


@pytest.mark.parametrize(
    "call",
    [
        lambda s, **k: s.mask_mean(**k),
        lambda s, **k: s.characteristic_matrix(**k),
        lambda s, **k: s.mask_covariance(**k),
        lambda s, **k: s.check_width(**k),
        lambda s, **k: s.sample_masks(count=2, rng=5, **k),
    ],
)
@pytest.mark.parametrize(
    "scheme", [sd.Dropout(0.5), sd.DropBlock(2, theta=0.5)], ids=lambda s: type(s).__name__
)
def test_width_keyword_and_the_old_d(scheme, call):
    new = silent(lambda: call(scheme, width=4))
    with pytest.warns(FutureWarning, match=r"\(width=\.\.\.\)") as rec:
        old = call(scheme, d=4)
    assert rec[0].filename == __file__
    np.testing.assert_array_equal(old, new)
    with pytest.raises(TypeError, match="both d="):
        call(scheme, d=4, width=4)


def test_for_width_keyword_and_the_old_d():
    new = silent(lambda: sd.DropBlock.for_width(0.5, width=10, block_size=5))
    with pytest.warns(FutureWarning, match=r"for_width\(width=\.\.\.\)") as rec:
        assert sd.DropBlock.for_width(0.5, d=10, block_size=5) == new
    assert rec[0].filename == __file__
    assert new.theta == pytest.approx(sd.theta_for_width(0.5, 10, 5), rel=0)
