"""Built-in data sets: the paper's synthetic regression setup (Section 5.1)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._results import ResultEquality
from ._validation import as_int

__all__ = ["SyntheticProblem", "paper_synthetic"]


@dataclass(frozen=True, eq=False)
class SyntheticProblem(ResultEquality):
    """A linear regression problem y = M x with a low-rank M.

    Attributes:
        X: inputs, b x N, entries N(0, 1).
        Y: targets M X, a x N.
        M: the true map U_true V_true^T (a x b, rank ``rank``).
        seed: the seed that generated it.

    Example:
        >>> import structdrop as sd
        >>> sd.paper_synthetic(seed=0, a=2, b=3, N=4, rank=1).X.shape
        (3, 4)
    """

    X: np.ndarray
    Y: np.ndarray
    M: np.ndarray
    seed: int


def paper_synthetic(
    seed: int = 0, a: int = 80, b: int = 100, N: int = 1000, rank: int = 50
) -> SyntheticProblem:
    """The paper's synthetic setup: a, b, N = 80, 100, 1000 and y = M x with rank M = 50.

    M = U_true V_true^T. All entries of X, U_true (a x rank) and V_true (b x rank) are i.i.d.
    N(0, 1), drawn in that order from ``numpy.random.default_rng(seed)``. Note that X (b x N with
    b < N) does not have full column rank, so the paper's Theorem 7 applies only after projecting
    onto X's row space (:func:`structdrop.dropblock_global_min` with ``X=``).

    Returns:
        A :class:`SyntheticProblem` (X, Y = M X, M and the seed).

    Raises:
        TypeError: a non-integer argument.
        ValueError: seed < 0, or a size < 1.

    Example:
        >>> import numpy as np, structdrop as sd
        >>> p = sd.paper_synthetic(seed=1, a=4, b=5, N=20, rank=2)
        >>> p.Y.shape, int(np.linalg.matrix_rank(p.M))
        ((4, 20), 2)
    """
    seed = as_int("seed", seed, minimum=0)
    a, b, N, rank = (
        as_int(name, v, minimum=1) for name, v in (("a", a), ("b", b), ("N", N), ("rank", rank))
    )
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((b, N))
    U_true = rng.standard_normal((a, rank))
    V_true = rng.standard_normal((b, rank))
    M = U_true @ V_true.T
    return SyntheticProblem(X=X, Y=M @ X, M=M, seed=seed)
