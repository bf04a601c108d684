"""Bad input to the closed-form API raises a clear ValueError/TypeError; odd layouts
are accepted."""

from __future__ import annotations

import numpy as np
import pytest

import structdrop as sd
from structdrop import _core


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: sd.ksupport_norm_sq([1.0, np.nan], 1), ValueError, "x contains NaN"),
        (lambda: sd.ksupport_norm_sq([1.0, np.inf], 1), ValueError, "x contains NaN"),
        (lambda: sd.ksupport_norm_sq([], 1), ValueError, "x must not be empty"),
        (lambda: sd.ksupport_norm_sq(np.ones((2, 2, 2)), 1), ValueError, "x must be 1-D or 2-D"),
        (lambda: sd.ksupport_norm_sq(np.ones(3), 0), ValueError, "block_size must be >= 1"),
        (lambda: sd.ksupport_norm_sq(np.ones(3), 1.5), TypeError, "block_size must be an integer"),
        (lambda: sd.ksupport_norm_sq(np.ones(3), True), TypeError, "block_size must be an integer"),
        (lambda: sd.ksupport_norm_sq(np.ones(3), "2"), TypeError, "block_size must be an integer"),
        (lambda: sd.ksupport_norm_sq(np.ones(3, dtype=complex), 1), TypeError, "x must be real"),
        (
            lambda: sd.ksupport_norm_sq(np.array(["a"]), 1),
            TypeError,
            "x must be a real numeric array",
        ),
        (lambda: sd.ksupport_norm_sq("abc", 1), TypeError, "x must be a numeric array"),
        (lambda: sd.ksupport_split(np.ones(3), -2), ValueError, "block_size must be >= 1"),
        # signed vectors and matrices are accepted; NaN/inf and 3-D input are not
        (lambda: sd.prox_ksupport_sq([1.0, np.nan], 1, 1.0), ValueError, "m contains NaN"),
        (lambda: sd.prox_ksupport_sq([1.0, -np.inf], 1, 1.0), ValueError, "m contains NaN"),
        (
            lambda: sd.prox_ksupport_sq(np.array([1.0, np.nan], np.float32), 1, 1.0),
            ValueError,
            "m contains NaN",
        ),
        (
            lambda: sd.prox_ksupport_sq([1.0, np.nan], 1, 1.0, method="search"),
            ValueError,
            "m contains NaN",
        ),
        (
            lambda: sd.prox_ksupport_sq(np.full((2, 2), np.nan), 1, 1.0),
            ValueError,
            "m contains NaN",
        ),
        (
            lambda: sd.prox_ksupport_sq(np.ones((2, 2, 2)), 1, 1.0),
            ValueError,
            "m must be 1-D or 2-D",
        ),
        (lambda: sd.prox_ksupport_sq([1.0], 1, -1.0), ValueError, "beta must be >= 0"),
        (lambda: sd.prox_ksupport_sq([1.0], 1, np.inf), ValueError, "beta must be finite"),
        (lambda: sd.prox_ksupport_sq([1.0], 1, np.nan), ValueError, "beta must be finite"),
        (lambda: sd.prox_ksupport_sq([1.0], 1, 1.0, method="fast"), ValueError, "method must be"),
        (lambda: sd.prox_ksupport_sq([], 1, 1.0), ValueError, "m must not be empty"),
        (
            lambda: sd.dropblock_global_min(np.ones((2, 3)), block_size=2, theta_bar=0.0),
            ValueError,
            r"theta_bar must lie in \(0, 1\]",
        ),
        (
            lambda: sd.dropblock_global_min(np.ones((2, 3)), block_size=2, theta_bar=1.5),
            ValueError,
            "theta_bar must lie",
        ),
        (
            lambda: sd.dropblock_global_min(np.ones(3), block_size=2, theta_bar=0.5),
            ValueError,
            "Y must be 2-D",
        ),
        (
            lambda: sd.dropblock_global_min(
                np.ones((2, 3)), block_size=2, theta_bar=0.5, X=np.ones((4, 5))
            ),
            ValueError,
            "same number of samples",
        ),
        (
            lambda: sd.dropblock_global_min(
                np.ones((2, 3)), block_size=2, theta_bar=0.5, X=np.ones(3)
            ),
            ValueError,
            "X must be 2-D",
        ),
        (
            lambda: sd.dropblock_global_min(np.ones((2, 3)), block_size=0, theta_bar=0.5),
            ValueError,
            "block_size must be >= 1",
        ),
        (
            lambda: sd.dropblock_global_min(np.full((2, 3), np.nan), block_size=1, theta_bar=0.5),
            ValueError,
            "Y contains NaN",
        ),
        (lambda: sd.theta_for_width(0.5, 10, 3), ValueError, "block_size must divide the width d"),
        (lambda: sd.theta_for_width(-0.1, 10, 5), ValueError, "theta_bar must lie"),
        (lambda: sd.beta_for_width(0.0, 10, 5), ValueError, "theta must lie"),
        (lambda: sd.beta_for_width(0.5, 0, 5), ValueError, "width must be >= 1"),
    ],
)
def test_bad_input_is_rejected_with_a_named_argument(call, error, match):
    with pytest.raises(error, match=match):
        call()


