"""Benchmark: structdrop.data_moments against NumPy's own products, time and peak memory.

For each N (b = 500 rows of X, a = 100 rows of Y by default) it times, in one run, with the
repeats of all routes interleaved (so that load on a shared machine hits them alike):
  numpy        X @ X.T and Y @ X.T on float64 data (NumPy dispatches the first to BLAS syrk);
  moments      structdrop.data_moments(X, Y), float64 input;
  moments f32  structdrop.data_moments(X32, Y32), float32 input (converted per column chunk);
  numpy f32    X32 @ X32.T and Y32 @ X32.T in float32 (for reference: less accurate);
  old C++      structdrop._core.objective_moments(X, Y), the previous single-threaded Eigen route;
  memmap       structdrop.data_moments on np.load(..., mmap_mode="r") of X and Y saved to disk
               (page cache warm after the first read), unless --no-memmap.
The ratio columns are each route's median (and best) over NumPy float64's median (and best). Peak
memory is the growth of the process's peak resident set (VmHWM, reset through /proc/self/clear_refs)
during one call, beyond the inputs. Results are checked against the NumPy products (max
relative difference).

    python bench/moments.py                 # N = 1e5 and 4e5
    python bench/moments.py --quick         # N = 2e4, seconds
    python bench/moments.py --json bench/results/moments.json
    python bench/moments.py --threads 1     # one BLAS thread for every route (steadier when busy)
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from functools import partial
from typing import Callable

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _timing import machine_info, markdown_table, peak_rss_growth_mib, write_json  # noqa: E402

import structdrop as sd  # noqa: E402
from structdrop import _core  # noqa: E402


def rel_diff(got, want_gram, want_cross) -> float:
    g, c = (got.gram, got.cross) if isinstance(got, sd.DataMoments) else (got[0], got[1])
    return max(
        float(np.abs(g - want_gram).max() / np.abs(want_gram).max()),
        float(np.abs(c - want_cross).max() / np.abs(want_cross).max()),
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="N = 2e4 only, 3 repeats")
    parser.add_argument("--json", default=None, help="write the results as JSON to this path")
    parser.add_argument("--a", type=int, default=100, help="rows of Y (default 100)")
    parser.add_argument("--b", type=int, default=500, help="rows of X (default 500)")
    parser.add_argument(
        "--N", type=float, nargs="*", default=None, help="sample counts (default 1e5 4e5)"
    )
    parser.add_argument(
        "--repeats", type=int, default=None, help="interleaved timed repeats (default 5)"
    )
    parser.add_argument(
        "--no-cpp", action="store_true", help="skip the old single-threaded C++ route"
    )
    parser.add_argument("--no-memmap", action="store_true", help="skip the memory-mapped route")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="limit BLAS to this many threads for every route (threadpoolctl); default: BLAS's own",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.threads is not None:
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=args.threads, user_api="blas"):
            run(args)
    else:
        run(args)


def numpy_products(X: np.ndarray, Y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The NumPy baseline: X X^T and Y X^T by two BLAS products."""
    return X @ X.T, Y @ X.T


def run(args: argparse.Namespace) -> None:

    Ns = [int(n) for n in (args.N or ([2e4] if args.quick else [1e5, 4e5]))]
    repeats = args.repeats or (3 if args.quick else 5)
    a, b = args.a, args.b
    rng = np.random.default_rng(args.seed)
    rows = []
    for N in Ns:
        X = rng.standard_normal((b, N))
        Y = rng.standard_normal((a, N))
        X32, Y32 = X.astype(np.float32), Y.astype(np.float32)
        # partial binds this N's arrays: each route holds them until routes.clear() below.
        routes: dict[str, Callable[[], object]] = {
            "numpy": partial(numpy_products, X, Y),
            "moments": partial(sd.data_moments, X, Y),
            "moments f32": partial(sd.data_moments, X32, Y32),
            "numpy f32": partial(numpy_products, X32, Y32),
        }
        if not args.no_cpp:
            routes["old C++"] = partial(_core.objective_moments, X, Y)
        tmp = None
        if not args.no_memmap:
            tmp = tempfile.TemporaryDirectory(prefix="structdrop-bench-")
            np.save(os.path.join(tmp.name, "X.npy"), X)
            np.save(os.path.join(tmp.name, "Y.npy"), Y)
            Xm = np.load(os.path.join(tmp.name, "X.npy"), mmap_mode="r")
            Ym = np.load(os.path.join(tmp.name, "Y.npy"), mmap_mode="r")
            routes["memmap"] = partial(sd.data_moments, Xm, Ym)

        want_gram, want_cross = X @ X.T, Y @ X.T
        times: dict[str, list[float]] = {name: [] for name in routes}
        results: dict[str, object] = {}
        for name, fn in routes.items():  # warm-up (page faults, BLAS threads, page cache)
            results[name] = fn()
        for _ in range(repeats):
            for name, fn in routes.items():
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
        base = statistics.median(times["numpy"])
        base_best = min(times["numpy"])
        for name in routes:
            t = statistics.median(times[name])
            rows.append(
                dict(
                    N=N,
                    a=a,
                    b=b,
                    route=name,
                    seconds=t,
                    ratio_to_numpy=t / base,
                    best_seconds=min(times[name]),
                    best_ratio_to_numpy=min(times[name]) / base_best,
                    peak_mib=peak_rss_growth_mib(routes[name]),
                    rel_diff=rel_diff(results[name], want_gram, want_cross),
                    samples=times[name],
                )
            )
            r = rows[-1]
            print(
                f"N={N:>9,} {name:>12}: {t:8.3f} s  x{r['ratio_to_numpy']:5.2f} of numpy  "
                f"peak +{r['peak_mib']:8.1f} MiB  rel {r['rel_diff']:.1e}",
                flush=True,
            )
        # Free this N's arrays (and close the memory maps) before the next N allocates its own.
        routes.clear()
        results.clear()
        if tmp is not None:
            del Xm, Ym
            tmp.cleanup()
        del X, Y, X32, Y32

    print()
    threads = (
        "BLAS default threads"
        if args.threads is None
        else f"BLAS limited to {args.threads} thread(s)"
    )
    print(
        f"a = {a}, b = {b}; {threads}; medians of {repeats} interleaved repeats; ratios = over "
        "NumPy float64's median/best (the best of identical BLAS work is the steadier figure when "
        "other jobs share the cores); peak = VmHWM growth during one call (X is b*N*8 bytes)."
    )
    print()
    table = [
        [
            f"{r['N']:,}",
            r["route"],
            r["seconds"],
            f"{r['ratio_to_numpy']:.2f}x",
            r["best_seconds"],
            f"{r['best_ratio_to_numpy']:.2f}x",
            r["peak_mib"],
            f"{r['rel_diff']:.1e}",
        ]
        for r in rows
    ]
    print(
        markdown_table(
            [
                "N",
                "route",
                "median (s)",
                "median ratio",
                "best (s)",
                "best ratio",
                "peak growth (MiB)",
                "rel. diff",
            ],
            table,
        )
    )
    write_json(
        args.json,
        dict(
            benchmark="moments",
            quick=args.quick,
            repeats=repeats,
            blas_threads=args.threads,
            machine=machine_info(),
            rows=rows,
        ),
    )


if __name__ == "__main__":
    main()
