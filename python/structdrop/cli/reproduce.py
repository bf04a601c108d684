"""``structdrop reproduce``: the paper's Figures 1-4 as PNG + JSON, and summary.md."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ._common import CliError, nonnegative_int, positive_float, positive_int, progress_bar

NAME = "reproduce"
HELP = "reproduce the paper's Figures 1-4 (PNG, JSON and summary.md)"
DESCRIPTION = """\
Reproduce Section 5 of the paper: Figure 1 (DropBlock: stochastic vs deterministic objective,
convergence to the corrected Theorem 7 minimum), Figure 2 (DropConnect vs its exact identity and vs
Dropout), Figure 3 (deep network: objective vs lower bound, singular values; needs PyTorch) and
Figure 4 (overlapping vs non-overlapping DropBlock). Writes figN.png, figN.json (the numbers) and
summary.md (each claim of Section 5 next to what was measured) into --out.

Full mode uses the paper's sizes (a, b, N, d = 80, 100, 1000, 50; 1e5 SGD steps); --quick uses
2e4 steps and a short deep run (about half a minute for all four on two cores).
'all' leaves Figure 3 out, with a note, when PyTorch is not installed. Needs matplotlib
(pip install 'structdrop[plot]')."""
EPILOG = """\
examples:
  structdrop reproduce all --quick --out figures
  structdrop reproduce fig1 --out figures --seed 3
  structdrop reproduce fig3 --out figures --dataset mnist --data-root ~/data --epochs 20"""

CHOICES = ("fig1", "fig2", "fig3", "fig4", "all")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("figure", choices=CHOICES, help="which figure (or all)")
    parser.add_argument(
        "--out",
        default="structdrop-figures",
        metavar="DIR",
        help="output folder (created; default ./structdrop-figures)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="reduced sizes: all figures in well under a minute"
    )
    parser.add_argument(
        "--seed",
        type=nonnegative_int,
        default=0,
        help="seed of data, initialisation and masks (default 0)",
    )
    parser.add_argument(
        "--quiet", action="store_true", help="no progress bars or log lines (errors still print)"
    )
    shallow = parser.add_argument_group("shallow figures (1, 2, 4)")
    shallow.add_argument(
        "--iterations",
        type=positive_int,
        default=None,
        help="SGD steps (default 100000, or 20000 with --quick)",
    )
    shallow.add_argument(
        "--lr", type=positive_float, default=None, help="initial step size (default 2e-5)"
    )
    deep = parser.add_argument_group("deep figure (3)")
    deep.add_argument(
        "--epochs",
        type=nonnegative_int,
        default=None,
        help="training epochs (default 40, or 10 with --quick)",
    )
    deep.add_argument(
        "--dataset",
        choices=("digits", "mnist", "cifar10"),
        default="digits",
        help="digits: scikit-learn's bundled images (default); mnist/cifar10 need --data-root",
    )
    deep.add_argument(
        "--data-root",
        default=None,
        metavar="DIR",
        help="local torchvision dataset folder (never downloaded)",
    )
    deep.add_argument(
        "--device",
        default=None,
        help="torch device of Figure 3 (default: cuda when available, else cpu); the other "
        "figures run in NumPy and refuse it",
    )


def _check_device(figure: str, device: str | None) -> None:
    """Refuse --device where no figure would use it, and a device this torch cannot use, in one
    line before anything runs (a CPU-only torch asked for CUDA raised an AssertionError)."""
    if device is None:
        return
    if figure not in ("fig3", "all"):
        raise CliError(
            f"--device applies to Figure 3 (the deep network) only; {figure} runs in NumPy on "
            "the CPU: leave --device out"
        )
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        return  # fig3 reports the missing PyTorch itself ('all' leaves it out)
    import torch

    try:
        torch.empty(0, device=torch.device(device))
    except (AssertionError, RuntimeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CliError(f"--device {device} is not available to this PyTorch ({first})") from None


def run(args: argparse.Namespace) -> int:
    import structdrop

    from ..figures import FigureConfig, reproduce

    if args.dataset != "digits" and args.data_root is None:
        raise CliError(f"--dataset {args.dataset} needs --data-root (a local torchvision folder)")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise CliError(f"--out '{out}' exists and is not a folder")
    _check_device(args.figure, args.device)
    config = FigureConfig(
        out=out,
        quick=args.quick,
        seed=args.seed,
        progress=not args.quiet,
        iterations=args.iterations,
        lr=args.lr,
        epochs=args.epochs,
        dataset=args.dataset,
        data_root=args.data_root,
        device=args.device,
    )
    names = ["fig1", "fig2", "fig3", "fig4"] if args.figure == "all" else [args.figure]

    def log(line: str) -> None:
        if not args.quiet:
            print(line, file=sys.stderr, flush=True)

    def make_bar(total: int, label: str):
        unit = "epoch" if label == "fig3" else "step"
        return progress_bar(total, label, None if args.quiet else 0.0, unit, True)

    start = time.perf_counter()
    try:
        outputs = reproduce(
            names, config, make_bar=make_bar, log=log, skip_without_torch=args.figure == "all"
        )
    except ImportError as exc:  # e.g. --dataset mnist without a working torchvision
        raise CliError(f"a dependency is missing: {exc}") from None
    except structdrop.TrainingDiverged as exc:
        raise CliError(f"{exc} (try a smaller --lr)") from None
    print(
        f"wrote {len(outputs)} figure(s) and summary.md to {out} in "
        f"{time.perf_counter() - start:.1f} s"
    )
    for output in outputs:
        for claim in output.claims:
            print(
                f"  {output.name}: {claim.verdict}: "
                f"{claim.claim[:70]}{'...' if len(claim.claim) > 70 else ''}"
            )
    return 0
