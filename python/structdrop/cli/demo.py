"""``structdrop demo``: the short demonstration on the built-in example (also ``python -m structdrop``)."""

from __future__ import annotations

import argparse

from ._common import nonnegative_int

NAME = "demo"
HELP = "short demonstration on the paper's synthetic setup (the default with no arguments)"
DESCRIPTION = (
    "Closed-form DropBlock global minima of the paper's synthetic problem for several block sizes."
)
EPILOG = ""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--seed", type=nonnegative_int, default=0, help="seed of the synthetic problem (default 0)"
    )


def run(args: argparse.Namespace) -> int:
    from ..demo import run_demo

    run_demo(seed=args.seed)
    return 0