# out=, the batch entry point and threads: the arguments the selection kernels added
@pytest.mark.parametrize(
    "call, error, match",
    [
        (
            lambda m: sd.prox_ksupport_sq(m, 2, 1.0, out=np.empty(9)),
            ValueError,
            r"out must have shape \(10,\)",
        ),
        (
            lambda m: sd.prox_ksupport_sq(m, 2, 1.0, out=np.empty(10, np.float32)),
            TypeError,
            "out must have dtype float64",
        ),
        (
            lambda m: sd.prox_ksupport_sq(m.astype(np.float32), 2, 1.0, out=np.empty(10)),
            TypeError,
            "dtype float32",
        ),
        (
            lambda m: sd.prox_ksupport_sq(m, 2, 1.0, out=[0.0] * 10),
            TypeError,
            "out must be a numpy.ndarray",
        ),
        (
            lambda m: sd.prox_ksupport_sq(m, 2, 1.0, out=np.empty(20)[::2]),
            ValueError,
            "out must be C-contiguous",
        ),
        (lambda m: sd.prox_ksupport_sq(m, 2, 1.0, out=m), ValueError, "out must not share memory"),
        (
            lambda m: sd.prox_ksupport_sq(m[:5], 2, 1.0, out=m[5:]),
            ValueError,
            None,
        ),  # no overlap: accepted
        (
            lambda m: sd.prox_ksupport_sq(m[:6], 2, 1.0, out=m[4:10]),
            ValueError,
            "out must not share memory",
        ),
        (
            lambda m: sd.prox_ksupport_sq(m, 2, 1.0, out=np.frombuffer(np.zeros(10).tobytes())),
            ValueError,
            "writeable",
        ),
        (
            lambda m: sd.prox_ksupport_sq(
                m, 2, 1.0, out=np.frombuffer(bytearray(81), np.float64, 10, 1)
            ),
            ValueError,
            "out must be aligned",
        ),
        (
            lambda m: sd.prox_ksupport_sq(m.reshape(2, 5), 2, 1.0, out=np.empty(10)),
            ValueError,
            r"out must have shape \(2, 5\)",
        ),
        (lambda m: sd.prox_ksupport_sq_batch(m, 2, 1.0), ValueError, "M must be 2-D"),
        (
            lambda m: sd.prox_ksupport_sq_batch(m.reshape(2, 5, 1), 2, 1.0),
            ValueError,
            "M must be 2-D",
        ),
        (
            lambda m: sd.prox_ksupport_sq_batch(
                np.where(np.arange(10) == 7, np.nan, m).reshape(2, 5), 2, 1.0
            ),
            ValueError,
            r"M contains NaN or infinite values \(row 1\)",
        ),
        (
            lambda m: sd.prox_ksupport_sq_batch(m.reshape(2, 5), 0, 1.0),
            ValueError,
            "block_size must be >= 1",
        ),
        (
            lambda m: sd.prox_ksupport_sq_batch(m.reshape(2, 5), 2, -1.0),
            ValueError,
            "beta must be >= 0",
        ),
        (
            lambda m: sd.prox_ksupport_sq_batch(m.reshape(2, 5), 2, 1.0, threads=-1),
            ValueError,
            "threads must be None .every core. or a positive integer",
        ),
        (
            lambda m: sd.prox_ksupport_sq_batch(m.reshape(2, 5), 2, 1.0, threads=1.5),
            TypeError,
            "threads must be None .every core. or a positive integer",
        ),
        (
            lambda m: sd.prox_ksupport_sq_batch(m.reshape(2, 5), 2, 1.0, threads=True),
            TypeError,
            "threads must be None .every core. or a positive integer",
        ),
        (
            lambda m: sd.prox_ksupport_sq_batch(m.reshape(2, 5), 2, 1.0, out=np.empty((5, 2))),
            ValueError,
            "out must have shape",
        ),
        (
            lambda m: sd.prox_ksupport_sq_batch(np.empty((0, 3)), 2, 1.0),
            ValueError,
            "M must not be empty",
        ),
        (
            lambda m: sd.prox_ksupport_sq_batch(m.reshape(2, 5) + 0j, 2, 1.0),
            TypeError,
            "M must be real",
        ),
    ],
)
def test_bad_new_arguments_are_rejected(call, error, match):
    m = np.linspace(-1.0, 2.0, 10)
    if match is None:
        call(m)  # the control case: adjacent but not overlapping
        return
    with pytest.raises(error, match=match):
        call(m)


