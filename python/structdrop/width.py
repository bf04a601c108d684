"""Width scaling of the retain probability (Section 2.2-2.3 of the paper, eq. 7, Lemma 2)."""

from __future__ import annotations

import math

from ._blocks import check_block_width
from ._validation import as_int, as_probability

__all__ = ["theta_for_width", "beta_for_width"]


def _check_width(d: object, r: object) -> tuple[int, int]:
    width = as_int("d", d, minimum=1)
    block = as_int("r", r, minimum=1)
    check_block_width(width, block, overlapping=False, block_name="r")
    return width, block


def theta_for_width(theta_bar: float, d: int, r: int) -> float:
    """Retain probability at width ``d`` that keeps the regulariser of ``theta_bar`` (eq. 7).

    theta(d) = theta_bar r / (theta_bar r + (1 - theta_bar) d), so that
    beta(d) = (1 - theta(d))/theta(d) = (d/r) beta_bar with beta_bar = (1 - theta_bar)/theta_bar:
    the DropBlock regulariser of a balanced width-d factorisation stays beta_bar ||sigma(A)||_(r)^2
    as d grows (Section 2.3), instead of vanishing (Lemma 2).

    Args:
        theta_bar: retain probability in (0, 1] that sets the product-space strength.
        d: hidden width (a multiple of ``r``).
        r: block size.
    """
    tb = as_probability("theta_bar", theta_bar)
    width, block = _check_width(d, r)
    return tb * block / (tb * block + (1.0 - tb) * width)


def beta_for_width(theta: float, d: int, r: int) -> float:
    """Product-space regularisation strength of a width-``d`` network trained with fixed ``theta``.

    beta_bar = (r/d) (1 - theta)/theta: the DropBlock objective of a width-d network with retain
    probability theta is bounded below by ||Y - A||^2 + beta_bar ||sigma(A)||_(r)^2 (Theorems 4-7),
    with equality at a balanced factorisation. For fixed theta it tends to 0 as d grows (Lemma 2).
    Pass ``theta_bar = 1/(1 + beta_bar)`` to :func:`structdrop.dropblock_global_min` to get the
    minimum of that width's objective.
    """
    th = as_probability("theta", theta)
    width, block = _check_width(d, r)
    beta = (block / width) * (1.0 - th) / th
    if not math.isfinite(beta):
        raise ValueError(
            f"theta is too small: beta = (r/d)(1 - theta)/theta overflows, got {theta!r}"
        )
    return beta
