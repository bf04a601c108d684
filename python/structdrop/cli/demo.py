"""``structdrop demo``: the short demonstration on the built-in data (``python -m structdrop``).

The paper's synthetic setup (Section 5.1): closed-form DropBlock global minima for several block
sizes, and how a fixed retain probability loses its strength as the width grows (Lemma 2).
"""

from __future__ import annotations

import argparse
import time
from typing import Callable

import numpy as np

from ..datasets import paper_synthetic
from ..global_min import dropblock_global_min
from ..width import beta_for_width, theta_for_width
from ._common import nonnegative_int

NAME = "demo"
HELP = "short demonstration on the paper's synthetic setup (the default with no arguments)"
DESCRIPTION = (
    "Closed-form DropBlock global minima of the paper's synthetic problem for several block sizes."
)
EPILOG = ""

_NEXT_STEPS = (
    "Next:\n"
    "  structdrop solve Y.npy --block-size 5 --theta-bar 0.5 [--X X.npy]"
    "   the global minimum for your data\n"
    "  structdrop reproduce all --quick --out figures"
    "                     the paper's Figures 1-4 (needs structdrop[plot])\n"
    "  structdrop --help; help(structdrop.dropblock_global_min), structdrop.prox_ksupport_sq, "
    "structdrop.train\n"
    "docs/differences-from-paper.md lists where the library corrects the printed paper."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--seed", type=nonnegative_int, default=0, help="seed of the synthetic problem (default 0)"
    )


def run(args: argparse.Namespace) -> int:
    run_demo(seed=args.seed)
    return 0


def run_demo(
    seed: int = 0, theta_bar: float = 0.5, print_fn: Callable[[str], object] = print
) -> None:
    """Print closed-form DropBlock global minima of the paper's synthetic problem.

    For block sizes r = 1 (Dropout) to 50 at a fixed product-space retain probability
    ``theta_bar`` (beta_bar = (1 - theta_bar)/theta_bar, i.e. theta scaled with the width by eq. 7),
    the minimum over all weights and widths of the exact DropBlock objective is the corrected
    Theorem 7 minimum restricted to the row space of X (b = 100 < N = 1000: X has no full column
    rank). It also shows that with theta fixed instead, the strength beta_for_width(theta, d, r)
    fades as the width d grows (Lemma 2).
    """
    problem = paper_synthetic(seed=seed)
    a, N = problem.Y.shape
    b = problem.X.shape[0]
    beta_bar = (1.0 - theta_bar) / theta_bar
    print_fn(
        f"structdrop demo: the paper's synthetic setup (a, b, N = {a}, {b}, {N}; y = M x, "
        f"rank M = 50; seed {seed})"
    )
    print_fn(
        f"closed-form global minimum of the DropBlock objective, theta_bar = {theta_bar} "
        f"(beta_bar = {beta_bar:g})\n"
    )
    print_fn(
        f"{'block r':>7} {'rho':>4} {'rank':>5} {'global minimum':>15} {'min / ||Y||^2':>14}  "
        "leading singular values of A*"
    )
    total = float(np.sum(problem.Y**2))
    start = time.perf_counter()
    for r in (1, 2, 5, 10, 25, 50):
        res = dropblock_global_min(problem.Y, block_size=r, theta_bar=theta_bar, X=problem.X)
        lead = ", ".join(f"{v:.1f}" for v in res.singular_values[:3])
        print_fn(
            f"{r:>7} {res.rho:>4} {res.rank:>5} {res.objective:>15.6g} "
            f"{res.objective / total:>14.4f}  {lead}, ..."
        )
    elapsed = time.perf_counter() - start
    print_fn(f"\n(six closed-form solves in {elapsed * 1e3:.0f} ms, SVDs included)")
    print_fn(
        "Small blocks act like a squared nuclear norm (low rank), large ones like a squared "
        "Frobenius norm."
    )
    widths = (50, 500, 5000)
    fading = ", ".join(f"d={d}: {beta_for_width(0.5, d, 5):.3g}" for d in widths)
    print_fn(
        "With theta = 0.5 fixed and r = 5 the strength fades with the width (Lemma 2): "
        f"beta_bar {fading};\n"
        f"eq. 7 keeps it, e.g. theta(5000) = {theta_for_width(theta_bar, 5000, 5):.3g} for r = 5."
        f"\n\n{_NEXT_STEPS}"
    )
