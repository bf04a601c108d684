"""Brute-force laws of DropBlock masks on tiny maps, for the torch DropBlock2d/3d tests.

Everything here is built by painting blocks cell by cell and enumerating every seed (or tile)
pattern; it shares no formula with structdrop.torch.dropblock_nd (no cover counts, no products over
axes, no gamma-from-p identity beyond the definition of the seed rate).
"""

from __future__ import annotations

import itertools

import numpy as np


def seed_positions(shape, block, seeds):
    """All seed corners s (tuples) of the overlapping law: full = block meets the map,
    valid = inside."""
    ranges = []
    for n, b in zip(shape, block):
        ranges.append(range(1 - b, n) if seeds == "full" else range(0, n - b + 1))
    return list(itertools.product(*ranges))


def cover_matrix(shape, block, seeds):
    """S x U 0/1 matrix: seed s drops unit u (its block s + [0, b) painted cell by cell,
    clipped)."""
    units = list(itertools.product(*[range(n) for n in shape]))
    index = {u: i for i, u in enumerate(units)}
    positions = seed_positions(shape, block, seeds)
    A = np.zeros((len(positions), len(units)))
    for j, s in enumerate(positions):
        for offset in itertools.product(*[range(b) for b in block]):
            cell = tuple(si + oi for si, oi in zip(s, offset))
            if cell in index:
                A[j, index[cell]] = 1.0
    return A


def overlapping_law(shape, block, seeds, p):
    """(keep patterns P x U, probabilities P) over all seed patterns; gamma from interior rate p."""
    gamma = 1.0 - (1.0 - p) ** (1.0 / np.prod(block))
    A = cover_matrix(shape, block, seeds)
    S = A.shape[0]
    patterns = np.array(list(itertools.product([0.0, 1.0], repeat=S)))
    fired = patterns.sum(1)
    prob = gamma**fired * (1.0 - gamma) ** (S - fired)
    keep = ((patterns @ A) == 0).astype(float)
    return keep, prob


def tile_law(shape, block, p, random_offset):
    """(keep patterns, probabilities) of the non-overlapping tiling (all offsets, all tile
    patterns)."""
    units = list(itertools.product(*[range(n) for n in shape]))
    offsets = (
        list(itertools.product(*[range(b) for b in block]))
        if random_offset
        else [(0,) * len(shape)]
    )
    keeps, probs = [], []
    for off in offsets:
        tile_of = [tuple((ui + oi) // b for ui, oi, b in zip(u, off, block)) for u in units]
        tiles = sorted(set(tile_of))
        for bits in itertools.product([0.0, 1.0], repeat=len(tiles)):
            kept = dict(zip(tiles, bits))
            keeps.append([kept[t] for t in tile_of])
            k = sum(bits)
            probs.append((1 - p) ** k * p ** (len(tiles) - k) / len(offsets))
    return np.array(keeps), np.array(probs)


def moments(keep, prob):
    """Mean and covariance of the 0/1 keep indicators under the enumerated law."""
    mu = prob @ keep
    second = keep.T @ (prob[:, None] * keep)
    return mu, second - np.outer(mu, mu)
