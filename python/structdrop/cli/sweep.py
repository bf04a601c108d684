"""``structdrop sweep``: closed-form minima over (block size, theta_bar) grids and hidden widths."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from .._data.atomic_write import write_text
from ._common import (
    CliError,
    add_strength_options,
    nonnegative_float,
    positive_int,
    probability,
)

NAME = "sweep"
HELP = "phase diagrams of the closed-form minimum over block sizes, theta_bar and widths"
DESCRIPTION = """\
Solve the corrected Theorem 7 for every (block size r, theta_bar) pair of a grid at once (one SVD,
the batched C++ solver on all cores), and the minimum of the width-d objective for each hidden
width d with theta fixed (Lemma 2: the regularisation fades) and with theta scaled by eq. 7 (it
does not). Writes rank_phase.png, objective_phase.png, width_sweep.png and sweep.json to --out.

Without Y the built-in example is used: the paper's synthetic setup (Y = M X, X is 100 x 1000,
plus unit Gaussian noise on Y so that the fit is not exact), with A restricted to X's row space.

The grid's strengths are --theta-bars (theta_bar in (0, 1]) or --betas (beta_bar >= 0), the width
sweep's --width-theta-bar or --width-beta (exactly one of each pair; the defaults are
--theta-bars 0.05:0.95:91 and --width-theta-bar 0.5). Before 1.0 they were --theta and
--width-theta: both still work, with a note on stderr.

