"""Mask schemes of dropout-style training, each knowing its own statistics and exact objective.

Every scheme is a small frozen dataclass. For the hidden-unit schemes (all but DropConnect) the
network output under a mask z in {0, 1}^d is ``U diag(mu)^-1 diag(z) V^T X`` (eq. 15), mu = E[z];
the schemes provide

- ``mask_mean(width)``: mu; ``mask_covariance(width)``: C = Cov(z);
- ``characteristic_matrix(width)``: C-bar = diag(mu)^-1 C diag(mu)^-1 (eq. 16);
- ``sample_masks(width, count, rng)``: ``count`` masks z as rows of a float 0/1 array (unscaled);
- ``regularizer(U, V, X)`` and ``objective(X, Y, U, V)``: the exact expectation over the masks of
  the stochastic squared loss, minus / including the fit term ||Y - U V^T X||^2 (Lemma 10, eq. 18);
- ``check_width(width)`` and ``_core_params()`` (the ``_core.SchemeParams`` the C++ core takes).

Shapes (the paper's): X is b x N, Y is a x N, U is a x d, V is b x d; the methods call the hidden
width d ``width``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Union

import numpy as np

from . import _core
from ._blocks import check_block_width, seed_probability
from ._migration import positional_became_keyword, renamed_keywords, warn_old_spelling
from ._objective_terms import (
    ObjectiveTerms,
    _check_factors,
    _terms,
    factors_agree,
    inputs_before_targets,
)
from ._validation import as_int, as_probability
from .moments import data_moments
from .width import theta_for_width

__all__ = [
    "DropBlock",
    "DropConnect",
    "Dropout",
    "MaskScheme",
    "NoDropout",
    "OverlappingDropBlock",
]

RandomLike = Union[None, int, np.random.Generator]


def _rng(rng: RandomLike) -> np.random.Generator:
    if isinstance(rng, (bool, np.bool_)):
        raise TypeError("rng must be a numpy Generator, an integer seed or None, got a bool")
    if rng is None or isinstance(rng, (int, np.integer, np.random.Generator)):
        return np.random.default_rng(rng)
    raise TypeError(
        f"rng must be a numpy Generator, an integer seed or None, got {type(rng).__name__}"
    )


#: The order of (X, Y, U, V) before 1.0 was (Y, U, V, X): accepted where the shapes prove it.
_inputs_first = functools.partial(
    inputs_before_targets,
    new_names=("X", "Y", "U", "V"),
    old_names=("Y", "U", "V", "X"),
    shapes_agree=factors_agree,
)


#: The methods whose width argument was called ``d`` before 1.0 (see MaskScheme.__init_subclass__).
_WIDTH_METHODS = (
    "check_width",
    "mask_mean",
    "characteristic_matrix",
    "mask_covariance",
    "sample_masks",
    "for_width",
)


def _accept_old_width_keyword(cls: type) -> None:
    """Wrap the width methods that ``cls`` defines so that ``d=`` still works (FutureWarning)."""
    for name in _WIDTH_METHODS:
        method = cls.__dict__.get(name)
        if method is None:
            continue
        wrap = renamed_keywords(f"{cls.__name__}.{name}", d="width")
        if isinstance(method, classmethod):
            setattr(cls, name, classmethod(wrap(method.__func__)))
        else:
            setattr(cls, name, wrap(method))


@dataclass(frozen=True)
class MaskScheme:
    """Base class of the mask schemes (see the module docstring for the common interface).

    Not used directly: take one of :class:`NoDropout`, :class:`Dropout`, :class:`DropBlock`,
    :class:`OverlappingDropBlock` or :class:`DropConnect`. The width of the hidden layer (d in the
    paper) is the argument ``width`` of every method (``d=`` before 1.0, still accepted with a
    FutureWarning).

    Example:
        >>> import structdrop as sd
        >>> isinstance(sd.Dropout(0.5), sd.MaskScheme)
        True
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # Every scheme overrides some width methods: wrap each override once, here, instead of
        # decorating a dozen methods by hand.
        super().__init_subclass__(**kwargs)
        _accept_old_width_keyword(cls)

    # --- what the C++ core needs -------------------------------------------------------------
    def _core_params(self) -> _core.SchemeParams:
        """The scheme as the C++ core takes it (unused: theta 1.0, block_size 1, gamma 0.0)."""
        raise NotImplementedError

    def check_width(self, width: object) -> int:
        """Check that the scheme applies to a hidden layer of ``width`` units.

        Returns:
            ``width`` as a Python int.

        Raises:
            TypeError: ``width`` is not an integer.
            ValueError: ``width`` < 1, or the scheme's blocks do not fit it (DropBlock: block_size
                must divide it; OverlappingDropBlock: block_size <= width).

        Example:
            >>> import structdrop as sd
            >>> sd.DropBlock(2, theta=0.5).check_width(6)
            6
        """
        return as_int("width", width, minimum=1)

    def _stats(self, width: object, *, dense: bool = False):
        width = self.check_width(width)
        return _core.scheme_stats(self._core_params(), width, dense)

    # --- mask statistics ----------------------------------------------------------------------
    def mask_mean(self, width: int) -> np.ndarray:
        """mu = E[z], the mask means of the ``width`` hidden units (eq. 15).

        Returns:
            A float64 array of ``width`` entries.

        Raises:
            TypeError, ValueError: as :meth:`check_width`.

        Example:
            >>> import structdrop as sd
            >>> sd.Dropout(0.8).mask_mean(3)
            array([0.8, 0.8, 0.8])
        """
        mean, _, _, _ = self._stats(width)
        return mean

    def characteristic_matrix(self, width: int) -> np.ndarray:
        """C-bar = diag(mu)^-1 Cov(z) diag(mu)^-1 (eq. 16).

        Returns:
            A ``width`` x ``width`` float64 array.

        Raises:
            TypeError, ValueError: as :meth:`check_width`.

        Example:
            >>> import structdrop as sd
            >>> sd.DropBlock(2, theta=0.5).characteristic_matrix(4)
            array([[1., 1., 0., 0.],
                   [1., 1., 0., 0.],
                   [0., 0., 1., 1.],
                   [0., 0., 1., 1.]])
        """
        raise NotImplementedError

    def mask_covariance(self, width: int) -> np.ndarray:
        """C = Cov(z) = diag(mu) C-bar diag(mu), from :meth:`mask_mean` and
        :meth:`characteristic_matrix` (whose errors it raises).

        Returns:
            C, of the shape of the characteristic matrix.

        Raises:
            TypeError, ValueError: as :meth:`check_width`.

        Example:
            >>> import numpy as np, structdrop as sd
            >>> bool(np.all(sd.Dropout(0.5).mask_covariance(2) == 0.25 * np.eye(2)))
            True
        """
        mu = self.mask_mean(width)
        return self.characteristic_matrix(width) * np.outer(mu, mu)

    def sample_masks(self, width: int, count: int, rng: RandomLike = None) -> np.ndarray:
        """``count`` independent masks z of a layer of ``width`` units.

        The masks are unscaled: the network uses z / mask_mean(width). ``rng`` is a numpy
        Generator or an integer seed (the same seed gives the same masks).

        Returns:
            A (count, width) float64 array of 0/1, one mask a row.

        Raises:
            TypeError: a non-integer width or count, or an ``rng`` that is neither None, an int
                nor a numpy Generator.
            ValueError: as :meth:`check_width`, or count < 0.

        Example:
            >>> import structdrop as sd
            >>> sd.DropBlock(2, theta=0.5).sample_masks(4, 2, rng=0)
            array([[0., 0., 1., 1.],
                   [1., 1., 1., 1.]])
        """
        raise NotImplementedError

    # --- exact objectives ---------------------------------------------------------------------
    @_inputs_first("objective_terms")
    def objective_terms(self, X: object, Y: object, U: object, V: object) -> ObjectiveTerms:
        """fit, regulariser and their sum: the exact E_z of the stochastic loss (Lemma 10, eq. 17).

        Computes the data moments (one O((a + b) b N) pass, C++), then the terms from them. To
        evaluate many (U, V) on the same data, cache ``structdrop.data_moments(X, Y)`` and call
        ``structdrop.objective_terms(scheme, U, V, moments)``.

        Args:
            X: inputs, b x N (samples are columns).
            Y: targets, a x N.
            U: a x d output weights.
            V: b x d input weights.

        Inputs come before targets (1.0). The order before 1.0, ``(Y, U, V, X)``, still works
        where the shapes prove it (FutureWarning); shapes that fit both orders (a = b and N = d)
        need the keyword call ``objective_terms(X=X, Y=Y, U=U, V=V)``.

        Returns:
            An :class:`~structdrop.objectives.ObjectiveTerms` (fit, regularizer, objective).

        Raises:
            ValueError: inconsistent shapes, NaN/inf entries, a scheme that does not apply at
                width d, or an objective that overflows float64.
            TypeError: non-numeric arrays, or positional arrays whose shapes fit both orders.

        Example:
            >>> import numpy as np, structdrop as sd
            >>> X, Y = np.eye(2, 3), np.ones((1, 3))
            >>> sd.Dropout(0.5).objective_terms(X, Y, np.ones((1, 2)), np.eye(2))
            ObjectiveTerms(fit=1.0, regularizer=2.0, objective=3.0)
        """
        moments = data_moments(X, Y)
        u, v = _check_factors(U, V, moments, need_targets=True)
        return _terms(self, u, v, moments, paper=False)

    @_inputs_first("objective")
    def objective(self, X: object, Y: object, U: object, V: object) -> float:
        """E_z ||Y - U diag(mu)^-1 diag(z) V^T X||_F^2, exactly (Lemma 10, eq. 17).

        Arguments, argument order and cost as :meth:`objective_terms`.

        Returns:
            The exact expectation of the stochastic loss, a float.

        Raises:
            ValueError, TypeError: as :meth:`objective_terms`.

        Example:
            >>> import numpy as np, structdrop as sd
            >>> X, Y = np.eye(2, 3), np.ones((1, 3))
            >>> sd.Dropout(0.5).objective(X, Y, np.ones((1, 2)), np.eye(2))
            3.0
        """
        return self.objective_terms(X=X, Y=Y, U=U, V=V).objective

    def regularizer(self, U: object, V: object, X: object) -> float:
        """The scheme's exact regulariser E_z[loss] - ||Y - U V^T X||^2 (independent of Y).

        Args:
            U: a x d output weights.
            V: b x d input weights.
            X: inputs, b x N.

        Returns:
            The regulariser, a float >= 0.

        Raises:
            ValueError: inconsistent shapes, NaN/inf entries, a scheme that does not apply at
                width d, or a regulariser that overflows float64.
            TypeError: non-numeric arrays.

        Example:
            >>> import numpy as np, structdrop as sd
            >>> sd.Dropout(0.5).regularizer(np.ones((1, 2)), np.eye(2), np.eye(2, 3))
            2.0
        """
        moments = data_moments(X)
        u, v = _check_factors(U, V, moments, need_targets=False)
        return _terms(self, u, v, moments, paper=False).regularizer


