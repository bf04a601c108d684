"""The masks and sample indices of :func:`structdrop.torch.batched_train`, for tests that replay
Algorithm 1 with an independent implementation (test support, not part of the package: it reaches
into batched_train's private drawing code, which it must follow exactly)."""

from __future__ import annotations

import numpy as np
import torch

from structdrop.torch._random import run_keys
from structdrop.torch._schemes import as_scheme_spec, check_width
from structdrop.torch.batched import _STREAM_MASK, _STREAM_SAMPLE, _draw, _Problem


def draws_for_testing(
    scheme: object,
    a: int,
    b: int,
    d: int,
    N: int,
    seeds,
    iterations: int,
    batch_size: int = 1,
    dtype: torch.dtype = torch.float64,
):
    """The masks and sample indices :func:`batched_train` uses for runs with the given seeds.

    Returns ``(masks, indices)`` as NumPy arrays: masks runs x iterations x B x d (x B x b x d for
    DropConnect; None for NoDropout), scaled by the inverse mean; indices runs x iterations x B.
    For tests that replay Algorithm 1 with an independent implementation.
    """
    spec = as_scheme_spec(scheme)
    check_width(spec, d)
    X = torch.zeros(b, N, dtype=dtype)
    Y = torch.zeros(a, N, dtype=dtype)
    prob = _Problem(X, Y, spec, a, b, d, torch.device("cpu"), dtype)
    seeds = torch.as_tensor(np.asarray(seeds, dtype=np.int64))
    steps = torch.arange(iterations, dtype=torch.int64)
    z, idx = _draw(
        prob, run_keys(seeds, _STREAM_MASK), run_keys(seeds, _STREAM_SAMPLE), steps, batch_size
    )
    return (None if z is None else z.numpy()), idx.numpy()
