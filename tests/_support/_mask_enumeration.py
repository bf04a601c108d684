"""Enumeration oracle of the unit mask schemes: every mask with its probability, written from each
scheme's definition (not from the package), shared by the scheme and objective suites."""

from __future__ import annotations

import itertools
import math

import numpy as np

from structdrop.schemes import (
    DropBlock,
    Dropout,
    MaskScheme,
    NoDropout,
    OverlappingDropBlock,
)


def unit_mask_distribution(scheme: MaskScheme, d: int) -> tuple[np.ndarray, np.ndarray]:
    """Every hidden-unit mask z in {0,1}^d the scheme can draw, with its probability.

    Built from the definitions, not from the package: Bernoulli products for Dropout/DropBlock and
    every seed pattern (2^(d - block_size + 1)) for overlapping DropBlock. Returns (Z, P) with Z of
    shape (M, d); masks reached by several seed patterns appear several times.
    """
    if isinstance(scheme, NoDropout):
        return np.ones((1, d)), np.ones(1)
    if isinstance(scheme, Dropout):
        masks, probs = [], []
        for z in itertools.product((0, 1), repeat=d):
            masks.append(z)
            probs.append(math.prod(scheme.theta if zi else 1 - scheme.theta for zi in z))
        return np.array(masks, dtype=float), np.array(probs)
    if isinstance(scheme, DropBlock):
        r = scheme.block_size
        masks, probs = [], []
        for keep in itertools.product((0, 1), repeat=d // r):
            masks.append([keep[i // r] for i in range(d)])
            probs.append(math.prod(scheme.theta if k else 1 - scheme.theta for k in keep))
        return np.array(masks, dtype=float), np.array(probs)
    if isinstance(scheme, OverlappingDropBlock):
        r, g = scheme.block_size, scheme.gamma
        masks, probs = [], []
        for seeds in itertools.product((0, 1), repeat=d - r + 1):
            z = [1] * d
            for j, fired in enumerate(seeds):
                if fired:
                    for i in range(j, j + r):
                        z[i] = 0
            masks.append(z)
            probs.append(math.prod(g if s else 1 - g for s in seeds))
        return np.array(masks, dtype=float), np.array(probs)
    raise TypeError(type(scheme))


def enumerated_stats(Z: np.ndarray, P: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean, covariance, C-bar) of a finite mask distribution, by definition."""
    mean = P @ Z
    second = (Z * P[:, None]).T @ Z
    cov = second - np.outer(mean, mean)
    return mean, cov, cov / np.outer(mean, mean)


def unit_schemes(d: int, theta: float = 0.65, gamma: float = 0.3) -> list[MaskScheme]:
    """Every unit scheme at width d: all block sizes dividing d (DropBlock), all
    1..d (overlapping)."""
    out: list[MaskScheme] = [NoDropout(), Dropout(theta)]
    out += [DropBlock(r, theta=theta) for r in range(1, d + 1) if d % r == 0]
    out += [OverlappingDropBlock(r, gamma=gamma) for r in range(1, d + 1)]
    return out


def assert_close(actual, expected, rtol=1e-12, what=""):
    actual = np.asarray(actual, dtype=float)
    expected = np.asarray(expected, dtype=float)
    scale = max(1.0, float(np.abs(expected).max())) if expected.size else 1.0
    err = float(np.abs(actual - expected).max()) if expected.size else 0.0
    assert err <= rtol * scale, f"{what}: max error {err:.3e} > {rtol:.1e} * {scale:.3e}"
