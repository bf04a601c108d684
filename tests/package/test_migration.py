"""The migration helpers: old spellings give the old answer with a FutureWarning pointing at the
caller's line; ambiguous old calls are refused; the new signature is what inspect shows."""

from __future__ import annotations

import inspect
import warnings

import numpy as np
import pytest

from structdrop._migration import (
    choose_argument_order,
    positional_became_keyword,
    renamed_field,
    renamed_keywords,
)


@renamed_keywords("solve", r="block_size")
@positional_became_keyword("solve", 1, ("block_size", "theta_bar"))
def solve(Y, *, block_size, theta_bar=None):
    return Y, block_size, theta_bar


def test_new_spelling_is_silent_and_visible_to_inspect():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert solve("Y", block_size=5, theta_bar=0.5) == ("Y", 5, 0.5)
    params = inspect.signature(solve).parameters
    assert list(params) == ["Y", "block_size", "theta_bar"]
    assert params["block_size"].kind is inspect.Parameter.KEYWORD_ONLY


def test_old_positional_call_warns_at_the_callers_line_and_gives_the_old_answer():
    with pytest.warns(
        FutureWarning, match=r"solve\(\.\.\., block_size=\.\.\., theta_bar=\.\.\.\)"
    ) as rec:
        assert solve("Y", 5, 0.5) == ("Y", 5, 0.5)
    assert rec[0].filename == __file__


def test_old_keyword_warns_and_both_names_is_an_error():
    with pytest.warns(FutureWarning, match=r"solve\(block_size=\.\.\.\)") as rec:
        assert solve("Y", r=3) == ("Y", 3, None)
    assert rec[0].filename == __file__
    with pytest.raises(TypeError, match="both r="):
        solve("Y", r=3, block_size=3)
    with pytest.raises(TypeError, match="multiple values for block_size"):
        solve("Y", 3, block_size=3)
    with pytest.raises(TypeError, match="at most 3 positional"):
        solve("Y", 3, 0.5, "extra")


def _fits(named):
    X, Y, U, V = (np.shape(named[k]) for k in "XYUV")
    return X[1] == Y[1] and U[0] == Y[0] and U[1] == V[0] and V[1] == X[0]


def objective(*args):
    return choose_argument_order("objective", args, "XYUV", "YUVX", _fits)


def test_order_follows_the_shapes():
    X, Y, U, V = np.zeros((3, 7)), np.zeros((2, 7)), np.zeros((2, 4)), np.zeros((4, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        named = objective(X, Y, U, V)
    assert all(named[k] is v for k, v in zip("XYUV", (X, Y, U, V)))
    with pytest.warns(FutureWarning, match=r"objective\(Y, U, V, X\)") as rec:
        named = objective(Y, U, V, X)
    assert rec[0].filename == __file__
    assert all(named[k] is v for k, v in zip("XYUV", (X, Y, U, V)))


def test_shapes_that_fit_both_orders_are_refused_with_the_keyword_call():
    square = [np.zeros((3, 3)) for _ in range(4)]
    with pytest.raises(TypeError, match=r"objective\(X=X, Y=Y, U=U, V=V\)"):
        objective(*square)
    # the same array in every place is the same call in either order
    one = np.zeros((3, 3))
    assert objective(one, one, one, one)["X"] is one


def test_neither_order_fitting_leaves_the_shapes_to_the_function():
    bad = [np.zeros((2, 3)), np.zeros((5, 7)), np.zeros((1, 1)), np.zeros((4, 4))]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert objective(*bad)["X"] is bad[0]


def test_renamed_field_warns_and_reads_the_new_field():
    class Result:
        target_singular_values = np.arange(3.0)
        singular_values = renamed_field("singular_values", "target_singular_values", "Result")

    with pytest.warns(FutureWarning, match=r"Result\.target_singular_values") as rec:
        values = Result().singular_values
    assert rec[0].filename == __file__
    assert values is Result.target_singular_values
