"""Mask schemes: construction, the C++ contract, and mask statistics against independent oracles.

Oracles: exhaustive enumeration of every mask (or every seed pattern) with its probability, written
here from the definition of each scheme; Monte Carlo with tolerances from the standard error.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import pickle

import numpy as np
import pytest
from _mask_enumeration import assert_close, enumerated_stats, unit_mask_distribution, unit_schemes  # noqa: E402

import structdrop as sd
from structdrop import _core
from structdrop.schemes import (
    DropBlock,
    DropConnect,
    Dropout,
    MaskScheme,
    NoDropout,
    OverlappingDropBlock,
)

# ---------------------------------------------------------------------------------------------
# Construction and the C++ contract
# ---------------------------------------------------------------------------------------------


def test_core_params_follow_the_cpp_enum():
    K, P = _core.SchemeKind, _core.SchemeParams
    assert NoDropout()._core_params() == P(K.none, 1.0, 1, 0.0)
    assert Dropout(0.3)._core_params() == P(K.dropout, 0.3, 1, 0.0)
    assert DropBlock(5, theta=0.4)._core_params() == P(K.dropblock, 0.4, 5, 0.0)
    assert OverlappingDropBlock(3, gamma=0.2)._core_params() == P(
        K.overlapping_dropblock, 1.0, 3, 0.2
    )
    assert DropConnect(0.7)._core_params() == P(K.dropconnect, 0.7, 1, 0.0)
    # the integers of the C++ enum structdrop::SchemeKind (cpp/objectives.hpp)
    assert [int(k) for k in (K.none, K.dropout, K.dropblock, K.overlapping_dropblock)] == [
        0,
        1,
        2,
        3,
    ]
    assert int(K.dropconnect) == 4
    for scheme in unit_schemes(4) + [DropConnect(0.5)]:
        params = scheme._core_params()
        assert type(params.kind) is K and type(params.block_size) is int
        assert type(params.theta) is float and type(params.gamma) is float
        assert params == P(params.kind, params.theta, params.block_size, params.gamma)
        assert pickle.loads(pickle.dumps(params)) == params
        assert hash(pickle.loads(pickle.dumps(params))) == hash(params)


def test_core_params_repr_reads_back():
    params = OverlappingDropBlock(3, theta=0.7)._core_params()
    text = repr(params)
    assert text.startswith(
        "SchemeParams(kind=SchemeKind.overlapping_dropblock, theta=1.0, block_size=3"
    )
    namespace = {"SchemeParams": _core.SchemeParams, "SchemeKind": _core.SchemeKind}
    assert eval(text, namespace) == params  # every double printed with repr's round trip
    assert Dropout(0.1 + 0.2)._core_params() != Dropout(0.3)._core_params()


def test_public_names_and_base_class():
    for cls in (NoDropout, Dropout, DropBlock, OverlappingDropBlock, DropConnect):
        assert issubclass(cls, MaskScheme)
        assert getattr(sd, cls.__name__) is cls
        # Each docstring names the paper's equation / lemma / theorem it implements.
        assert cls.__doc__ and any(ref in cls.__doc__ for ref in ("eq.", "Lemma", "Theorem")), cls


def test_schemes_are_frozen_hashable_and_compare_by_value():
    s = DropBlock(2, theta=0.5)
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.theta = 0.3  # type: ignore[misc]
    o = OverlappingDropBlock(2, gamma=0.25)
    with pytest.raises(dataclasses.FrozenInstanceError):
        o.gamma = 0.1  # type: ignore[misc]
    assert DropBlock(2, theta=0.5) == s and hash(DropBlock(2, theta=0.5)) == hash(s)
    assert (
        OverlappingDropBlock(2, gamma=0.25) == o
        and len({o, OverlappingDropBlock(2, gamma=0.25)}) == 1
    )
    assert Dropout(0.5) != DropConnect(0.5)


def test_numbers_are_normalised():
    assert DropBlock(np.int64(3), theta=np.float32(0.5)) == DropBlock(3, theta=0.5)
    assert type(DropBlock(2, theta=1).theta) is float
    assert type(OverlappingDropBlock(np.int32(2), gamma=0).block_size) is int


def test_overlapping_theta_resolves_gamma():
    for r, theta in [(1, 0.5), (3, 0.5), (4, 0.9), (7, 1e-6), (2, 1.0)]:
        s = OverlappingDropBlock(r, theta=theta)
        assert s.block_size == r
        assert s.gamma == pytest.approx(1.0 - theta ** (1.0 / r), rel=1e-13, abs=1e-16)
        assert s.theta == pytest.approx(theta, rel=1e-12)
        assert (1.0 - s.gamma) ** r == pytest.approx(theta, rel=1e-12)
    assert OverlappingDropBlock(3, gamma=0.2).theta == pytest.approx(0.8**3)
    assert OverlappingDropBlock(3, theta=1.0).gamma == 0.0


@pytest.mark.parametrize(
    "make, error, match",
    [
        (lambda: Dropout(0.0), ValueError, "theta"),
        (lambda: Dropout(1.5), ValueError, "theta"),
        (lambda: Dropout(-0.1), ValueError, "theta"),
        (lambda: Dropout(float("nan")), ValueError, "theta"),
        (lambda: Dropout("0.5"), TypeError, "theta"),
        (lambda: Dropout(True), TypeError, "theta"),
        (lambda: DropConnect(0.0), ValueError, "theta"),
        (lambda: DropConnect(2.0), ValueError, "theta"),
        (lambda: DropBlock(0, theta=0.5), ValueError, "block_size"),
        (lambda: DropBlock(1.5, theta=0.5), TypeError, "block_size"),
        (lambda: DropBlock(2, theta=1.01), ValueError, "theta"),
        (lambda: OverlappingDropBlock(2), ValueError, "exactly one"),
        (lambda: OverlappingDropBlock(2, gamma=0.1, theta=0.5), ValueError, "exactly one"),
        (lambda: OverlappingDropBlock(2, gamma=1.0), ValueError, "gamma"),
        (lambda: OverlappingDropBlock(2, gamma=-0.1), ValueError, "gamma"),
        (lambda: OverlappingDropBlock(2, gamma=float("inf")), ValueError, "gamma"),
        (lambda: OverlappingDropBlock(2, theta=0.0), ValueError, "theta"),
        (lambda: OverlappingDropBlock(2, theta=1.2), ValueError, "theta"),
        (lambda: OverlappingDropBlock(0, gamma=0.1), ValueError, "block_size"),
    ],
)
def test_bad_parameters(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_check_width():
    assert DropBlock(3, theta=0.5).check_width(6) == 6
    with pytest.raises(ValueError, match="divide"):
        DropBlock(4, theta=0.5).check_width(6)
    with pytest.raises(ValueError, match="block_size <= d"):
        OverlappingDropBlock(5, gamma=0.1).check_width(4)
    assert OverlappingDropBlock(4, gamma=0.1).check_width(4) == 4
    for scheme in (NoDropout(), Dropout(0.5), DropConnect(0.5), DropBlock(1, theta=0.5)):
        with pytest.raises(ValueError, match="d"):
            scheme.check_width(0)
        with pytest.raises(TypeError, match="d"):
            scheme.check_width(2.5)
    # The methods that take d all check it.
    with pytest.raises(ValueError, match="divide"):
        DropBlock(4, theta=0.5).mask_mean(6)
    with pytest.raises(ValueError, match="divide"):
        DropBlock(4, theta=0.5).sample_masks(6, 3, 0)
    with pytest.raises(ValueError, match="block_size <= d"):
        OverlappingDropBlock(5, gamma=0.1).characteristic_matrix(3)


def test_core_rejects_bad_parameters_directly():
    # The bindings validate too, whatever the Python layer passes.
    K, P = _core.SchemeKind, _core.SchemeParams
    with pytest.raises(ValueError, match="kind"):
        P(K(7))  # pybind11 builds SchemeKind(7); the parameters refuse it
    with pytest.raises(TypeError):
        P(2, 0.5, 3)  # a plain integer is not a SchemeKind
    with pytest.raises(ValueError, match="theta"):
        _core.scheme_stats(P(K.dropout, 0.0), 4)
    with pytest.raises(ValueError, match="divide"):
        _core.scheme_stats(P(K.dropblock, 0.5, 3), 4)
    with pytest.raises(ValueError, match="gamma"):
        _core.scheme_stats(P(K.overlapping_dropblock, 1.0, 2, 1.0), 4)
    with pytest.raises(ValueError, match="block_size"):
        _core.scheme_stats(P(K.overlapping_dropblock, 1.0, 5, 0.1), 4)
    with pytest.raises(ValueError, match="width"):
        _core.scheme_stats(P(K.none), 0)


# ---------------------------------------------------------------------------------------------
# Statistics against exhaustive enumeration
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("d", [1, 2, 3, 4, 5, 6])
def test_unit_statistics_match_enumeration(d):
    for scheme in unit_schemes(d) + unit_schemes(d, theta=0.2, gamma=0.75):
        Z, P = unit_mask_distribution(scheme, d)
        assert P.sum() == pytest.approx(1.0, abs=1e-14)
        mean, cov, cbar = enumerated_stats(Z, P)
        assert_close(scheme.mask_mean(d), mean, what=f"{scheme} mean")
        assert_close(scheme.mask_covariance(d), cov, what=f"{scheme} covariance")
        assert_close(scheme.characteristic_matrix(d), cbar, what=f"{scheme} C-bar")


def test_overlapping_statistics_known_values():
    # d = 3, r = 2: seeds 0, 1; unit 0 covered by {0}, unit 1 by {0, 1}, unit 2 by {1}.
    g = 0.3
    q = 1 - g
    s = OverlappingDropBlock(2, gamma=g)
    np.testing.assert_allclose(s.mask_mean(3), [q, q * q, q], rtol=1e-15)
    expected = np.array(
        [
            [1 / q - 1, 1 / q - 1, 0.0],
            [1 / q - 1, 1 / q**2 - 1, 1 / q - 1],
            [0.0, 1 / q - 1, 1 / q - 1],
        ]
    )
    np.testing.assert_allclose(s.characteristic_matrix(3), expected, rtol=1e-14)
    # C-bar is banded: zero for |i - j| >= block_size.
    cbar = OverlappingDropBlock(3, gamma=0.4).characteristic_matrix(12)
    i, j = np.indices(cbar.shape)
    assert np.all(cbar[np.abs(i - j) >= 3] == 0.0)
    assert np.all(cbar[np.abs(i - j) < 3] > 0.0)
    # gamma = 0: nothing dropped.
    z = OverlappingDropBlock(2, gamma=0.0)
    assert np.all(z.mask_mean(5) == 1.0) and np.all(z.characteristic_matrix(5) == 0.0)


def test_overlapping_large_width_band_matches_dense():
    s = OverlappingDropBlock(4, gamma=0.05)
    mean, beta, cbar, band = _core.scheme_stats(s._core_params(), 50, True)
    mean2, _, no_dense, band2 = _core.scheme_stats(s._core_params(), 50, False)
    assert no_dense is None and beta == 0.0
    np.testing.assert_array_equal(band, band2)
    np.testing.assert_array_equal(mean, mean2)
    for k in range(4):
        np.testing.assert_array_equal(band[k, : 50 - k], np.diagonal(cbar, k))


def test_simple_schemes_closed_forms():
    d = 6
    beta = (1 - 0.4) / 0.4
    np.testing.assert_allclose(Dropout(0.4).characteristic_matrix(d), beta * np.eye(d), rtol=1e-15)
    blk = DropBlock(3, theta=0.4).characteristic_matrix(d)
    assert np.all(blk[:3, :3] == pytest.approx(beta)) and np.all(blk[:3, 3:] == 0)
    assert np.all(NoDropout().characteristic_matrix(d) == 0)
    assert np.all(NoDropout().mask_mean(d) == 1)
    assert Dropout(0.4).beta == pytest.approx(beta)


@pytest.mark.parametrize("b, d", [(1, 1), (2, 2), (2, 3), (3, 2)])
def test_dropconnect_statistics_match_enumeration(b, d):
    theta = 0.35
    s = DropConnect(theta)
    masks, probs = [], []
    for z in itertools.product((0, 1), repeat=b * d):
        masks.append(z)  # row-major flattening of the b x d mask
        probs.append(math.prod(theta if zi else 1 - theta for zi in z))
    mean, cov, cbar = enumerated_stats(np.array(masks, dtype=float), np.array(probs))
    assert_close(s.mask_mean(d, in_features=b).ravel(), mean)
    assert_close(s.mask_mean(d), np.full(d, theta))
    assert_close(s.mask_covariance(d, in_features=b), cov)
    assert_close(s.characteristic_matrix(d, in_features=b), cbar)
    for method in (s.mask_covariance, s.characteristic_matrix):
        with pytest.raises(ValueError, match="in_features"):
            method(d)
    with pytest.raises(ValueError, match="in_features"):
        s.sample_masks(d, 3, 0)


def test_width_scaled_schemes_eq7():
    theta_bar, d, r = 0.6, 12, 3
    beta_bar = (1 - theta_bar) / theta_bar
    s = DropBlock.for_width(theta_bar, d, r)
    assert s.block_size == r
    assert s.theta == pytest.approx(
        theta_bar * r / (theta_bar * r + (1 - theta_bar) * d), rel=1e-15
    )
    assert s.beta == pytest.approx(d / r * beta_bar, rel=1e-13)
    assert Dropout.for_width(theta_bar, d).beta == pytest.approx(d * beta_bar, rel=1e-13)
    assert DropBlock.for_width(theta_bar, r, r).theta == pytest.approx(theta_bar)


# ---------------------------------------------------------------------------------------------
# Sampling
# ---------------------------------------------------------------------------------------------


def test_sample_masks_shape_values_and_reproducibility():
    for scheme in unit_schemes(6):
        masks = scheme.sample_masks(6, 50, 123)
        assert masks.shape == (50, 6) and masks.dtype == np.float64
        assert set(np.unique(masks)) <= {0.0, 1.0}
        np.testing.assert_array_equal(masks, scheme.sample_masks(6, 50, np.random.default_rng(123)))
        assert scheme.sample_masks(6, 0, 1).shape == (0, 6)
    s = DropConnect(0.5)
    m = s.sample_masks(4, 7, 5, in_features=3)
    assert m.shape == (7, 3, 4)
    np.testing.assert_array_equal(m, s.sample_masks(4, 7, 5, in_features=3))
    assert not np.array_equal(
        Dropout(0.5).sample_masks(20, 20, 1), Dropout(0.5).sample_masks(20, 20, 2)
    )
    with pytest.raises(TypeError, match="rng"):
        Dropout(0.5).sample_masks(3, 2, "seed")
    with pytest.raises(ValueError, match="count"):
        Dropout(0.5).sample_masks(3, -1, 0)


def test_sampled_masks_have_the_scheme_structure():
    blk = DropBlock(3, theta=0.5).sample_masks(9, 200, 7)
    assert np.all(blk.reshape(200, 3, 3) == blk.reshape(200, 3, 3)[:, :, :1])
    # Overlapping: every dropped run is made of whole blocks, so runs of zeros have length >= r
    # and no run touches only part of a block at the layer's edge.
    r = 3
    over = OverlappingDropBlock(r, gamma=0.2).sample_masks(10, 500, 8)
    for row in over:
        runs = [len(list(g)) for k, g in itertools.groupby(row) if k == 0.0]
        assert all(length >= r for length in runs)
    assert np.all(OverlappingDropBlock(2, gamma=0.0).sample_masks(5, 20, 1) == 1.0)
    whole = OverlappingDropBlock(5, gamma=0.5).sample_masks(5, 100, 2)
    assert np.all((whole.sum(axis=1) == 0) | (whole.sum(axis=1) == 5))


def _z_scores_of_moments(
    masks: np.ndarray, mean: np.ndarray, pair: np.ndarray
) -> tuple[float, float]:
    """Largest |z| of the empirical E z_i and E z_i z_j against exact values (0/1 variables)."""
    n = masks.shape[0]
    emp_mean = masks.mean(axis=0)
    emp_pair = (masks.T @ masks) / n
    se_mean = np.sqrt(np.maximum(mean * (1 - mean), 1e-300) / n)
    se_pair = np.sqrt(np.maximum(pair * (1 - pair), 1e-300) / n)
    return float(np.max(np.abs(emp_mean - mean) / se_mean)), float(
        np.max(np.abs(emp_pair - pair) / se_pair)
    )


@pytest.mark.parametrize(
    "scheme, d",
    [
        (Dropout(0.7), 5),
        (DropBlock(2, theta=0.4), 6),
        (OverlappingDropBlock(3, gamma=0.15), 8),
        (OverlappingDropBlock(1, gamma=0.4), 4),
    ],
)
def test_sampled_moments_match_statistics(scheme, d):
    masks = scheme.sample_masks(d, 100_000, 99)
    mean = scheme.mask_mean(d)
    pair = (scheme.characteristic_matrix(d) + 1.0) * np.outer(mean, mean)  # P(z_i = z_j = 1)
    z_mean, z_pair = _z_scores_of_moments(masks, mean, pair)
    assert z_mean < 5.0 and z_pair < 5.0, (z_mean, z_pair)


def test_overlapping_cbar_against_a_million_sampled_masks():
    """C-bar of overlapping DropBlock vs the empirical covariance of 10^6 masks (tolerance from the
    SE)."""
    d, r = 10, 3
    scheme = OverlappingDropBlock(r, theta=0.6)
    n = 1_000_000
    masks = scheme.sample_masks(d, n, 2020)
    mean = scheme.mask_mean(d)
    cbar = scheme.characteristic_matrix(d)
    # Empirical C-bar_ij = (mean of z_i z_j)/(mu_i mu_j) - 1 with the exact mu; its SE follows from
    # the Bernoulli variance of z_i z_j.
    m32 = masks.astype(np.float32)
    pair_emp = (m32.T.astype(np.float64) @ m32.astype(np.float64)) / n
    pair = (cbar + 1.0) * np.outer(mean, mean)
    se = np.sqrt(pair * (1 - pair) / n) / np.outer(mean, mean)
    z = np.abs((pair_emp / np.outer(mean, mean) - 1.0) - cbar) / se
    assert z.max() < 5.5, z.max()
    # The empirical covariance matrix itself (unbiased), against mask_covariance: each entry is a
    # mean of (z_i - mu_i)(z_j - mu_j), whose variance is <= E (z_i - mu_i)^2 <= 1/4.
    emp_cov = np.cov(masks, rowvar=False)
    cov = scheme.mask_covariance(d)
    se_bound = np.sqrt(np.outer(mean * (1 - mean), np.ones(d)).clip(max=0.25) / n)
    assert np.max(np.abs(emp_cov - cov) / se_bound) < 5.5
