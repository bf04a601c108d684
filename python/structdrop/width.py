"""Width scaling of the retain probability (Section 2.2-2.3 of the paper, eq. 7, Lemma 2)."""

from __future__ import annotations

import math

from ._blocks import check_block_width
from ._migration import renamed_keywords
from ._validation import as_int, as_probability

__all__ = ["theta_for_width", "beta_for_width"]


def _check_width(width: object, block_size: object) -> tuple[int, int]:
    d = as_int("width", width, minimum=1)
    block = as_int("block_size", block_size, minimum=1)
    check_block_width(d, block, overlapping=False, width_name="the width d")
    return d, block


def _width_strength(beta: float, width: int, block_size: int) -> float:
    """(r/d) beta: the product-space strength of a width-d layer whose own strength is beta
    (r | d checked). One formula for :func:`beta_for_width` and the width sweep."""
    d, block = _check_width(width, block_size)
    return (block / d) * beta


@renamed_keywords("theta_for_width", d="width", r="block_size")
def theta_for_width(theta_bar: float, width: int, block_size: int) -> float:
    """Retain probability at width ``width`` that keeps the regulariser of ``theta_bar`` (eq. 7).

    theta(d) = theta_bar r / (theta_bar r + (1 - theta_bar) d), so that
    beta(d) = (1 - theta(d))/theta(d) = (d/r) beta_bar with beta_bar = (1 - theta_bar)/theta_bar:
    the DropBlock regulariser of a balanced width-d factorisation stays beta_bar ||sigma(A)||_(r)^2
    as d grows (Section 2.3), instead of vanishing (Lemma 2).

    Args:
        theta_bar: retain probability in (0, 1] that sets the product-space strength.
        width: hidden width d (a multiple of ``block_size``; ``d=`` before 1.0).
        block_size: the block size r (``r=`` before 1.0).

    Returns:
        The layer's retain probability theta(d) in (0, 1].

    Raises:
        TypeError: a non-integer width or block size.
        ValueError: theta_bar outside (0, 1], width or block size < 1, or block_size not
            dividing width.

    Example:
        >>> import structdrop as sd
        >>> sd.theta_for_width(0.5, 10, 5)
        0.3333333333333333
    """
    tb = as_probability("theta_bar", theta_bar)
    d, block = _check_width(width, block_size)
    return tb * block / (tb * block + (1.0 - tb) * d)


@renamed_keywords("beta_for_width", d="width", r="block_size")
def beta_for_width(theta: float, width: int, block_size: int) -> float:
    """Product-space regularisation strength of a width-``width`` network trained with ``theta``.

    beta_bar = (r/d) (1 - theta)/theta: the DropBlock objective of a width-d network with retain
    probability theta is bounded below by ||Y - A||^2 + beta_bar ||sigma(A)||_(r)^2 (Theorems 4-7),
    with equality at a balanced factorisation. For fixed theta it tends to 0 as d grows (Lemma 2).
    Pass it as ``beta=`` to :func:`structdrop.dropblock_global_min` to get the minimum of that
    width's objective.

    Args:
        theta: the layer's retain probability in (0, 1].
        width: hidden width d (a multiple of ``block_size``; ``d=`` before 1.0).
        block_size: the block size r (``r=`` before 1.0).

    Returns:
        beta_bar >= 0.

    Raises:
        TypeError: a non-integer width or block size.
        ValueError: theta outside (0, 1] or so small that beta_bar overflows, width or block
            size < 1, or block_size not dividing width.

    Example:
        >>> import structdrop as sd
        >>> sd.beta_for_width(0.5, 10, 5)
        0.5
    """
    th = as_probability("theta", theta)
    beta = _width_strength((1.0 - th) / th, width, block_size)
    if not math.isfinite(beta):
        raise ValueError(
            f"theta is too small: beta = (r/d)(1 - theta)/theta overflows, got {theta!r}"
        )
    return beta
