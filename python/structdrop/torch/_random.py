"""Counter-based random numbers for batched runs: the same per-run seed gives the same stream on
any device, for any number of runs, with no generator state to carry (so a CUDA graph can
replay it).

Every random number is a 32-bit hash of (run seed, stream, step, slot) computed with plain int64
tensor arithmetic (``lowbias32`` finaliser, Wellons 2018; multiplications split in 16-bit halves so
that no intermediate overflows int64). The bits are used as a uniform ``h / 2**32`` in [0, 1).
It is a statistical-quality hash, not a cryptographic one.
"""

from __future__ import annotations

import torch

__all__ = ["hash32", "run_keys", "uniform_field"]

_MASK32 = 0xFFFFFFFF
_TWO32 = float(2**32)


def _mul32(x: torch.Tensor, c: int) -> torch.Tensor:
    """(x * c) mod 2**32 for int64 x in [0, 2**32) without int64 overflow."""
    lo = c & 0xFFFF
    hi = c >> 16
    return (x * lo + (((x * hi) & 0xFFFF) << 16)) & _MASK32


def hash32(x: torch.Tensor) -> torch.Tensor:
    """lowbias32 integer hash of int64 values in [0, 2**32) (bijective on 32-bit words)."""
    x = x ^ (x >> 16)
    x = _mul32(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = _mul32(x, 0x846CA68B)
    return x ^ (x >> 16)


def run_keys(seeds: torch.Tensor, stream: int) -> torch.Tensor:
    """Per-run keys (int64 in [0, 2**32)) for non-negative int64 seeds and a stream number."""
    lo = seeds & _MASK32
    hi = (seeds >> 32) & _MASK32
    key = hash32(hash32(lo) ^ hi)
    return hash32(key ^ (stream & _MASK32))


def uniform_field(
    keys: torch.Tensor, steps: torch.Tensor, slots: int, dtype: torch.dtype
) -> torch.Tensor:
    """Uniforms in [0, 1) of shape (runs, len(steps), slots) for the given per-run keys.

    Entry [r, t, j] depends only on (keys[r], steps[t], j).
    """
    h = hash32(keys[:, None] ^ (steps[None, :] & _MASK32))
    j = torch.arange(slots, device=keys.device, dtype=torch.int64)
    h = hash32(h[:, :, None] ^ hash32(j + 0x9E3779B9 & _MASK32))
    if dtype == torch.float64:
        return h.to(torch.float64) / _TWO32
    # 24 bits are exact in float32, so the uniform stays strictly below 1.
    return (h >> 8).to(dtype) / float(2**24)