_accept_old_width_keyword(MaskScheme)


@dataclass(frozen=True)
class NoDropout(MaskScheme):
    """No mask: z = 1, C-bar = 0 (eq. 16).

    The objective is the plain fit ||Y - U V^T X||^2 (eq. 1 without dropout).

    Example:
        >>> import structdrop as sd
        >>> sd.NoDropout().sample_masks(3, 1)
        array([[1., 1., 1.]])
    """

    def _core_params(self) -> _core.SchemeParams:
        return _core.SchemeParams(_core.SchemeKind.none)

    def characteristic_matrix(self, width: int) -> np.ndarray:
        width = self.check_width(width)
        return np.zeros((width, width))

    def sample_masks(self, width: int, count: int, rng: RandomLike = None) -> np.ndarray:
        width = self.check_width(width)
        n = as_int("count", count, minimum=0)
        _rng(rng)
        return np.ones((n, width))


@dataclass(frozen=True)
class _KeepProbability(MaskScheme):
    """A scheme with one keep probability ``theta`` for every masked entry (Dropout, DropConnect):
    theta is checked on construction, and beta = (1 - theta)/theta."""

    theta: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "theta", as_probability("theta", self.theta))

    @property
    def beta(self) -> float:
        """(1 - theta)/theta."""
        return (1.0 - self.theta) / self.theta


