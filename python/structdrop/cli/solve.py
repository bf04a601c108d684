"""``structdrop solve``: the closed-form global minimum of the DropBlock objective (corrected
Theorem 7)."""

from __future__ import annotations

import argparse
import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ._common import (
    CliError,
    MissingDependency,
    add_deprecated_alias,
    add_strength_options,
    nonnegative_float,
    positive_int,
    probability,
    progress_bar,
    refuse_outputs_onto_inputs,
    warn_deprecated_flag,
)

NAME = "solve"
HELP = "closed-form global minimum of the DropBlock objective (corrected Theorem 7)"
DESCRIPTION = """\
Minimise F(A) = ||Y - A||_F^2 + beta_bar ||sigma(A)||_(r)^2 over every output A = U V^T X a
network can produce (corrected Theorem 7; with --X, A is restricted to the row space of X).
Prints rho, the rank, the minimum and the leading singular values of A*.

Inputs are .npy, .npz (the first array, or --key/--X-key) or .csv (comma-separated, one matrix
row per line). Y is a x N (targets as columns), X is b x N. .npy files are memory-mapped and read
in column chunks, so X may be larger than memory; a progress bar appears on stderr when a pass
over the data takes more than a second.

With --X the minimiser is A* = C X; --out writes the coefficients C (a x b), --out-A writes A*
itself (a x N, written in column chunks to a .npy). Without --X, C = A* and --out writes A*.
An output path that names an input (or the other output), through a link or not, is refused
before anything is read; each output is written beside its target and renamed into place when
complete, so a failure leaves an earlier file at that path as it was.

The strength is exactly one of --theta-bar (the product-space retain probability theta_bar),
--beta (beta_bar = (1 - theta_bar)/theta_bar itself), or --theta with --width d: the retain
probability of a width-d network, beta_bar = (r/d)(1 - theta)/theta (eq. 7, Lemma 2). Before 1.0
--theta alone meant --theta-bar and -r meant --block-size: both still work, with a note on
stderr.

--dask ADDRESS computes the moments of X and Y on a running dask.distributed scheduler (every
worker reads its own column blocks of the .npy files, so they must see the same paths); --dask
local starts a LocalCluster on this machine. Needs the 'dask' extra."""
EPILOG = """\
examples:
  structdrop solve Y.npy --block-size 5 --theta-bar 0.5
  structdrop solve Y.npy --X X.npy --block-size 5 --theta 0.5 --width 50 --out C.npy --out-A A.npy
  structdrop solve Y.npy --X X.npy --block-size 10 --beta 0.25 --dask local --json
  structdrop solve data.npz --key Y --X data.npz --X-key X --block-size 10 --theta-bar 0.8 --json"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("Y", help="targets Y (a x N): .npy, .npz or .csv")
    parser.add_argument(
        "--block-size",
        type=positive_int,
        default=None,
        metavar="R",
        help="block size r (1 = Dropout); required",
    )
    add_deprecated_alias(parser, "-r", "block_size", positive_int, "--block-size")
    strength = parser.add_mutually_exclusive_group()
    # --theta comes first: the documentation test finds an option's entry by substring
    strength.add_argument(
        "--theta",
        type=probability,
        default=None,
        help="retain probability in (0, 1] of the width-d network given by --width",
    )
    add_strength_options(
        strength,
        ("--theta-bar", "--beta"),
        (probability, nonnegative_float),
        (
            "product-space retain probability theta_bar in (0, 1]",
            "product-space strength beta_bar = (1 - theta_bar)/theta_bar >= 0",
        ),
    )
    parser.add_argument(
        "--width",
        type=positive_int,
        metavar="D",
        default=None,
        help="hidden width d of the network trained with --theta (block size must divide d)",
    )
    parser.add_argument(
        "--X",
        dest="X",
        metavar="X_FILE",
        default=None,
        help="data X (b x N): restricts A to X's row space",
    )
    parser.add_argument(
        "--key", default=None, help="array name of Y inside a .npz archive (default: the first)"
    )
    parser.add_argument(
        "--X-key",
        dest="X_key",
        default=None,
        help="array name of X inside a .npz archive (default: the first)",
    )
    parser.add_argument(
        "--method",
        choices=("sweep", "search"),
        default="sweep",
        help="sweep: O(n) (default); search: the literal Theorem 7 scan over (rho, lambda)",
    )
    parser.add_argument(
        "--out",
        default=None,
        metavar="C_FILE",
        help="write the coefficients C with A* = C X here (A* itself without --X); "
        ".npy, .npz under key 'C', or .csv",
    )
    parser.add_argument(
        "--out-A",
        dest="out_A",
        default=None,
        metavar="A_FILE",
        help="write A* (a x N) here; .npy is written in column chunks",
    )
    parser.add_argument(
        "--dask",
        default=None,
        metavar="ADDRESS",
        help="compute the moments on a dask.distributed scheduler at ADDRESS, or 'local'",
    )
    parser.add_argument(
        "--top",
        type=positive_int,
        default=10,
        metavar="K",
        help="how many leading singular values to print (default 10)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument(
        "--json", action="store_true", help="print the result as one JSON object instead"
    )


def _format_values(values: np.ndarray, top: int) -> str:
    shown = ", ".join(f"{v:.6g}" for v in values[:top])
    return shown + (", ..." if values.size > top else "")


def _load(path: str, key: str | None, what: str, on_dask: bool) -> Any:
    """The matrix in ``path``: mapped for .npy (a lazy dask array with --dask), else read whole."""
    from .._data.io import MappedNpy, load_matrix

    if on_dask and Path(path).suffix.lower() == ".npy":
        # Workers open the file themselves (MappedNpy pickles as its path) and pread their blocks.
        matrix: Any = MappedNpy(path, what)
    else:
        matrix = load_matrix(path, key=key, what=what, mmap=True)
    if len(matrix.shape) != 2:
        expected = "a x N" if what == "Y" else "b x N"
        raise CliError(
            f"{what} '{path}' must be a 2-D array ({expected}), got shape {matrix.shape}"
        )
    if not on_dask:
        return matrix
    import dask.array as da

    columns = max(1, CHUNK_BYTES // (8 * max(1, matrix.shape[0])))
    return da.from_array(matrix, chunks=(matrix.shape[0], columns), asarray=True, fancy=False)


#: Bytes of one column block of X read per task on Dask.
CHUNK_BYTES = 64 * 2**20


@contextlib.contextmanager
def _dask_client(address: str | None) -> Iterator[Any]:
    """A dask.distributed client for --dask (None without it); a LocalCluster for 'local'."""
    if address is None:
        yield None
        return
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise MissingDependency(
            "--dask needs dask.distributed: pip install 'structdrop[dask]'"
        ) from None
    if address == "local":
        with LocalCluster(dashboard_address=None) as cluster, Client(cluster) as client:
            yield client
        return
    try:
        client = Client(address, timeout=30)
    except OSError as exc:
        raise CliError(f"--dask: cannot reach a scheduler at {address}: {exc}") from None
    with client:
        yield client


def _write_output(path: str, coefficients: np.ndarray, X: Any, progress: bool) -> tuple[int, int]:
    """A* = C X to ``path``: in column chunks into a .npy, whole for .npz/.csv. Returns its
    shape."""
    from .._data.atomic_write import replacing
    from .._data.io import save_matrix
    from .._data.memmap_chunks import ChunkReadError, column_chunks

    a, n = coefficients.shape[0], X.shape[1]
    if Path(path).suffix.lower() != ".npy":
        save_matrix(path, coefficients @ np.asarray(X), key="A")
        return a, n
    step = max(1, CHUNK_BYTES // (8 * max(a, X.shape[0])))
    try:
        with replacing(path) as partial:
            out = np.lib.format.open_memmap(partial, mode="w+", dtype=np.float64, shape=(a, n))
            # pread from a mapped X: the resident set grows by a chunk
            with progress_bar(n, "writing A*", 1.0 if progress else None, "sample", True) as bar:
                for cols, (chunk,) in column_chunks([("X", X)], step):
                    out[:, cols] = coefficients @ np.asarray(chunk)
                    bar.update(cols.stop - cols.start)
            out.flush()
            del out  # unmapped before the rename (Windows cannot rename a mapped file)
    except ChunkReadError as exc:  # not the output's fault: say so
        raise CliError(str(exc)) from None
    except OSError as exc:
        raise CliError(f"output '{path}': cannot write it: {exc.strerror or exc}") from None
    return a, n


def _strength(args: argparse.Namespace) -> dict[str, float]:
    """The solver's strength keyword, from --theta-bar, --beta, or --theta with --width."""
    import structdrop

    if args.block_size is None:
        raise CliError("the block size is required: --block-size R")
    if args.theta is not None and args.width is None:  # the meaning of --theta before 1.0
        warn_deprecated_flag("--theta without --width", "--theta-bar")
        args.theta_bar, args.theta = args.theta, None
    if args.width is not None:
        if args.theta is None:
            raise CliError("--width needs --theta, the retain probability of that network")
        return {"beta": structdrop.beta_for_width(args.theta, args.width, args.block_size)}
    if args.theta_bar is not None:
        return {"theta_bar": args.theta_bar}
    if args.beta is not None:
        return {"beta": args.beta}
    raise CliError("give the strength: one of --theta-bar, --beta, or --theta with --width")


