"""Block arithmetic shared by every DropBlock: the seed probability and the width check.

The seed probability is checked against the closed form gamma = 1 - theta^(1/n) evaluated in
50-digit decimal arithmetic from the exact binary value of theta (an independent route: no expm1,
no float rounding), at the extremes where float formulas lose digits: theta next to 1, tiny theta
and blocks covering up to 10^9 cells. Every implementation that converts a keep or drop rate to a
seed rate (NumPy scheme, torch 1-D layer and objectives, DropBlock2d) is held to the same bound.
"""

from __future__ import annotations

import math
from decimal import Decimal, localcontext

import pytest

import structdrop as sd
from structdrop._blocks import check_block_width, seed_probability

THETAS = [
    1.0,
    1.0 - 2.0**-53,
    1.0 - 1e-12,
    1.0 - 1e-6,
    0.9,
    0.5,
    1e-3,
    1e-100,
    1e-300,
]
CELLS = [1, 2, 3, 7, 25, 10**4, 10**9]
ULP_BOUND = 4  # expm1, log and one division: a few units in the last place


def exact_gamma(cells: int, *, theta: float | None = None, drop_rate: float | None = None):
    """1 - theta^(1/cells) to 50 significant digits (theta = 1 - drop_rate, exactly)."""
    with localcontext() as ctx:
        ctx.prec = 50
        keep = Decimal(theta) if theta is not None else 1 - Decimal(drop_rate)
        if keep == 1:
            return Decimal(0)
        return 1 - (keep.ln() / cells).exp()


def assert_close_to(value: float, exact: Decimal, what: str) -> None:
    if exact == 0:
        assert value == 0.0, what
        return
    ulp = math.ulp(float(exact))
    error = abs(Decimal(value) - exact) / Decimal(ulp)
    assert error <= ULP_BOUND, f"{what}: {value!r} is {float(error):.3g} ulp from {exact:.20e}"


@pytest.mark.parametrize("cells", CELLS)
@pytest.mark.parametrize("theta", THETAS)
def test_seed_probability_from_theta_matches_the_closed_form(theta, cells):
    gamma = seed_probability(cells, theta=theta)
    assert_close_to(gamma, exact_gamma(cells, theta=theta), f"theta={theta!r}, cells={cells}")
    assert 0.0 <= gamma <= 1.0 and math.copysign(1.0, gamma) == 1.0  # no -0.0 at theta = 1


@pytest.mark.parametrize("cells", CELLS)
@pytest.mark.parametrize("p", [0.0, 2.0**-60, 1e-12, 1e-3, 0.1, 0.5, 0.999999, 1.0 - 2.0**-53])
def test_seed_probability_from_drop_rate_matches_the_closed_form(p, cells):
    gamma = seed_probability(cells, drop_rate=p)
    assert_close_to(gamma, exact_gamma(cells, drop_rate=p), f"p={p!r}, cells={cells}")


def test_the_textbook_formula_fails_the_same_bound():
    # What the bound guards against: 1 - theta**(1/n) keeps only ~4 digits here.
    theta, cells = 1.0 - 1e-12, 25
    exact = exact_gamma(cells, theta=theta)
    with pytest.raises(AssertionError):
        assert_close_to(1.0 - theta ** (1.0 / cells), exact, "textbook")
    assert_close_to(seed_probability(cells, theta=theta), exact, "seed_probability")


def test_seed_probability_rejects_bad_calls():
    with pytest.raises(ValueError, match="exactly one"):
        seed_probability(3)
    with pytest.raises(ValueError, match="exactly one"):
        seed_probability(3, theta=0.5, drop_rate=0.5)
    with pytest.raises(ValueError, match="block_cells"):
        seed_probability(0, theta=0.5)


@pytest.mark.parametrize("theta", [1.0 - 1e-12, 1.0 - 1e-6, 0.5, 1e-100])
@pytest.mark.parametrize("block", [1, 3, 25, 400])
def test_overlapping_dropblock_scheme_gamma_is_accurate(theta, block):
    scheme = sd.OverlappingDropBlock(block, theta=theta)
    assert_close_to(scheme.gamma, exact_gamma(block, theta=theta), "OverlappingDropBlock")


def test_seed_probability_stays_below_one():
    # theta = 1e-100 with blocks of 3: the exact gamma rounds to 1.0, which no scheme accepts.
    below_one = math.nextafter(1.0, 0.0)
    assert seed_probability(3, theta=1e-100) == below_one
    assert sd.OverlappingDropBlock(1, theta=1e-300).gamma == below_one
    assert sd.OverlappingDropBlock(3, theta=1.0).gamma == 0.0


