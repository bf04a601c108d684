"""The prox's "is it already sorted?" check against input that is sorted almost everywhere.

Descending non-negative float64 input goes to the O(n) sweep, which assumes the order; the check
reads the input in blocks of 64 values (and two at a time inside a block). An input that descends
inside every block but rises where two blocks meet, or rises once at any one position (every
offset within a block and within a pair of lanes, the last entry, the last partial block), must
go to the selection instead, and the sorted-only entry points must reject it. The reference sorts
a copy first (the sweep on sorted input, a different code path from the one under test) and is
checked against an independent bisection on tau.
"""

from __future__ import annotations

import numpy as np
import pytest
from _oracles import bisection_prox, sorted_sweep

import structdrop as sd
from structdrop import _core

BLOCK = 64  # the check's block (cpp/ksupport.cpp, SortedProfile::kBlock)


def descending(n: int, rng: np.random.Generator) -> np.ndarray:
    return np.sort(rng.uniform(1.0, 2.0, n))[::-1].copy()


def almost_sorted(n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Inputs with at least one ascent, each descending everywhere else."""
    out = {}
    blocks = -(-n // BLOCK)
    # every block descending, every block above the one before: an ascent at each boundary
    if blocks > 1:
        levels = np.repeat(np.arange(blocks, dtype=float), BLOCK)[:n]
        out["rising blocks"] = levels + descending(n, rng) - 1.0
    # one ascent, at each block boundary, at each position of the first two blocks, at the end
    positions = set(range(1, min(n, 2 * BLOCK + 3)))
    positions |= {b * BLOCK for b in range(1, blocks)} | {n - 1, n - 2, n - BLOCK // 2}
    for p in sorted(q for q in positions if 0 < q < n):
        x = descending(n, rng)
        x[p] = 3.0 * x[0]  # the largest: a sweep that took the order on trust would misplace it
        out[f"one ascent at {p}"] = x
    return out


@pytest.mark.parametrize("n", [5, 63, 64, 65, 200, 1000, 4099])
def test_input_descending_within_blocks_is_not_taken_as_sorted(n):
    rng = np.random.default_rng(n)
    for name, x in almost_sorted(n, rng).items():
        assert np.any(np.diff(x) > 0), name
        # the entry points that require sorted input say so
        with pytest.raises(ValueError, match="descending"):
            _core.prox_sweep(x, 1, 1.0)
        with pytest.raises(ValueError, match="descending"):
            _core.ksupport_norm_sq_sorted(x, 1)
        for r, beta in ((1, 1.0), (max(1, n // 20), 0.5), (max(1, n // 2), 10.0)):
            if r >= n:
                continue
            res = sd.prox_ksupport_sq(x, r, beta)
            ref = sorted_sweep(x, r, beta)
            np.testing.assert_allclose(res.values, ref, rtol=1e-12, atol=1e-14, err_msg=name)
            np.testing.assert_allclose(bisection_prox(x, r, beta), ref, rtol=1e-8, err_msg=name)


def test_sorted_input_itself_takes_the_sweep_and_agrees():
    """The check's other side: truly sorted input (ties included) gives the sweep's answer."""
    rng = np.random.default_rng(7)
    for n in (64, 65, 1000):
        x = descending(n, rng)
        x[n // 3 : n // 3 + 70] = x[n // 3]  # a run of ties across a block boundary
        x = np.ascontiguousarray(np.sort(x)[::-1])
        for r, beta in ((1, 1.0), (n // 20 or 1, 0.5)):
            res = sd.prox_ksupport_sq(x, r, beta)
            direct = _core.prox_sweep(x, r, beta)
            np.testing.assert_array_equal(res.values, direct[0])
            assert (res.rho, res.rank, res.objective) == tuple(direct[1:])