Ranges: 'START:STOP' (integers, inclusive), 'START:STOP:STEP' for block sizes,
'START:STOP:COUNT' (COUNT evenly spaced values, inclusive) for strengths, or comma-separated
lists."""
EPILOG = """\
examples:
  structdrop sweep --out sweep_demo
  structdrop sweep Y.npy --block-sizes 1:64 --theta-bars 0.05:0.95:91 --out DIR
  structdrop sweep Y.npy --X X.npy --block-sizes 1,2,5,10 --betas 0,0.5,2 \\
      --widths 10,100,1000 --width-beta 1 --out DIR"""


def int_range(text: str) -> np.ndarray:
    """argparse type: 'a:b' or 'a:b:step' (inclusive) or 'a,b,c' positive integers."""
    try:
        if ":" in text:
            parts = [int(p) for p in text.split(":")]
            if len(parts) not in (2, 3):
                raise ValueError
            start, stop = parts[0], parts[1]
            step = parts[2] if len(parts) == 3 else 1
            if step < 1 or stop < start:
                raise ValueError
            values = np.arange(start, stop + 1, step)
        else:
            values = np.array([int(p) for p in text.split(",")])
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected START:STOP[:STEP] or a comma list of integers, got {text!r}"
        ) from None
    if values.size == 0 or (values < 1).any():
        raise argparse.ArgumentTypeError(f"integers must be >= 1, got {text!r}")
    return values


def _number_range(text: str) -> np.ndarray:
    """'a:b:count' (inclusive, evenly spaced) or 'a,b,c'."""
    try:
        if ":" in text:
            parts = text.split(":")
            if len(parts) != 3:
                raise ValueError
            start, stop, count = float(parts[0]), float(parts[1]), int(parts[2])
            if count < 1 or stop < start:
                raise ValueError
            return np.linspace(start, stop, count)
        return np.array([float(p) for p in text.split(",")])
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected START:STOP:COUNT or a comma list of numbers, got {text!r}"
        ) from None


def theta_range(text: str) -> np.ndarray:
    """argparse type: 'a:b:count' (inclusive, evenly spaced) or 'a,b,c' values in (0, 1]."""
    values = _number_range(text)
    if values.size == 0 or not np.all((values > 0) & (values <= 1)):
        raise argparse.ArgumentTypeError(f"theta_bar values must lie in (0, 1], got {text!r}")
    return values


def beta_range(text: str) -> np.ndarray:
    """argparse type: 'a:b:count' or 'a,b,c' finite values >= 0."""
    values = _number_range(text)
    if values.size == 0 or not np.all(np.isfinite(values) & (values >= 0)):
        raise argparse.ArgumentTypeError(f"beta values must be finite and >= 0, got {text!r}")
    return values


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "Y",
        nargs="?",
        default=None,
        help="targets Y (a x N): .npy, .npz or .csv (default: built-in example)",
    )
    parser.add_argument(
        "--X",
        dest="X",
        metavar="X_FILE",
        default=None,
        help="data X (b x N): A restricted to X's row space",
    )
    parser.add_argument("--key", default=None, help="array name of Y inside a .npz archive")
    parser.add_argument(
        "--X-key", dest="X_key", default=None, help="array name of X inside a .npz archive"
    )
    parser.add_argument(
        "--block-sizes",
        type=int_range,
        default=int_range("1:64"),
        metavar="RANGE",
        help="block sizes r (default 1:64)",
    )
    add_strength_options(
        parser.add_mutually_exclusive_group(),
        ("--theta-bars", "--betas"),
        (theta_range, beta_range),
        (
            "product-space theta_bar values (default 0.05:0.95:91)",
            "product-space strengths beta_bar >= 0 instead of --theta-bars",
        ),
        old="--theta",
    )
    parser.add_argument(
        "--widths",
        type=int_range,
        default=None,
        metavar="LIST",
        help="hidden widths d for the width sweep (multiples of --width-block-size; "
        "default r x 1, 2, 5, ..., 10^5)",
    )
    parser.add_argument(
        "--width-block-size",
        type=positive_int,
        default=5,
        metavar="R",
        help="block size of the width sweep (default 5)",
    )
    add_strength_options(
        parser.add_mutually_exclusive_group(),
        ("--width-theta-bar", "--width-beta"),
        (probability, nonnegative_float),
        (
            "theta_bar of the width sweep: the layer theta of the fixed runs and theta_bar of "
            "eq. 7 (default 0.5)",
            "the width sweep's strength beta_bar >= 0 instead of --width-theta-bar",
        ),
        old="--width-theta",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the built-in example (default 0)"
    )
    parser.add_argument(
        "--out",
        default="structdrop-sweep",
        metavar="DIR",
        help="output folder (default ./structdrop-sweep)",
    )
    parser.add_argument(
        "--threads", type=positive_int, default=None, help="worker threads (default: all cores)"
    )
    parser.add_argument("--quiet", action="store_true", help="print nothing but errors")


def _grid_strength(args: argparse.Namespace) -> dict[str, np.ndarray]:
    if args.betas is not None:
        return {"betas": args.betas}
    bars = args.theta_bars if args.theta_bars is not None else theta_range("0.05:0.95:91")
    return {"theta_bars": bars}


def _width_strength(args: argparse.Namespace) -> dict[str, float]:
    if args.width_beta is not None:
        return {"beta": args.width_beta}
    return {"theta_bar": 0.5 if args.width_theta_bar is None else args.width_theta_bar}


def _load(args: argparse.Namespace):
    import structdrop

    from .._data.io import load_matrix

    if args.Y is None:
        if args.X is not None:
            raise CliError("--X needs Y too (the built-in example brings its own X)")
        problem = structdrop.paper_synthetic(seed=args.seed)
        noise = np.random.default_rng(args.seed + 1).standard_normal(problem.Y.shape)
        return (
            problem.Y + noise,
            problem.X,
            f"built-in example (paper synthetic setup + noise, seed {args.seed})",
        )
    Y = load_matrix(args.Y, key=args.key, what="Y")
    X = None if args.X is None else load_matrix(args.X, key=args.X_key, what="X")
    if Y.ndim != 2:
        raise CliError(f"Y '{args.Y}' must be a 2-D array (a x N), got shape {Y.shape}")
    return Y, X, args.Y


def _plots(out: Path, grid, widths, y_norm_sq: float) -> list[Path]:
    from ..figures._plot import pyplot, save

    plt = pyplot()  # MissingDependency without matplotlib: one line, exit code 2
    paths = []
    thetas = grid.theta_bars
    half = (
        (thetas[-1] - thetas[0]) / (2 * (thetas.size - 1)) if thetas.size > 1 else 0.025
    )  # cell half-width
    rows = (
        grid.block_sizes.size
    )  # rows drawn by index, labelled with their block sizes (any spacing)
    extent = [thetas[0] - half, thetas[-1] + half, -0.5, rows - 0.5]
    ticks = np.unique(np.linspace(0, rows - 1, min(rows, 10)).round().astype(int))
    for name, values, label, cmap in (
        ("rank_phase.png", grid.rank, "rank of the global minimiser A*", "viridis"),
        ("objective_phase.png", grid.objective / y_norm_sq, "global minimum / ||Y||$^2$", "magma"),
    ):
        fig, ax = plt.subplots(figsize=(6.4, 4.6))
        image = ax.imshow(
            values, origin="lower", aspect="auto", extent=extent, cmap=cmap, interpolation="nearest"
        )
        fig.colorbar(image, ax=ax, label=label)
        ax.set_xlabel(r"$\bar\theta$ (product-space retain probability)")
        ax.set_yticks(ticks, [str(grid.block_sizes[k]) for k in ticks])
        ax.set_ylabel("block size r")
        ax.set_title(f"DropBlock global minimum (corrected Thm 7): {label}")
        ax.grid(False)
        paths.append(save(fig, out / name))
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    ax.semilogx(
        widths.widths,
        widths.fixed_objective / y_norm_sq,
        "o-",
        label=rf"$\theta$ = {widths.theta_bar:g} fixed (Lemma 2)",
    )
    ax.semilogx(
        widths.widths,
        widths.scaled_objective / y_norm_sq,
        "s--",
        label=r"$\theta(d)$ of eq. 7 (strength kept)",
    )
    ax.axhline(
        widths.unregularized_minimum / y_norm_sq,
        color="gray",
        lw=1,
        ls=":",
        label="unregularised minimum",
    )
    ax.set_xlabel("hidden width d")
    ax.set_ylabel("global minimum / ||Y||$^2$")
    ax.set_title(f"Minimum of the width-d DropBlock objective, r = {widths.block_size}")
    ax.legend()
    paths.append(save(fig, out / "width_sweep.png"))
    return paths


def run(args: argparse.Namespace) -> int:
    import structdrop

    Y, X, source = _load(args)
    r_w = args.width_block_size
    widths = (
        args.widths
        if args.widths is not None
        else r_w
        * np.array(
            [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000]
        )
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    grid = structdrop.sweep_global_min(
        Y, X=X, block_sizes=args.block_sizes, threads=args.threads, **_grid_strength(args)
    )
    seconds = time.perf_counter() - start
    width_result = structdrop.width_sweep(
        Y, widths, X=X, block_size=r_w, threads=args.threads, **_width_strength(args)
    )
    y_norm_sq = float(np.sum(np.asarray(Y, dtype=float) ** 2))
    payload = {
        "source": str(source),
        "y_shape": list(np.shape(Y)),
        "x_shape": None if X is None else list(np.shape(X)),
        "y_norm_sq": y_norm_sq,
        "residual": grid.residual,
        "block_sizes": grid.block_sizes.tolist(),
        "theta_bars": grid.theta_bars.tolist(),
        "betas": grid.betas.tolist(),
        "objective": grid.objective.tolist(),
        "rank": grid.rank.tolist(),
        "rho": grid.rho.tolist(),
        "grid_seconds": seconds,
        "width_sweep": {
            "block_size": width_result.block_size,
            "theta_bar": width_result.theta_bar,
            "widths": width_result.widths.tolist(),
            "fixed_beta": width_result.fixed_beta.tolist(),
            "fixed_objective": width_result.fixed_objective.tolist(),
            "fixed_rank": width_result.fixed_rank.tolist(),
            "scaled_theta": width_result.scaled_theta.tolist(),
            "scaled_objective": width_result.scaled_objective.tolist(),
            "scaled_rank": width_result.scaled_rank.tolist(),
            "unregularized_minimum": width_result.unregularized_minimum,
        },
    }
    write_text(out / "sweep.json", json.dumps(payload, indent=1))
    pngs = _plots(out, grid, width_result, y_norm_sq if y_norm_sq > 0 else 1.0)
    if not args.quiet:
        settings = grid.objective.size
        print(f"structdrop sweep: {source}")
        print(
            f"  {settings} settings ({grid.block_sizes.size} block sizes x {grid.theta_bars.size} "
            f"theta_bar) solved in {seconds * 1e3:.1f} ms"
        )
        print(
            f"  rank of A* from {grid.rank.min()} to {grid.rank.max()}; minimum / ||Y||^2 from "
            f"{grid.objective.min() / y_norm_sq:.4g} to {grid.objective.max() / y_norm_sq:.4g}"
        )
        print(
            f"  width sweep (r = {r_w}, theta_bar = {width_result.theta_bar:g}): fixed theta "
            f"{width_result.fixed_objective[0] / y_norm_sq:.4g} -> "
            f"{width_result.fixed_objective[-1] / y_norm_sq:.4g} of ||Y||^2 (d = {widths[0]} -> "
            f"{widths[-1]}); eq. 7 stays at {width_result.scaled_objective[0] / y_norm_sq:.4g}"
        )
        for path in [out / "sweep.json", *pngs]:
            print(f"  wrote {path}")
    return 0