@pytest.mark.parametrize("theta", [1.0 - 1e-12, 1.0 - 1e-6, 0.5, 1e-100])
@pytest.mark.parametrize("block", [1, 3, 25, 400])
def test_torch_overlapping_gamma_is_accurate(theta, block):
    pytest.importorskip("torch")
    from structdrop.torch import OverlappingDropBlock1d
    from structdrop.torch._schemes import as_scheme_spec, overlapping_gamma

    exact = exact_gamma(block, theta=theta)
    assert_close_to(overlapping_gamma(block, theta=theta), exact, "overlapping_gamma")
    assert_close_to(OverlappingDropBlock1d(block, theta=theta).gamma, exact, "1-d layer")
    duck = type("OverlappingDropBlock", (), {"block_size": block, "theta": theta})()
    assert_close_to(as_scheme_spec(duck).gamma, exact, "SchemeSpec of a look-alike")


@pytest.mark.parametrize("p", [1e-12, 1e-6, 0.1, 0.9])
@pytest.mark.parametrize("block", [(1, 1), (3, 3), (7, 5), (20, 20)])
def test_dropblock2d_gamma_is_accurate(p, block):
    pytest.importorskip("torch")
    from structdrop.torch import DropBlock2d

    exact = exact_gamma(math.prod(block), drop_rate=p)
    assert_close_to(DropBlock2d(block, p=p).gamma(), exact, f"DropBlock2d {block}")


# --- the width check ---------------------------------------------------------------------------


def test_check_block_width_boundaries():
    check_block_width(6, 3, overlapping=False)
    check_block_width(6, 6, overlapping=False)
    check_block_width(6, 6, overlapping=True)
    check_block_width(6, 1, overlapping=True)
    with pytest.raises(ValueError, match=r"block_size must divide d .* got d=6, block_size=4"):
        check_block_width(6, 4, overlapping=False)
    with pytest.raises(ValueError, match=r"block_size <= d .* got d=6, block_size=7"):
        check_block_width(6, 7, overlapping=True)


def test_width_checks_share_one_message():
    # Each public entry point that takes a width reports the violated rule the same way.
    divide = r"needs block_size to divide d \(blocks of block_size consecutive units\), got d=6"
    with pytest.raises(ValueError, match="^DropBlock " + divide):
        sd.DropBlock(4, theta=0.5).check_width(6)
    with pytest.raises(
        ValueError,
        match=r"^block_size must divide the width d \(blocks of block_size consecutive units\)",
    ):
        sd.theta_for_width(0.5, 6, 4)
    result = sd.dropblock_global_min([[3.0, 1.0], [1.0, 2.0]], block_size=2, theta_bar=0.5)
    with pytest.raises(ValueError, match=r"^r must divide d .*got d=3, r=2$"):
        sd.balanced_factors(result, 3)
    inside = r"needs block_size <= d \(every block lies inside the layer\), got d=4, block_size=5$"
    with pytest.raises(ValueError, match="^OverlappingDropBlock " + inside):
        sd.OverlappingDropBlock(5, gamma=0.1).check_width(4)


def test_torch_width_checks_share_the_message():
    torch = pytest.importorskip("torch")
    from structdrop import torch as sdt

    U, G = torch.ones(2, 6, dtype=torch.float64), torch.ones(6, 3, dtype=torch.float64)
    divide = "DropBlock needs block_size to divide the hidden width d"
    with pytest.raises(ValueError, match=divide + r" .*got d=6, block_size=4$"):
        sdt.dropblock_regularizer(U, G, 0.5, 4)
    with pytest.raises(ValueError, match=divide):
        sdt.regularizer(sd.DropBlock(4, theta=0.5), U, torch.eye(6, dtype=torch.float64), G)
    inside = r"OverlappingDropBlock needs block_size <= the hidden width d .*got d=6, block_size=7$"
    with pytest.raises(ValueError, match=inside):
        sdt.overlapping_dropblock_regularizer(U, G, 7, gamma=0.1)
    with pytest.raises(ValueError, match="DropBlock1d needs block_size to divide the feature"):
        sdt.DropBlock1d(4, theta=0.5, overlapping=False)(torch.ones(2, 6))
    with pytest.raises(ValueError, match="OverlappingDropBlock1d needs block_size <= the feature"):
        sdt.OverlappingDropBlock1d(7, gamma=0.1)(torch.ones(2, 6))
