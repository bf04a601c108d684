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
        >>> import numpy as np, structdrop as sd
        >>> problem = sd.paper_synthetic(seed=0, a=4, b=6, N=10, rank=2)
        >>> problem.X.shape, problem.Y.shape, int(np.linalg.matrix_rank(problem.M))
        ((6, 10), (4, 10), 2)
        >>> bool(np.allclose(problem.Y, problem.M @ problem.X))
        True
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

    Args:
        seed: seed of the generator, an integer >= 0.
        a, b, N: rows of Y, rows of X, and samples (columns of both), integers >= 1.
        rank: rank of M (at most min(a, b) in effect), an integer >= 1.

    Returns:
        :class:`SyntheticProblem`: X (b x N), Y = M X (a x N), M and the seed.

    Raises:
        TypeError: an argument that is not an integer.
        ValueError: a negative seed, or a size below 1.

    Example:
        >>> import structdrop as sd
        >>> problem = sd.paper_synthetic(seed=3)
        >>> problem.X.shape, problem.Y.shape, problem.M.shape
        ((100, 1000), (80, 1000), (80, 100))
        >>> problem == sd.paper_synthetic(seed=3)  # reproducible from the seed
        True
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