@dataclass(frozen=True)
class Dropout(_KeepProbability):
    """Dropout: z_i i.i.d. Bernoulli(theta), units rescaled by 1/theta.

    Regulariser beta sum_i ||u_i||^2 ||X^T v_i||^2, beta = (1 - theta)/theta (eq. 2; Corollary 11);
    C-bar = beta I (Section 3).

    Args:
        theta: keep probability of a unit, in (0, 1].

    Raises:
        ValueError: theta outside (0, 1].
        TypeError: a non-numeric theta.

    Example:
        >>> import structdrop as sd
        >>> sd.Dropout(0.5).beta
        1.0
    """

    @classmethod
    def for_width(cls, theta_bar: float, width: int) -> Dropout:
        """Dropout with the width-scaled retain probability theta(d) of eq. 7 (r = 1).

        Returns:
            ``Dropout(theta_for_width(theta_bar, width, 1))``.

        Raises:
            ValueError: theta_bar outside (0, 1] or width < 1.
            TypeError: non-numeric arguments.

        Example:
            >>> import structdrop as sd
            >>> sd.Dropout.for_width(0.5, 2)
            Dropout(theta=0.3333333333333333)
        """
        return cls(theta_for_width(theta_bar, width, 1))

    def _core_params(self) -> _core.SchemeParams:
        return _core.SchemeParams(_core.SchemeKind.dropout, self.theta)

    def characteristic_matrix(self, width: int) -> np.ndarray:
        width = self.check_width(width)
        return self.beta * np.eye(width)

    def sample_masks(self, width: int, count: int, rng: RandomLike = None) -> np.ndarray:
        width = self.check_width(width)
        n = as_int("count", count, minimum=0)
        return (_rng(rng).random((n, width)) < self.theta).astype(np.float64)


