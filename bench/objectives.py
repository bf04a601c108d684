"""Benchmark: one exact deterministic objective, C++ from cached moments vs the direct
NumPy formula.

For each (scheme, N, d) it times, in one run:
  numpy   structdrop.reference.objectives.objective_terms: the direct formula over all N samples
          (G = V^T X formed chunk by chunk, fit and regulariser summed over the samples);
  cpp     structdrop.objective_terms(scheme, U, V, moments) with moments = data_moments(X, Y)
          cached (what an SGD loop that records the objective every few steps pays);
  moments structdrop.data_moments(X, Y) once (C++, one O((a + b) b N) pass), for reference.
It prints a markdown table of medians and ratios and writes JSON with --json. Each cpp result is
checked against the NumPy value (relative difference reported).

    python bench/objectives.py            # N = 1e3 .. 1e6, d = 10 .. 1000
    python bench/objectives.py --quick    # small grid, seconds
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from functools import partial

import numpy as np

import structdrop as sd
from structdrop.reference import objectives as ref


def median_time(fn, repeats: int, min_total: float = 0.0) -> tuple[float, object]:
    times, result = [], None
    start_all = time.perf_counter()
    while len(times) < repeats or (
        time.perf_counter() - start_all < min_total and len(times) < 10_000
    ):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def schemes_for(d: int):
    block = max(1, d // 10)
    return [
        ("dropout", sd.Dropout(0.7)),
        (f"dropblock r={block}", sd.DropBlock(block, theta=0.7)),
        ("overlapping r=5", sd.OverlappingDropBlock(min(5, d), theta=0.7)),
        ("dropconnect", sd.DropConnect(0.7)),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small grid (N <= 1e5, d <= 100)")
    parser.add_argument("--json", default=None, help="write the results as JSON to this path")
    parser.add_argument("--a", type=int, default=8, help="rows of Y (default 8)")
    parser.add_argument("--b", type=int, default=64, help="rows of X (default 64)")
    parser.add_argument(
        "--repeats", type=int, default=None, help="timed repeats of the NumPy formula"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    Ns = [1_000, 100_000] if args.quick else [1_000, 10_000, 100_000, 1_000_000]
    ds = [10, 100] if args.quick else [10, 100, 1000]
    repeats = args.repeats or (2 if args.quick else 3)
    a, b = args.a, args.b
    rng = np.random.default_rng(args.seed)

    rows = []
    for N in Ns:
        X = rng.standard_normal((b, N))
        Y = rng.standard_normal((a, N))
        t_mom, moments = median_time(partial(sd.data_moments, X, Y), repeats)
        for d in ds:
            U = rng.standard_normal((a, d)) / np.sqrt(d)
            V = rng.standard_normal((b, d)) / np.sqrt(b)
            for name, scheme in schemes_for(d):
                t_np, (fit, reg) = median_time(
                    partial(ref.objective_terms, scheme, Y, U, V, X), repeats
                )
                t_cpp, terms = median_time(
                    partial(sd.objective_terms, scheme, U, V, moments), 5, min_total=0.2
                )
                expected = fit + reg
                rel = abs(terms.objective - expected) / abs(expected)
                rows.append(
                    dict(
                        scheme=name,
                        N=N,
                        d=d,
                        a=a,
                        b=b,
                        numpy_s=t_np,
                        cpp_cached_s=t_cpp,
                        moments_s=t_mom,
                        speedup_cached=t_np / t_cpp,
                        speedup_with_moments=t_np / (t_cpp + t_mom),
                        rel_diff=rel,
                    )
                )
                r = rows[-1]
                print(
                    f"{name:>18} N={N:>8} d={d:>5}: numpy {t_np * 1e3:10.2f} ms  cpp "
                    f"{t_cpp * 1e3:8.3f} ms  x{r['speedup_cached']:9.1f}  rel {rel:.1e}",
                    flush=True,
                )
        del X, Y

    print()
    print(
        f"a = {a}, b = {b}; medians; cpp = one objective from cached moments; moments = "
        "data_moments once."
    )
    print()
    print(
        "| scheme | N | d | NumPy direct (ms) | C++ cached (ms) | speedup | C++ moments once (ms) "
        "| speedup incl. moments | rel. diff |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['scheme']} | {r['N']:,} | {r['d']} | {r['numpy_s'] * 1e3:.2f} | "
            f"{r['cpp_cached_s'] * 1e3:.4f} | {r['speedup_cached']:.0f}x | "
            f"{r['moments_s'] * 1e3:.2f} | {r['speedup_with_moments']:.1f}x | {r['rel_diff']:.1e} |"
        )
    if args.json:
        meta = dict(
            benchmark="objectives",
            quick=args.quick,
            numpy=np.__version__,
            python=platform.python_version(),
            machine=platform.machine(),
            processor=platform.processor(),
        )
        with open(args.json, "w") as fh:
            json.dump(dict(meta=meta, rows=rows), fh, indent=2)
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
