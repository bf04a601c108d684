"""``structdrop solve``: the closed-form global minimum of the DropBlock objective (corrected Theorem 7)."""

from __future__ import annotations

import argparse
import json

import numpy as np

from ._common import CliError, positive_int, probability

NAME = "solve"
HELP = "closed-form global minimum of the DropBlock objective (corrected Theorem 7)"
DESCRIPTION = """\
Minimise F(A) = ||Y - A||_F^2 + beta_bar ||sigma(A)||_(r)^2 over every output A = U V^T X a
network can produce (corrected Theorem 7; with --X, A is restricted to the row space of X).
Prints rho, the rank, the minimum and the leading singular values of A*.

Inputs are .npy, .npz (the first array, or --key/--X-key) or .csv (comma-separated, one matrix
row per line). Y is a x N (targets as columns), X is b x N.

--theta is the product-space retain probability theta_bar (beta_bar = (1 - theta)/theta). With
--width d it is instead the retain probability of a width-d network, beta_bar = (r/d)(1-theta)/theta
(eq. 7, Lemma 2)."""
EPILOG = """\
examples:
  structdrop solve Y.npy --block-size 5 --theta 0.5
  structdrop solve Y.npy --X X.npy --block-size 5 --theta 0.5 --width 50 --out A.npy
  structdrop solve data.npz --key Y --X data.npz --X-key X -r 10 --theta 0.8 --json"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("Y", help="targets Y (a x N): .npy, .npz or .csv")
    parser.add_argument("-r", "--block-size", type=positive_int, required=True, metavar="R",
                        help="block size r (1 = Dropout)")
    parser.add_argument("--theta", type=probability, required=True,
                        help="retain probability in (0, 1]: theta_bar, or the network's theta with --width")
    parser.add_argument("--width", type=positive_int, metavar="D", default=None,
                        help="hidden width d of the network trained with --theta (r must divide d)")
    parser.add_argument("--X", dest="X", metavar="X_FILE", default=None,
                        help="data X (b x N): restricts A to X's row space")
    parser.add_argument("--key", default=None, help="array name of Y inside a .npz archive (default: the first)")
    parser.add_argument("--X-key", dest="X_key", default=None,
                        help="array name of X inside a .npz archive (default: the first)")
    parser.add_argument("--method", choices=("sweep", "search"), default="sweep",
                        help="sweep: O(n) (default); search: the literal Theorem 7 scan over (rho, lambda)")
    parser.add_argument("--out", default=None, metavar="A_FILE",
                        help="write A* here (.npy, .npz under key 'A', or .csv)")
    parser.add_argument("--top", type=positive_int, default=10, metavar="K",
                        help="how many leading singular values to print (default 10)")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object instead")


def _format_values(values: np.ndarray, top: int) -> str:
    shown = ", ".join(f"{v:.6g}" for v in values[:top])
    return shown + (", ..." if values.size > top else "")


def run(args: argparse.Namespace) -> int:
    import structdrop

    from .._io import load_matrix, save_matrix

    Y = load_matrix(args.Y, key=args.key, what="Y")
    X = None if args.X is None else load_matrix(args.X, key=args.X_key, what="X")
    if Y.ndim != 2:
        raise CliError(f"Y '{args.Y}' must be a 2-D array (a x N), got shape {Y.shape}")
    if X is not None and X.ndim != 2:
        raise CliError(f"X '{args.X}' must be a 2-D array (b x N), got shape {X.shape}")
    r = args.block_size
    if args.width is not None:
        beta_bar = structdrop.beta_for_width(args.theta, args.width, r)
        theta_bar = 1.0 / (1.0 + beta_bar)
    else:
        theta_bar = args.theta
    result = structdrop.dropblock_global_min(Y, r, theta_bar, X=X, method=args.method)
    if args.out is not None:
        save_matrix(args.out, result.A)
    total = float(np.sum(np.asarray(Y, dtype=np.float64) ** 2))
    if args.json:
        print(json.dumps({
            "rho": result.rho,
            "rank": result.rank,
            "objective": result.objective,
            "beta_bar": result.beta,
            "theta_bar": theta_bar,
            "block_size": r,
            "residual": result.residual,
            "y_norm_sq": total,
            "singular_values": result.singular_values.tolist(),
            "target_singular_values": result.target_singular_values.tolist(),
            "method": args.method,
            "out": args.out,
        }))
        return 0
    a, N = Y.shape
    setting = f"r = {r}, theta_bar = {theta_bar:.6g} (beta_bar = {result.beta:.6g})"
    if args.width is not None:
        setting += f" from theta = {args.theta:g} at width d = {args.width}"
    shape_x = "" if X is None else f", X {X.shape[0]} x {X.shape[1]}"
    print(f"DropBlock global minimum (corrected Theorem 7): Y {a} x {N}{shape_x}; {setting}; method {args.method}")
    print(f"  rho        {result.rho}")
    print(f"  rank       {result.rank}")
    print(f"  objective  {result.objective:.10g}   ({result.objective / total:.6g} of ||Y||^2 = {total:.6g})"
          if total > 0 else f"  objective  {result.objective:.10g}")
    if X is not None:
        print(f"  residual   {result.residual:.6g}   (part of Y outside X's row space)")
    print(f"  singular values of A*  {_format_values(result.singular_values, args.top)}")
    print(f"  singular values of Y{'P' if X is not None else ''}  {_format_values(result.target_singular_values, args.top)}")
    if args.out is not None:
        print(f"  wrote A* ({result.A.shape[0]} x {result.A.shape[1]}) to {args.out}")
    return 0