def _dropblock_old_order(init: Callable[..., None]) -> Callable[..., None]:
    """Accept the order before 1.0, ``DropBlock(theta, block_size)``, where the values prove it.

    Two positional numbers are the old order when the first cannot be a block size (it is not
    an integer: ``DropBlock(0.5, 3)``; an invalid block size then gets the usual error) or when
    they are a valid (theta, block_size) pair (``DropBlock(1, 4)``; ``DropBlock(1, 1)`` means the
    same in either order). The old call warns (FutureWarning); a positional theta in the new order
    (``DropBlock(3, 0.5)``, never valid) is a TypeError showing ``theta=``.
    """

    def fits(value: object, check: Callable[[object], object]) -> bool:
        try:
            check(value)
        except (TypeError, ValueError):
            return False
        return True

    def old_order(first: object, second: object) -> bool:
        if not fits(first, lambda v: as_int("block_size", v)):
            return True
        return fits(first, lambda v: as_probability("theta", v)) and fits(
            second, lambda v: as_int("block_size", v, minimum=1)
        )

    @functools.wraps(init)
    def wrapper(self: DropBlock, *args: Any, **kwargs: Any) -> None:
        if len(args) == 1 and "block_size" in kwargs and "theta" not in kwargs:
            args = (args[0], kwargs.pop("block_size"))  # DropBlock(0.5, block_size=3), old
        if len(args) == 2 and "theta" not in kwargs and "block_size" not in kwargs:
            first, second = args
            if old_order(first, second):
                warn_old_spelling(
                    "DropBlock(theta, block_size) (the order before 1.0)",
                    f"DropBlock({second!r}, theta={first!r})",
                )
                return init(self, second, theta=first)
            raise TypeError(
                "DropBlock takes (block_size, *, theta) since structdrop 1.0: write "
                f"DropBlock({first!r}, theta={second!r})"
            )
        return init(self, *args, **kwargs)

    return wrapper