def test_compiled_core_rejects_what_the_api_would_never_pass():
    with pytest.raises(ValueError, match="sorted in descending"):
        _core.ksupport_norm_sq_sorted(np.array([1.0, 2.0]), 1)
    with pytest.raises(ValueError, match="non-negative"):
        _core.prox_sweep(np.array([1.0, -1.0]), 1, 1.0)
    with pytest.raises(ValueError, match="r must be >= 1"):
        _core.prox_search(np.array([1.0]), 0, 1.0)
    with pytest.raises(ValueError, match="same length"):
        _core.prox_batch(np.array([1.0]), np.array([1, 2], dtype=np.int64), np.array([1.0]))
    with pytest.raises(TypeError):  # no silent conversion inside the core
        _core.prox_sweep(np.array([1, 0]), 1, 1.0)


def test_layouts_and_dtypes_are_accepted(rng):
    M = rng.standard_normal((6, 8))
    expected = sd.ksupport_norm_sq(M, 3)
    assert sd.ksupport_norm_sq(np.asfortranarray(M), 3) == pytest.approx(expected, rel=1e-12)
    assert sd.ksupport_norm_sq(M[::-1, ::2].copy(), 3) == pytest.approx(
        sd.ksupport_norm_sq(M[:, ::2], 3), rel=1e-12
    )
    assert sd.ksupport_norm_sq(M.astype(np.float32), 3) == pytest.approx(expected, rel=1e-5)
    v = rng.standard_normal(20)
    assert sd.ksupport_norm_sq(v[::-3], 2) == pytest.approx(
        sd.ksupport_norm_sq(v[::-3].copy(), 2), rel=1e-15
    )
    assert sd.ksupport_norm_sq(np.array([3, -4, 0]), 1) == pytest.approx(49.0)  # integers
    assert sd.ksupport_norm_sq(np.array([True, False, True]), 1) == pytest.approx(4.0)  # bools
    m = np.abs(v)
    strided = sd.prox_ksupport_sq(m[::2], 3, 0.5)
    np.testing.assert_array_equal(strided.values, sd.prox_ksupport_sq(m[::2].copy(), 3, 0.5).values)
    assert sd.ksupport_norm_sq(np.ones(3), np.int64(2)) == pytest.approx(4.5)
    assert sd.ksupport_norm_sq(np.ones(3), 2.0) == pytest.approx(4.5)  # integral floats are fine


def test_inputs_are_not_modified(rng):
    m = np.abs(rng.standard_normal(50))
    before = m.copy()
    sd.prox_ksupport_sq(m, 4, 1.0)
    sd.ksupport_norm_sq(m, 4)
    np.testing.assert_array_equal(m, before)
