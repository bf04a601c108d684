"""Benchmark of the closed-form solver: the prox of beta ||.||_(r)^2 (Theorem 7).

Times, in one run and on the same inputs (|N(0, 1)| values sorted descending, r = max(1, n/20),
beta = 1):
  - the C++ sweep kernel (structdrop._core.prox_sweep on sorted input) and the public API
    structdrop.prox_ksupport_sq (which also sorts);
  - the C++ literal Theorem 7 search;
  - the NumPy reference sweep and search (structdrop.reference);
  - ModOpt's KSupportNorm prox, when modopt is installed (a public peer), and how often its
    result differs from ours;
  - np.copy of the input, the floor any O(n) method pays.
The search is timed only up to sizes where one call takes about a second.

Usage: python bench/solver.py [--quick] [--json results.json]
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings

import numpy as np
from _timing import machine_info, markdown_table, median_seconds, write_json

import structdrop as sd
from structdrop import _core, reference


def sorted_values(n: int, seed: int = 0) -> np.ndarray:
    values = np.abs(np.random.default_rng(seed).standard_normal(n))
    values.sort()
    return np.ascontiguousarray(values[::-1])


def load_modopt():
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from modopt.opt.proximity import KSupportNorm  # type: ignore
    except Exception:
        return None
    return KSupportNorm


def time_search_until(fn, budget: float) -> float:
    """One timing when a single call is slow, else a median."""
    start = time.perf_counter()
    fn()
    once = time.perf_counter() - start
    if once > budget / 3:
        return once
    return median_seconds(fn, repeats=5, max_time=budget)


def modopt_agreement(KSupportNorm, trials: int) -> dict:
    """Fraction of random problems where ModOpt's prox differs from ours (max |diff| > 1e-6 max m)."""
    rng = np.random.default_rng(1)
    differs = 0
    worst = 0.0
    for _ in range(trials):
        n = int(rng.integers(2, 60))
        m = np.abs(rng.standard_normal(n)) * 10.0 ** rng.uniform(-2, 2)
        r = int(rng.integers(1, n + 1))
        beta = float(10.0 ** rng.uniform(-2, 2))
        ours = sd.prox_ksupport_sq(m, r, beta).values
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            theirs = np.asarray(KSupportNorm(beta=beta, k_value=r).op(m), dtype=float)
        gap = float(np.max(np.abs(ours - theirs)) / m.max())
        worst = max(worst, gap)
        differs += gap > 1e-6
    return {"trials": trials, "differs": differs, "fraction": differs / trials, "worst_relative_gap": worst}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes only (seconds)")
    parser.add_argument("--json", help="write the measurements to this JSON file")
    args = parser.parse_args(argv)

    sizes = [10**2, 10**3, 10**4, 10**5] if args.quick else [10**2, 10**3, 10**4, 10**5, 10**6, 10**7]
    search_budget = 0.5 if args.quick else 2.0
    KSupportNorm = load_modopt()
    beta = 1.0
    rows, records = [], []
    search_alive = {"cpp": True, "numpy": True, "modopt": KSupportNorm is not None}
    for n in sizes:
        m = sorted_values(n)
        r = max(1, n // 20)
        rec = {"n": n, "r": r, "beta": beta}
        rec["copy"] = median_seconds(lambda: np.copy(m))
        rec["cpp_sweep"] = median_seconds(lambda: _core.prox_sweep(m, r, beta))
        rec["api_sweep"] = median_seconds(lambda: sd.prox_ksupport_sq(m, r, beta))
        rec["numpy_sweep"] = median_seconds(lambda: reference.prox_ksupport_sq(m, r, beta), repeats=5, max_time=20)
        for key, fn in (
            ("cpp", lambda: _core.prox_search(m, r, beta)),
            ("numpy", lambda: reference.prox_ksupport_sq(m, r, beta, method="search")),
        ):
            rec[f"{key}_search"] = time_search_until(fn, search_budget) if search_alive[key] else float("nan")
            if rec[f"{key}_search"] > search_budget / 2:
                search_alive[key] = False
        if search_alive["modopt"]:
            op = KSupportNorm(beta=beta, k_value=r)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                rec["modopt"] = time_search_until(lambda: op.op(m), search_budget)
            if rec["modopt"] > search_budget / 2:
                search_alive["modopt"] = False
        else:
            rec["modopt"] = float("nan")
        records.append(rec)
        rows.append([
            n, r, rec["copy"] * 1e3, rec["cpp_sweep"] * 1e3, rec["cpp_sweep"] / rec["copy"], rec["api_sweep"] * 1e3,
            rec["numpy_sweep"] * 1e3, rec["numpy_sweep"] / rec["cpp_sweep"], rec["cpp_search"] * 1e3,
            rec["numpy_search"] * 1e3, rec["numpy_search"] / rec["cpp_search"], rec["modopt"] * 1e3,
            rec["modopt"] / rec["cpp_sweep"],
        ])
        print(f"n={n:>9}: C++ sweep {rec['cpp_sweep'] * 1e3:.3f} ms", file=sys.stderr)

    print("## Prox of beta ||.||_(r)^2, r = n/20, beta = 1 (median ms)\n")
    print(markdown_table(
        ["n", "r", "np.copy", "C++ sweep", "sweep/copy", "API (sort+sweep)", "NumPy sweep", "NumPy/C++ sweep",
         "C++ search", "NumPy search", "NumPy/C++ search", "ModOpt", "ModOpt/C++ sweep"],
        rows,
    ))

    # The search target case: n = 2000, r = 1000.
    m = sorted_values(2000, seed=2)
    target = {
        "n": 2000, "r": 1000,
        "cpp_search": median_seconds(lambda: _core.prox_search(m, 1000, beta)),
        "numpy_search": median_seconds(lambda: reference.prox_ksupport_sq(m, 1000, beta, method="search"), repeats=5),
    }
    target["ratio"] = target["numpy_search"] / target["cpp_search"]
    print("\n## Literal Theorem 7 search at n = 2000, r = 1000\n")
    print(markdown_table(["C++ search (ms)", "NumPy search (ms)", "NumPy/C++"],
                         [[target["cpp_search"] * 1e3, target["numpy_search"] * 1e3, target["ratio"]]]))

    agreement = None
    if KSupportNorm is not None:
        agreement = modopt_agreement(KSupportNorm, 200 if args.quick else 1000)
        print(f"\nModOpt KSupportNorm differs from structdrop (max gap > 1e-6 max m) on "
              f"{agreement['differs']}/{agreement['trials']} random problems; worst relative gap "
              f"{agreement['worst_relative_gap']:.3g}.")
    else:
        print("\nModOpt not installed (pip install modopt) : peer comparison skipped.")

    write_json(args.json, {"machine": machine_info(), "sizes": records, "search_target": target,
                           "modopt_agreement": agreement})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