def run(args: argparse.Namespace) -> int:
    import structdrop

    from .._data.io import save_matrix

    strength = _strength(args)
    if args.dask is not None and args.X is None:
        raise CliError("--dask computes the moments of X and Y: give --X")
    # Before anything is read: writing onto an input would destroy it while it is being read.
    refuse_outputs_onto_inputs(
        inputs={"Y": args.Y, "--X": args.X}, outputs={"--out": args.out, "--out-A": args.out_A}
    )
    with _dask_client(args.dask) as client:
        on_dask = client is not None
        Y = _load(args.Y, args.key, "Y", on_dask)
        X = None if args.X is None else _load(args.X, args.X_key, "X", on_dask)
        r = args.block_size
        result = structdrop.dropblock_global_min(
            Y,
            X=X,
            block_size=r,
            method=args.method,
            progress=False if (args.quiet or args.json) else 1.0,
            **strength,
        )
        theta_bar = 1.0 / (1.0 + result.beta) if args.theta_bar is None else args.theta_bar
    if args.out is not None:
        save_matrix(args.out, result.coefficients, key="C" if X is not None else "A")
    shape_A = None
    if args.out_A is not None:
        # On Dask, X is a lazy array of the workers' blocks: read it here the way the command
        # reads any input (mapped .npy; .npz under --X-key; .csv whole).
        data = _load(args.X, args.X_key, "X", on_dask=False) if on_dask and X is not None else X
        if X is None:
            save_matrix(args.out_A, result.coefficients, key="A")
            shape_A = result.coefficients.shape
        else:
            shape_A = _write_output(
                args.out_A, result.coefficients, data, not (args.quiet or args.json)
            )
    # ||Y||^2 = ||Y P||^2 + ||Y (I - P)||^2, without another pass over Y.
    total = float(np.sum(result.target_singular_values**2)) + result.residual
    if args.json:
        print(
            json.dumps(
                {
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
                    "route": result.route,
                    "error_estimate": result.error_estimate,
                    "x_rank": result.x_rank,
                    "out": args.out,
                    "out_A": args.out_A,
                }
            )
        )
        return 0
    a, N = Y.shape
    setting = f"r = {r}, theta_bar = {theta_bar:.6g} (beta_bar = {result.beta:.6g})"
    if args.width is not None:
        setting += f" from theta = {args.theta:g} at width d = {args.width}"
    shape_x = "" if X is None else f", X {X.shape[0]} x {X.shape[1]}"
    print(
        f"DropBlock global minimum (corrected Theorem 7): Y {a} x {N}{shape_x}; {setting}; method "
        f"{args.method}"
    )
    print(f"  rho        {result.rho}")
    print(f"  rank       {result.rank}")
    print(
        f"  objective  {result.objective:.10g}   ({result.objective / total:.6g} of ||Y||^2 = "
        f"{total:.6g})"
        if total > 0
        else f"  objective  {result.objective:.10g}"
    )
    if X is not None:
        print(f"  residual   {result.residual:.6g}   (part of Y outside X's row space)")
        print(
            f"  route      {result.route} (rank of X {result.x_rank}; estimated relative error "
            f"{result.error_estimate:.1e}{'; moments on Dask' if on_dask else ''})"
        )
    print(f"  singular values of A*  {_format_values(result.singular_values, args.top)}")
    print(
        f"  singular values of Y{'P' if X is not None else ''}  "
        f"{_format_values(result.target_singular_values, args.top)}"
    )
    if args.out is not None:
        what = f"C ({a} x {X.shape[0]}, A* = C X)" if X is not None else f"A* ({a} x {N})"
        print(f"  wrote {what} to {args.out}")
    if shape_A is not None:
        print(f"  wrote A* ({shape_A[0]} x {shape_A[1]}) to {args.out_A}")
    return 0
