"""Benchmark of the batched closed-form solver (structdrop.sweep_global_min).

10^4 settings (100 block sizes x 100 theta_bar values) on n = 10^5 singular values: the C++
batched kernel (all cores, GIL released) against a Python loop over the NumPy reference prox,
in one run. The NumPy loop is timed on a random subset of the settings and scaled to the full
grid (it would take minutes); the subset's per-setting time is reported as measured.
Also reports the scaling in n and in the number of settings.

Usage: python bench/sweep.py [--quick] [--json results.json]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
from _timing import machine_info, markdown_table, median_seconds, write_json

import structdrop as sd
from structdrop import reference


def spectrum(n: int) -> np.ndarray:
    return np.abs(np.random.default_rng(0).standard_normal(n)) * 10


def time_grid(m, sizes, thetas, threads=None) -> float:
    return median_seconds(
        lambda: sd.sweep_global_min(m, block_sizes=sizes, theta_bars=thetas, threads=threads),
        repeats=3,
        min_time=0.0,
    )


def numpy_loop_per_setting(m, sizes, thetas, samples: int) -> float:
    rng = np.random.default_rng(1)
    start = time.perf_counter()
    for _ in range(samples):
        r = int(rng.choice(sizes))
        theta = float(rng.choice(thetas))
        reference.prox_ksupport_sq(m, r, (1 - theta) / theta)
    return (time.perf_counter() - start) / samples


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="n = 10^4 and 2500 settings")
    parser.add_argument("--json", help="write the measurements to this JSON file")
    args = parser.parse_args(argv)

    n = 10**4 if args.quick else 10**5
    settings = 2500 if args.quick else 10**4
    side = int(round(np.sqrt(settings)))
    sizes = np.arange(1, side + 1)
    thetas = np.linspace(0.05, 0.95, side)
    m = spectrum(n)
    out = {"n": n, "settings": sizes.size * thetas.size, "threads": os.cpu_count()}
    start = time.perf_counter()
    result = sd.sweep_global_min(m, block_sizes=sizes, theta_bars=thetas)
    out["cpp_total_first_call"] = time.perf_counter() - start
    out["cpp_total"] = time_grid(m, sizes, thetas)
    out["cpp_single_thread"] = time_grid(m, sizes, thetas, threads=1)
    samples = 10 if args.quick else 20
    out["numpy_per_setting"] = numpy_loop_per_setting(m, sizes, thetas, samples)
    out["numpy_samples"] = samples
    out["numpy_total_estimated"] = out["numpy_per_setting"] * out["settings"]
    out["speedup"] = out["numpy_total_estimated"] / out["cpp_total"]
    print(f"## {out['settings']} settings on n = {n} singular values\n")
    print(
        markdown_table(
            [
                "C++ batched, all cores (s)",
                "C++ batched, 1 thread (s)",
                "NumPy loop per setting (ms)",
                "NumPy loop, whole grid (s, scaled)",
                "speed-up",
            ],
            [
                [
                    out["cpp_total"],
                    out["cpp_single_thread"],
                    out["numpy_per_setting"] * 1e3,
                    out["numpy_total_estimated"],
                    out["speedup"],
                ]
            ],
        )
    )
    print(f"\nrank range over the grid: {result.rank.min()}..{result.rank.max()}")

    # Scaling in n (fixed 900 settings) and in the number of settings (fixed n).
    n_rows, s_rows = [], []
    for nn in [10**3, 10**4] if args.quick else [10**3, 10**4, 10**5, 10**6]:
        t = time_grid(spectrum(nn), np.arange(1, 31), np.linspace(0.05, 0.95, 30))
        n_rows.append([nn, 900, t, t / 900 * 1e6])
    for side_k in [10, 30, 50] if args.quick else [10, 30, 100, 200]:
        t = time_grid(m, np.arange(1, side_k + 1), np.linspace(0.05, 0.95, side_k))
        s_rows.append([n, side_k * side_k, t, t / (side_k * side_k) * 1e6])
    print("\n## Scaling in n (900 settings)\n")
    print(markdown_table(["n", "settings", "total (s)", "per setting (us)"], n_rows))
    print("\n## Scaling in the number of settings\n")
    print(markdown_table(["n", "settings", "total (s)", "per setting (us)"], s_rows))
    out["scaling_n"] = n_rows
    out["scaling_settings"] = s_rows
    write_json(args.json, {"machine": machine_info(), **out})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
