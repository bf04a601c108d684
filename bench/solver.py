"""Benchmark of the closed-form solver: the public prox of beta ||.||_(r)^2 as users call it.

Times, in one run, the public call ``structdrop.prox_ksupport_sq(x, r, beta)`` (r = max(1, n/20),
beta = 1) on
  - sorted input (|N(0,1)| sorted descending: the O(n) sweep),
  - unsorted input (|N(0,1)| in random order: the sort-free selection),
  - signed input (N(0,1)), and float32 unsorted input (float32 out),
next to the floors np.copy and np.sort of the same array, the NumPy reference
(structdrop.reference, sorts) and ModOpt's KSupportNorm prox when modopt is installed (speed, and
how often its answer differs from ours). Also the batch (rows x n on 1 and 2 threads), the
spectral prox of a matrix next to its SVD, and the literal Theorem 7 search at n = 2000, r = 1000.
n runs from 1e2 to 1e7 (1e8 too without --quick when the machine has the memory for it; one
timing per call there).

The targets (public call <= 10x np.copy unsorted, <= 4x sorted, n = 1e6) are also checked per
magnitude family: |normal|, uniform, exponential and power-law (Pareto, shape 1.5) magnitudes,
r in {50, 5e3, 5e4}, beta in {0.01, 1, 100}, sorted and unsorted, and the batch on the same values
as 10 rows (one thread, <= 10x); each call timed interleaved with np.copy of the same array, in
CPU time and in wall time (on a shared machine the wall time includes waiting for a core), the
worst family first. ``--targets`` runs that table alone.

Usage: python bench/solver.py [--quick] [--targets] [--json results.json]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from functools import partial

import numpy as np
from _timing import machine_info, markdown_table, median_seconds, write_json

import structdrop as sd
from structdrop import _core, reference


def inputs(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    signed = rng.standard_normal(n)
    unsorted = np.abs(signed)
    ordered = np.sort(unsorted)[::-1].copy()
    return {
        "sorted": ordered,
        "unsorted": unsorted,
        "signed": signed,
        "float32": unsorted.astype(np.float32),
    }


def load_modopt():
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from modopt.opt.proximity import KSupportNorm  # type: ignore
    except Exception:
        return None
    return KSupportNorm


def once_or_median(fn, budget: float) -> float:
    """One timing when a single call is slow, else a median."""
    start = time.perf_counter()
    fn()
    once = time.perf_counter() - start
    if once > budget / 3:
        return once
    return median_seconds(fn, repeats=5, max_time=budget)


def modopt_checks(KSupportNorm, trials: int) -> dict:
    """ModOpt's cost on (3, 1, 0.5), k = 2 against ||x||_(2)^2 = 11.25, and how often its prox
    (argmin (1/2)||x - a||^2 + (beta/2)||a||_(k)^2, i.e. ours with the same beta) differs from
    ours."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        x = np.array([3.0, 1.0, 0.5])
        cost = float(KSupportNorm(beta=1.0, k_value=2).cost(x))
        rng = np.random.default_rng(1)
        differs, worst = 0, 0.0
        for _ in range(trials):
            n = int(rng.integers(2, 60))
            m = np.abs(rng.standard_normal(n)) * 10.0 ** rng.uniform(-2, 2)
            r = int(rng.integers(1, n + 1))
            beta = float(10.0 ** rng.uniform(-2, 2))
            ours = sd.prox_ksupport_sq(m, r, beta).values
            theirs = np.asarray(KSupportNorm(beta=beta, k_value=r).op(m), dtype=float)
            gap = float(np.max(np.abs(ours - theirs)) / m.max())
            worst = max(worst, gap)
            differs += gap > 1e-6
    return {
        "cost_3_1_0.5_k2": cost,
        "norm_sq": sd.ksupport_norm_sq(x, 2),
        "trials": trials,
        "prox_differs": differs,
        "worst_relative_gap": worst,
    }


def cpu_seconds(fn, repeats: int = 15) -> float:
    """Least process CPU time of one call (all threads): on a shared machine the wall time
    includes waiting for a core, the CPU time does not."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.process_time()
        fn()
        best = min(best, time.process_time() - start)
    return best


def memory_allows(n: int) -> bool:
    """Input, a sorted copy, two outputs and the reference's arrays: about 8 arrays of n doubles."""
    try:
        available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        return False
    return available > 8 * 8 * n