@dataclass(frozen=True, init=False)
class DropBlock(MaskScheme):
    """DropBlock on non-overlapping blocks of ``block_size`` consecutive units.

    The paper's DropBlockSample.
    Each of the k = d / block_size blocks is kept with probability theta (i.i.d.), units rescaled by
    1/theta. Regulariser beta sum_i ||U_i V_i^T X||_F^2 over the blocks (Lemma 1, eq. 5);
    C-bar = beta BlkDiag(1 1^T, ..., 1 1^T) (Section 3). block_size must divide d.

    Args:
        block_size: r, the number of consecutive units in a block (>= 1).
        theta: keep probability of a block, in (0, 1] (keyword-only). The order before 1.0,
            ``DropBlock(theta, block_size)``, still works where the values prove it, with a
            FutureWarning.

    Raises:
        ValueError: theta outside (0, 1] or block_size < 1.
        TypeError: a non-numeric argument, or theta by position in the 1.0 order.

    Example:
        >>> import structdrop as sd
        >>> scheme = sd.DropBlock(3, theta=0.5)
        >>> scheme.mask_mean(6)
        array([0.5, 0.5, 0.5, 0.5, 0.5, 0.5])
    """

    block_size: int
    theta: float

    @_dropblock_old_order
    def __init__(self, block_size: int, *, theta: float) -> None:
        object.__setattr__(self, "block_size", as_int("block_size", block_size, minimum=1))
        object.__setattr__(self, "theta", as_probability("theta", theta))

    @property
    def beta(self) -> float:
        """(1 - theta)/theta."""
        return (1.0 - self.theta) / self.theta

    @classmethod
    def for_width(cls, theta_bar: float, width: int, block_size: int) -> DropBlock:
        """DropBlock at width d with theta(d) of eq. 7, so its objective is eq. 8.

        The regulariser becomes (d/r) ((1 - theta_bar)/theta_bar) sum_i ||U_i V_i^T X||^2 (eq. 8).

        Returns:
            ``DropBlock(block_size, theta=theta_for_width(theta_bar, width, block_size))``.

        Raises:
            ValueError: theta_bar outside (0, 1], width or block_size < 1, or block_size not
                dividing width.
            TypeError: non-numeric arguments.

        Example:
            >>> import structdrop as sd
            >>> sd.DropBlock.for_width(0.5, 10, 5)
            DropBlock(block_size=5, theta=0.3333333333333333)
        """
        return cls(block_size, theta=theta_for_width(theta_bar, width, block_size))

    def check_width(self, width: object) -> int:
        width = as_int("width", width, minimum=1)
        check_block_width(width, self.block_size, overlapping=False, owner="DropBlock")
        return width

    def _core_params(self) -> _core.SchemeParams:
        return _core.SchemeParams(_core.SchemeKind.dropblock, self.theta, self.block_size)

    def characteristic_matrix(self, width: int) -> np.ndarray:
        width = self.check_width(width)
        k = width // self.block_size
        return self.beta * np.kron(np.eye(k), np.ones((self.block_size, self.block_size)))

    def sample_masks(self, width: int, count: int, rng: RandomLike = None) -> np.ndarray:
        width = self.check_width(width)
        n = as_int("count", count, minimum=0)
        keep = _rng(rng).random((n, width // self.block_size)) < self.theta
        return np.repeat(keep, self.block_size, axis=1).astype(np.float64)


@dataclass(frozen=True, init=False)
class OverlappingDropBlock(MaskScheme):
    """The original (overlapping) DropBlock of Ghiasi et al. on a 1-D layer of d units.

    Seeds s_j ~ Bernoulli(gamma) i.i.d. for j = 0..d - block_size; a firing seed drops units
    j..j + block_size - 1, so every block lies inside the layer and blocks may overlap. Unit i is
    kept when no seed of W(i) = {j : j <= i <= j + block_size - 1} fires:
    mu_i = (1 - gamma)^|W(i)| (edge units are kept more often), and each unit is rescaled by its own
    exact mu_i. Pairwise P(z_i = z_j = 1) = (1 - gamma)^|W(i) u W(j)|, hence the exact
    ``C-bar_ij = (1 - gamma)^(-|W(i) n W(j)|) - 1``, zero for ``|i - j| >= block_size`` (eq. 16),
    and the objective is exact through Lemma 10 -- beyond the paper, whose Section 5.3 only
    corrects theta approximately.

    Give exactly one of ``theta`` ((0, 1]; then gamma = 1 - theta^(1/block_size), i.e.
    (1 - gamma)^block_size = theta, the keep probability of an interior unit) and ``gamma`` (seed
    probability, [0, 1)), both keyword-only. The resolved ``gamma`` is stored; ``theta`` reports
    (1 - gamma)^block_size. Before 1.0 gamma and theta could be given by position
    (``OverlappingDropBlock(3, 0.1)`` is gamma = 0.1): that still works with a FutureWarning.

    Args:
        block_size: number of consecutive units a firing seed drops (>= 1).
        theta: nominal keep probability of an interior unit, in (0, 1].
        gamma: seed probability, in [0, 1).

    Raises:
        ValueError: both or neither of theta and gamma, or a value out of range.
        TypeError: a non-numeric argument.

    Example:
        >>> import structdrop as sd
        >>> scheme = sd.OverlappingDropBlock(2, gamma=0.5)
        >>> scheme.theta
        0.25
        >>> scheme.mask_mean(3)
        array([0.5 , 0.25, 0.5 ])
    """

    block_size: int
    gamma: float

    def __init__(
        self, block_size: int, *, theta: float | None = None, gamma: float | None = None
    ) -> None:
        bs = as_int("block_size", block_size, minimum=1)
        if (gamma is None) == (theta is None):
            raise ValueError(
                "give exactly one of gamma (seed probability) and theta "
                "(nominal retain probability)"
            )
        if gamma is not None:
            g = as_probability("gamma", gamma, low_open=False, high_open=True)
        else:
            g = seed_probability(bs, theta=as_probability("theta", theta))
        object.__setattr__(self, "block_size", bs)
        object.__setattr__(self, "gamma", float(g))

    @property
    def theta(self) -> float:
        """Nominal retain probability (1 - gamma)^block_size.

        That of a unit covered by block_size seeds (an interior unit).
        """
        return (1.0 - self.gamma) ** self.block_size

    def check_width(self, width: object) -> int:
        width = as_int("width", width, minimum=1)
        check_block_width(width, self.block_size, overlapping=True, owner="OverlappingDropBlock")
        return width

    def _core_params(self) -> _core.SchemeParams:
        return _core.SchemeParams(
            _core.SchemeKind.overlapping_dropblock, block_size=self.block_size, gamma=self.gamma
        )

    def characteristic_matrix(self, width: int) -> np.ndarray:
        _, _, cbar, _ = self._stats(width, dense=True)
        return cbar

    def sample_masks(self, width: int, count: int, rng: RandomLike = None) -> np.ndarray:
        width = self.check_width(width)
        n = as_int("count", count, minimum=0)
        seeds_count = width - self.block_size + 1
        seeds = _rng(rng).random((n, seeds_count)) < self.gamma
        fired = np.zeros((n, seeds_count + 1), dtype=np.int32)
        np.cumsum(seeds, axis=1, out=fired[:, 1:])
        units = np.arange(width)
        lo = np.maximum(units - self.block_size + 1, 0)
        hi = np.minimum(units, seeds_count - 1)
        return ((fired[:, hi + 1] - fired[:, lo]) == 0).astype(np.float64)


#: Before 1.0 gamma and theta followed block_size by position: OverlappingDropBlock(3, 0.1).
_overlapping_positionals = positional_became_keyword("OverlappingDropBlock", 1, ("gamma", "theta"))


@functools.wraps(OverlappingDropBlock.__init__)
def _overlapping_init(self: OverlappingDropBlock, *args: Any, **kwargs: Any) -> None:
    _overlapping_positionals(functools.partial(_overlapping_new_init, self))(*args, **kwargs)


_overlapping_new_init = OverlappingDropBlock.__init__
OverlappingDropBlock.__init__ = _overlapping_init  # type: ignore[method-assign]


@dataclass(frozen=True)
class DropConnect(_KeepProbability):
    """DropConnect: every entry of V (b x d) kept i.i.d. with probability theta, scaled by 1/theta.

    Exact identity (corrected; Theorem 13 / Corollary 14 of the paper are false unless X X^T is
    diagonal):

        E ||Y - (1/theta) U (Z (.) V)^T X||^2
            = ||Y - U V^T X||^2 + beta sum_i ||u_i||^2 sum_j V_ji^2 ||x_j||^2,

    x_j the j-th row of X (input feature j), beta = (1 - theta)/theta. The printed formula
    beta sum_i ||u_i||^2 ||X^T v_i||^2 (the Dropout form) is available as
    :meth:`paper_approx_regularizer` / :meth:`paper_approx_objective`.

    The mask has shape (b, d), so the statistics take ``in_features`` (b): ``mask_mean(width)``
    gives the d per-column means theta (all equal); with ``in_features`` the (b, d) array.
    Covariance and C-bar are over the row-major flattened (b*d) entries: diagonal theta(1 - theta)
    and beta.

    Args:
        theta: keep probability of an entry of V, in (0, 1].

    Raises:
        ValueError: theta outside (0, 1].
        TypeError: a non-numeric theta.

    Example:
        >>> import structdrop as sd
        >>> sd.DropConnect(0.5).mask_mean(2, in_features=3).shape
        (3, 2)
    """

    def _core_params(self) -> _core.SchemeParams:
        return _core.SchemeParams(_core.SchemeKind.dropconnect, self.theta)

    @staticmethod
    def _in_features(in_features: object, what: str) -> int:
        if in_features is None:
            raise ValueError(
                f"DropConnect masks the b x d entries of V: {what} needs in_features=b "
                "(the rows of V)"
            )
        return as_int("in_features", in_features, minimum=1)

    def mask_mean(self, width: int, in_features: int | None = None) -> np.ndarray:
        """The mask means: theta for each column of V, or for each entry.

        Returns:
            A float64 array of ``width`` entries, or of shape (in_features, width) when
            ``in_features`` is given.

        Raises:
            TypeError: a non-integer width or in_features.
            ValueError: width or in_features < 1.

        Example:
            >>> import structdrop as sd
            >>> sd.DropConnect(0.5).mask_mean(2)
            array([0.5, 0.5])
        """
        width = self.check_width(width)
        if in_features is None:
            return np.full(width, self.theta)
        return np.full((self._in_features(in_features, "mask_mean"), width), self.theta)

    def mask_covariance(self, width: int, in_features: int | None = None) -> np.ndarray:
        """The covariance of the row-major flattened (in_features * width) mask entries.

        Returns:
            theta (1 - theta) I, I the identity of side in_features * width (float64).

        Raises:
            TypeError, ValueError: as :meth:`characteristic_matrix`.

        Example:
            >>> import structdrop as sd
            >>> sd.DropConnect(0.5).mask_covariance(1, in_features=2)
            array([[0.25, 0.  ],
                   [0.  , 0.25]])
        """
        width = self.check_width(width)
        b = self._in_features(in_features, "mask_covariance")
        return self.theta * (1.0 - self.theta) * np.eye(b * width)

    def characteristic_matrix(self, width: int, in_features: int | None = None) -> np.ndarray:
        """beta I over the row-major flattened (in_features * width) entries of the mask.

        Returns:
            A square float64 array of side in_features * width.

        Raises:
            TypeError: a non-integer width or in_features.
            ValueError: width or in_features < 1, or in_features missing.

        Example:
            >>> import structdrop as sd
            >>> sd.DropConnect(0.5).characteristic_matrix(1, in_features=2)
            array([[1., 0.],
                   [0., 1.]])
        """
        width = self.check_width(width)
        b = self._in_features(in_features, "characteristic_matrix")
        return self.beta * np.eye(b * width)

    def sample_masks(
        self, width: int, count: int, rng: RandomLike = None, *, in_features: int | None = None
    ) -> np.ndarray:
        """``count`` masks of V, unscaled.

        Returns:
            A (count, in_features, width) float64 array of 0/1.

        Raises:
            TypeError: a non-integer width or in_features.
            ValueError: width or in_features < 1, count < 0, or in_features missing.
            TypeError: also an ``rng`` that is neither None, an int nor a numpy Generator.

        Example:
            >>> import structdrop as sd
            >>> sd.DropConnect(0.5).sample_masks(3, 2, rng=0, in_features=4).shape
            (2, 4, 3)
        """
        width = self.check_width(width)
        b = self._in_features(in_features, "sample_masks")
        n = as_int("count", count, minimum=0)
        return (_rng(rng).random((n, b, width)) < self.theta).astype(np.float64)

    def paper_approx_regularizer(self, U: object, V: object, X: object) -> float:
        """The paper's printed DropConnect regulariser (Theorem 13 / Corollary 14): APPROXIMATE.

        beta sum_i ||u_i||^2 ||X^T v_i||^2. Exact only when X X^T is diagonal; use
        :meth:`regularizer` for the exact expectation.

        Returns:
            The printed regulariser, a float.

        Raises:
            ValueError, TypeError: as :meth:`regularizer`.

        Example:
            >>> import numpy as np, structdrop as sd
            >>> sd.DropConnect(0.5).paper_approx_regularizer(np.ones((1, 1)), np.ones((2, 1)),
            ...                                              np.ones((2, 1)))
            4.0
        """
        moments = data_moments(X)
        u, v = _check_factors(U, V, moments, need_targets=False)
        return _terms(self, u, v, moments, paper=True).regularizer

    @_inputs_first("paper_approx_objective")
    def paper_approx_objective(self, X: object, Y: object, U: object, V: object) -> float:
        """The printed, approximate DropConnect objective.

        Inputs come before targets, as in :meth:`objective_terms` (the order before 1.0 warns
        where the shapes prove it).

        Returns:
            ||Y - U V^T X||^2 + :meth:`paper_approx_regularizer` (the printed objective), a
            float; :meth:`objective` is the exact one.

        Raises:
            ValueError, TypeError: as :meth:`objective_terms`.

        Example:
            >>> import numpy as np, structdrop as sd
            >>> X, Y = np.ones((2, 1)), np.full((1, 1), 2.0)
            >>> sd.DropConnect(0.5).paper_approx_objective(X, Y, np.ones((1, 1)), np.ones((2, 1)))
            4.0
        """
        moments = data_moments(X, Y)
        u, v = _check_factors(U, V, moments, need_targets=True)
        return _terms(self, u, v, moments, paper=True).objective
