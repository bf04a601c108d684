"""Block arithmetic shared by every DropBlock implementation (NumPy schemes, torch layers, widths).

Two facts that several modules need and that must agree everywhere:

- :func:`check_block_width`: whether blocks of ``block_size`` consecutive units fit a layer of
  ``d`` units -- tiling it (non-overlapping DropBlock, the width scaling of eq. 7) or lying inside
  it (the original, overlapping DropBlock);
- :func:`seed_probability`: the seed rate gamma of the overlapping scheme that keeps a unit covered
  by ``block_cells`` seed positions with probability theta, i.e. (1 - gamma)^block_cells = theta
  (the correction of Section 5.3 of the paper, made exact for interior units).

Nothing here imports the compiled core or an optional dependency.
"""

from __future__ import annotations

import math

__all__ = ["check_block_width", "seed_probability"]

_BELOW_ONE = math.nextafter(1.0, 0.0)


def check_block_width(
    d: int,
    block_size: int,
    *,
    overlapping: bool,
    owner: str | None = None,
    block_name: str = "block_size",
    width_name: str = "d",
) -> None:
    """Raise ValueError unless blocks of ``block_size`` units fit a layer of ``d`` units.

    Non-overlapping blocks must tile the layer (``block_size`` divides ``d``); overlapping blocks
    must lie inside it (``block_size <= d``). The caller has already checked that both are
    positive integers.

    Args:
        d: layer width (number of units).
        block_size: block length r.
        overlapping: True for the original DropBlock (blocks start at any of the
            ``d - block_size + 1`` seed positions), False for tiling blocks.
        owner: what imposes the rule, named at the start of the message (e.g. ``"DropBlock"``);
            None when the argument names say enough.
        block_name: the block length's name in the caller's signature (``"r"``, ``"block_size"``).
        width_name: how the message refers to ``d`` (e.g. ``"the hidden width d"``).
    """
    if overlapping:
        if block_size > d:
            who = owner if owner is not None else "overlapping DropBlock"
            raise ValueError(
                f"{who} needs {block_name} <= {width_name} (every block lies inside the layer), "
                f"got d={d}, {block_name}={block_size}"
            )
    elif d % block_size:
        rule = f"to divide {width_name}" if owner is not None else f"must divide {width_name}"
        who = f"{owner} needs " if owner is not None else ""
        raise ValueError(
            f"{who}{block_name} {rule} (blocks of {block_name} consecutive units), "
            f"got d={d}, {block_name}={block_size}"
        )


def seed_probability(
    block_cells: int, *, theta: float | None = None, drop_rate: float | None = None
) -> float:
    """Seed probability gamma of overlapping DropBlock with (1 - gamma)^block_cells = theta.

    A unit covered by ``block_cells`` seed positions (the block's length in 1-D, the product of
    its side lengths on a grid) is kept when none of them fires, with probability
    (1 - gamma)^block_cells; this returns the gamma that makes it ``theta`` (Section 5.3 of the
    paper, which prints only the approximate correction for the edge units).

    Evaluated as gamma = -expm1(log(theta) / block_cells), with log(theta) = log1p(-drop_rate) when
    the drop rate is given. The textbook 1 - theta^(1/block_cells) cancels catastrophically when
    theta is near 1 or block_cells is large (gamma is then tiny and the difference of two numbers
    near 1 keeps only a few of its digits); this route keeps a relative error of a few units in the
    last place for every theta in (0, 1] and every block size.

    Args:
        block_cells: number of seed positions that cover an interior unit (>= 1).
        theta: keep probability of an interior unit, in (0, 1]; or
        drop_rate: its complement p = 1 - theta, in [0, 1) (exactly one of the two).

    Returns:
        gamma in [0, 1), within a few units in the last place of the exact value. For theta > 0
        the exact gamma is below 1, but it rounds to 1.0 once theta^(1/block_cells) is below
        about 1e-16 (e.g. theta = 1e-100 with blocks of 3); the largest float below 1 is returned
        then, as a seed rate of 1 would leave no unit a positive keep probability to rescale by.
    """
    if (theta is None) == (drop_rate is None):
        raise ValueError("give exactly one of theta (keep probability) and drop_rate")
    if block_cells < 1:
        raise ValueError(f"block_cells must be >= 1, got {block_cells}")
    if theta is not None:
        log_keep = math.log(theta)
    else:
        assert drop_rate is not None
        log_keep = math.log1p(-drop_rate)
    # "0.0 -" turns the -0.0 of theta = 1 into 0.0 (expm1(-0.0) = -0.0).
    return min(0.0 - math.expm1(log_keep / block_cells), _BELOW_ONE)