def vector_rows(sizes, budget, KSupportNorm, progress):
    rows, records = [], []
    alive = {"numpy": True, "modopt": KSupportNorm is not None}
    for n in sizes:
        big = n >= 10**8
        data = inputs(n)
        r, beta = max(1, n // 20), 1.0
        time_it = (lambda fn: once_or_median(fn, budget)) if big else median_seconds
        rec = {"n": n, "r": r, "beta": beta}
        rec["copy"] = time_it(partial(np.copy, data["unsorted"]))
        rec["sort"] = time_it(partial(np.sort, data["unsorted"]))
        for kind, x in data.items():
            rec[f"api_{kind}"] = time_it(partial(sd.prox_ksupport_sq, x, r, beta))
        if alive["numpy"] and not big:
            rec["numpy"] = once_or_median(
                partial(reference.prox_ksupport_sq, data["unsorted"], r, beta), budget
            )
            alive["numpy"] = rec["numpy"] < budget / 2
        else:
            rec["numpy"] = float("nan")
        if alive["modopt"] and not big:
            op = KSupportNorm(beta=beta, k_value=r)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                rec["modopt"] = once_or_median(partial(op.op, data["unsorted"]), budget)
            alive["modopt"] = rec["modopt"] < budget / 2
        else:
            rec["modopt"] = float("nan")
        if n == 10**6:  # the targets: also in CPU time (the machine is shared)
            rec["cpu"] = {
                "copy": cpu_seconds(partial(np.copy, data["unsorted"])),
                "sort": cpu_seconds(partial(np.sort, data["unsorted"])),
            }
            for kind, x in data.items():
                rec["cpu"][kind] = cpu_seconds(partial(sd.prox_ksupport_sq, x, r, beta))
        records.append(rec)
        c = rec["copy"]
        rows.append(
            [
                n,
                c * 1e3,
                rec["sort"] / c,
                rec["api_sorted"] * 1e3,
                rec["api_sorted"] / c,
                rec["api_unsorted"] * 1e3,
                rec["api_unsorted"] / c,
                rec["api_signed"] / c,
                rec["api_float32"] / c,
                rec["api_unsorted"] / n * 1e9,
                rec["numpy"] / rec["api_unsorted"],
                rec["modopt"] / rec["api_unsorted"],
            ]
        )
        progress(
            f"n={n:>10}: copy {c * 1e3:.3f} ms, sorted {rec['api_sorted'] / c:.1f}x, "
            f"unsorted {rec['api_unsorted'] / c:.1f}x copy"
        )
        del data
    return rows, records


TARGET_N = 10**6
TARGET_LIMITS = {"unsorted": 10.0, "sorted": 4.0}


def magnitude_families(n: int, seed: int = 11) -> dict[str, np.ndarray]:
    """Unsorted magnitudes of the distributions the targets are checked on."""
    rng = np.random.default_rng(seed)
    return {
        "|normal|": np.abs(rng.standard_normal(n)),
        "uniform": rng.uniform(0.0, 1.0, n),
        "exponential": rng.exponential(size=n),
        "power law": rng.pareto(1.5, n),
    }


def interleaved_ratios(fn, x: np.ndarray, repeats: int) -> dict[str, float]:
    """fn against np.copy(x), each pair timed back to back (the load of a shared machine changes
    between pairs, less within one), in wall and in process CPU time: the median of the pairs'
    wall ratios, and the ratios of the least times (the least is the call least disturbed by
    other processes; CPU time leaves out the waits for a core)."""
    fn()
    np.copy(x)
    pairs, calls, copies, cpu_calls, cpu_copies = [], [], [], [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        np.copy(x)
        copy, cpu_copy = time.perf_counter() - wall, time.process_time() - cpu
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        call, cpu_call = time.perf_counter() - wall, time.process_time() - cpu
        pairs.append(call / copy)
        calls.append(call)
        copies.append(copy)
        cpu_calls.append(cpu_call)
        cpu_copies.append(cpu_copy)
    return {
        "wall_median_ratio": float(np.median(pairs)),
        "wall_least_ratio": min(calls) / min(copies),
        "cpu_least_ratio": min(cpu_calls) / max(min(cpu_copies), 1e-9),
        "least_ms": min(calls) * 1e3,
    }


def target_records(progress, repeats: int = 9) -> list[dict]:
    """The public call at n = 1e6 per magnitude family, r and beta, sorted and unsorted; and the
    batch on the same values as 10 rows of n/10 (r/10 per row, one thread), against np.copy of
    the matrix."""
    n = TARGET_N
    records = []
    for family, unsorted in magnitude_families(n).items():
        inputs = {"unsorted": unsorted, "sorted": np.sort(unsorted)[::-1].copy()}
        rows = unsorted.reshape(10, n // 10)
        for r in (50, 5000, n // 20):
            for beta in (0.01, 1.0, 100.0):
                rec = {"family": family, "n": n, "r": r, "beta": beta}
                for order, x in inputs.items():
                    rec[order] = interleaved_ratios(
                        partial(sd.prox_ksupport_sq, x, r, beta), x, repeats
                    )
                rec["batch"] = interleaved_ratios(
                    partial(sd.prox_ksupport_sq_batch, rows, r // 10, beta, threads=1),
                    rows,
                    repeats,
                )
                records.append(rec)
        progress(f"targets: {family} done")
    return records


def target_rows(records: list[dict]) -> list[list]:
    """Per family, unsorted and sorted: the worst (r, beta) by each measure; worst family first
    (by its CPU-time ratio against the target)."""
    rows = []
    for family in dict.fromkeys(rec["family"] for rec in records):
        mine = [rec for rec in records if rec["family"] == family]
        row: list = [family]
        for order in ("unsorted", "sorted", "batch"):
            worst = max(mine, key=lambda rec: rec[order]["cpu_least_ratio"])
            row += [
                worst[order]["cpu_least_ratio"],
                f"r={worst['r']}, beta={worst['beta']:g}",
                max(rec[order]["wall_least_ratio"] for rec in mine),
                max(rec[order]["wall_median_ratio"] for rec in mine),
            ]
        rows.append(row)
    rows.sort(
        key=lambda row: (
            -max(
                row[1] / TARGET_LIMITS["unsorted"],
                row[5] / TARGET_LIMITS["sorted"],
                row[9] / TARGET_LIMITS["unsorted"],
            )
        )
    )
    return rows


def print_targets(records: list[dict]) -> None:
    print(
        f"\n## Targets per input family, n = {TARGET_N:.0e}: public call / np.copy of the input, "
        "worst over r in {50, 5e3, 5e4} and beta in {0.01, 1, 100}; worst family first; targets: "
        f"unsorted and batch <= {TARGET_LIMITS['unsorted']:g}x, "
        f"sorted <= {TARGET_LIMITS['sorted']:g}x\n"
    )
    print(
        markdown_table(
            [
                "magnitudes",
                "unsorted: CPU (least)",
                "(at)",
                "wall (least)",
                "wall (median of pairs)",
                "sorted: CPU (least)",
                "(at)",
                "wall (least)",
                "wall (median of pairs)",
                "batch 10 x 1e5: CPU (least)",
                "(at; r/10 per row)",
                "wall (least)",
                "wall (median of pairs)",
            ],
            target_rows(records),
        )
    )
    print(
        f"(load average: {' '.join(f'{v:.1f}' for v in os.getloadavg())} on {os.cpu_count()} cores)"
    )


def families(n: int, seed: int = 5) -> dict[str, np.ndarray]:
    """Inputs that would make a naive selection quadratic."""
    rng = np.random.default_rng(seed)
    ordered = np.sort(rng.exponential(size=n))[::-1].copy()
    half = np.sort(rng.exponential(size=n // 2))
    return {
        "random": rng.exponential(size=n),
        "sorted": ordered,
        "reverse sorted": ordered[::-1].copy(),
        "organ pipe": np.concatenate([half, half[::-1], np.full(n - 2 * half.size, 0.5)]),
        "all ties": np.full(n, 1.7),
        "two clusters": np.where(rng.random(n) < 0.5, 1.0, 1.0 + 1e-9),
    }


def family_rows(sizes, progress):
    """Time per element of the public call on each family (median), to show it flat in n."""
    table, records = {}, []
    for n in sizes:
        for name, x in families(n).items():
            out = np.empty_like(x)
            seconds = median_seconds(
                partial(sd.prox_ksupport_sq, x, max(1, n // 20), 1.0, out=out), repeats=5
            )
            table.setdefault(name, {})[n] = seconds / n * 1e9
            records.append({"family": name, "n": n, "seconds": seconds})
        progress(f"families n={n}: done")
    rows = [[name] + [per[n] for n in sizes] for name, per in table.items()]
    return rows, records


def batch_record(rows_n, cols, progress) -> dict:
    M = np.random.default_rng(3).standard_normal((rows_n, cols))
    r = max(1, cols // 20)
    rec = {"rows": rows_n, "n": cols, "r": r}
    for threads in (1, 2):
        rec[f"threads_{threads}"] = median_seconds(
            partial(sd.prox_ksupport_sq_batch, M, r, 1.0, threads=threads), repeats=5
        )
    for threads in (1, 2):  # CPU time / wall time: how many cores the call kept busy
        wall, cpu = time.perf_counter(), time.process_time()
        sd.prox_ksupport_sq_batch(M, r, 1.0, threads=threads)
        rec[f"cores_busy_{threads}"] = (time.process_time() - cpu) / (time.perf_counter() - wall)
    rec["python_loop"] = median_seconds(
        lambda: [sd.prox_ksupport_sq(row, r, 1.0) for row in M], repeats=3
    )
    rec["speedup_2_threads"] = rec["threads_1"] / rec["threads_2"]
    progress(
        f"batch {rows_n} x {cols}: 1 thread {rec['threads_1'] * 1e3:.1f} ms, 2 threads "
        f"{rec['threads_2'] * 1e3:.1f} ms ({rec['speedup_2_threads']:.2f}x)"
    )
    return rec


def spectral_records(shapes, progress) -> list[dict]:
    """The spectral prox next to the SVD it needs. BLAS runs on one thread when threadpoolctl is
    installed: on a shared machine OpenBLAS's spinning threads made SVD timings vary 100x."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return _spectral(shapes, progress)
    with threadpool_limits(limits=1):
        return _spectral(shapes, progress)


def _spectral(shapes, progress) -> list[dict]:
    out = []
    for shape in shapes:
        X = np.random.default_rng(4).standard_normal(shape)
        r = max(1, min(shape) // 20)
        rec = {"shape": list(shape), "r": r}
        rec["svd"] = median_seconds(partial(np.linalg.svd, X, full_matrices=False), repeats=3)
        rec["prox"] = median_seconds(partial(sd.prox_ksupport_sq, X, r, 1.0), repeats=3)
        out.append(rec)
        progress(
            f"spectral {shape}: svd {rec['svd'] * 1e3:.1f} ms, prox {rec['prox'] * 1e3:.1f} ms"
        )
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small sizes only (seconds)")
    parser.add_argument("--targets", action="store_true", help="only the per-family target table")
    parser.add_argument("--json", help="write the measurements to this JSON file")
    args = parser.parse_args(argv)

    def progress(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    if args.targets:
        targets = target_records(progress)
        print_targets(targets)
        write_json(args.json, {"machine": machine_info(), "targets": targets})
        return 0

    sizes = (
        [10**2, 10**3, 10**4, 10**5] if args.quick else [10**2, 10**3, 10**4, 10**5, 10**6, 10**7]
    )
    if not args.quick:
        if memory_allows(10**8):
            sizes.append(10**8)
        else:
            progress("n = 1e8 skipped: not enough free memory")
    budget = 0.5 if args.quick else 3.0
    KSupportNorm = load_modopt()
    if KSupportNorm is None:
        progress("ModOpt not installed (pip install modopt): peer columns skipped")

    rows, records = vector_rows(sizes, budget, KSupportNorm, progress)
    print(
        "## Public prox of beta ||.||_(r)^2, r = n/20, beta = 1 (median; ratios to np.copy of the "
        "input)\n"
    )
    print(
        markdown_table(
            [
                "n",
                "np.copy ms",
                "np.sort / copy",
                "sorted ms",
                "sorted / copy",
                "unsorted ms",
                "unsorted / copy",
                "signed / copy",
                "float32 / copy",
                "unsorted ns/elem",
                "NumPy ref / API",
                "ModOpt / API",
            ],
            rows,
        )
    )

    family_sizes = [10**4, 10**5, 10**6] if args.quick else [10**4, 10**5, 10**6, 10**7]
    fam_rows, fam_records = family_rows(family_sizes, progress)
    print(
        "\n## Worst-case inputs: ns per element of the public call (out= given), r = n/20, beta = "
        "1\n"
    )
    print(markdown_table(["input"] + [f"n = {n:.0e}" for n in family_sizes], fam_rows))

    target = next((rec for rec in records if rec["n"] == 10**6), None)
    if target is not None:
        cpu = target["cpu"]
        print("\n## n = 1e6 in CPU time (least of 15 calls; ratios to np.copy)\n")
        print(
            markdown_table(
                ["np.copy ms", "np.sort", "sorted", "unsorted", "signed", "float32"],
                [
                    [
                        cpu["copy"] * 1e3,
                        cpu["sort"] / cpu["copy"],
                        cpu["sorted"] / cpu["copy"],
                        cpu["unsorted"] / cpu["copy"],
                        cpu["signed"] / cpu["copy"],
                        cpu["float32"] / cpu["copy"],
                    ]
                ],
            )
        )

    targets = target_records(progress, repeats=3 if args.quick else 9)
    print_targets(targets)

    batch = batch_record(10**3 if args.quick else 10**4, 10**3, progress)
    print(f"\n## Batch: {batch['rows']} rows x {batch['n']}, r = {batch['r']} (median ms)\n")
    print(
        markdown_table(
            [
                "1 thread",
                "2 threads",
                "speed-up",
                "cores busy (1 / 2 threads)",
                "Python loop of single calls",
            ],
            [
                [
                    batch["threads_1"] * 1e3,
                    batch["threads_2"] * 1e3,
                    batch["speedup_2_threads"],
                    f"{batch['cores_busy_1']:.2f} / {batch['cores_busy_2']:.2f}",
                    batch["python_loop"] * 1e3,
                ]
            ],
        )
    )
    print(f"(load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")

    spectral = spectral_records(
        [(100, 100), (300, 200)] if args.quick else [(100, 100), (1000, 1000), (2000, 500)],
        progress,
    )
    print("\n## Spectral prox of a matrix (median ms)\n")
    print(
        markdown_table(
            ["shape", "r", "np.linalg.svd", "prox_ksupport_sq", "prox / svd"],
            [
                [
                    f"{s['shape'][0]}x{s['shape'][1]}",
                    s["r"],
                    s["svd"] * 1e3,
                    s["prox"] * 1e3,
                    s["prox"] / s["svd"],
                ]
                for s in spectral
            ],
        )
    )

    m = inputs(2000, seed=2)["sorted"]
    target = {
        "n": 2000,
        "r": 1000,
        "cpp_search": median_seconds(lambda: _core.prox_search(m, 1000, 1.0)),
        "numpy_search": median_seconds(
            partial(reference.prox_ksupport_sq, m, 1000, 1.0, method="search"), repeats=5
        ),
    }
    target["ratio"] = target["numpy_search"] / target["cpp_search"]
    print("\n## Literal Theorem 7 search at n = 2000, r = 1000\n")
    print(
        markdown_table(
            ["C++ search (ms)", "NumPy search (ms)", "NumPy/C++"],
            [[target["cpp_search"] * 1e3, target["numpy_search"] * 1e3, target["ratio"]]],
        )
    )

    checks = None
    if KSupportNorm is not None:
        checks = modopt_checks(KSupportNorm, 200 if args.quick else 1000)
        print(
            "\nModOpt KSupportNorm(beta=1, k_value=2).cost([3, 1, 0.5]) = "
            f"{checks['cost_3_1_0.5_k2']:g}; ||x||_(2)^2 = {checks['norm_sq']:g}. Its prox differs "
            "from structdrop's (max gap > 1e-6 max m) on "
            f"{checks['prox_differs']}/{checks['trials']} random problems; worst relative gap "
            f"{checks['worst_relative_gap']:.3g}."
        )
    else:
        print("\nModOpt not installed (pip install modopt): peer comparison skipped.")

    write_json(
        args.json,
        {
            "machine": machine_info(),
            "sizes": records,
            "batch": batch,
            "spectral": spectral,
            "search_target": target,
            "modopt": checks,
            "families": fam_records,
            "targets": targets,
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
