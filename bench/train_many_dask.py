"""Benchmark of train_many on a Dask cluster: R runs locally vs on a dask.distributed LocalCluster.

The paper's synthetic data (a, b, N = 80, 100, 1000; structdrop.paper_synthetic), width d = 50,
DropBlock(5, theta=0.5), lr = 1e-7 (nothing diverges), R runs with seeds 0..R-1. Measured in one
run:

1. ``train_many(..., threads=1)`` here (one core);
2. ``train_many(..., threads=None)`` here (all cores);
3. ``train_many(..., client=client)`` on a LocalCluster of W worker processes with one thread each
   (the call only; the cluster's start-up is reported separately, as a user starts it once);

and checks that every run of 3 is bit-identical to the same run of 1. Each timing is the best of
``--repeats`` calls (the machine is shared: the minimum is the least disturbed). Usage:
    python bench/train_many_dask.py [--quick] [--runs 64] [--workers 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import logging
import os
import time

import numpy as np
from _timing import machine_info, markdown_table, write_json

import structdrop as sd
from structdrop.schemes import DropBlock


def best_of(fn, repeats: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="2000 steps per run, one repeat")
    parser.add_argument("--runs", type=int, default=64, help="number of runs R (default 64)")
    parser.add_argument(
        "--workers", type=int, default=2, help="worker processes of the LocalCluster (default 2)"
    )
    parser.add_argument(
        "--steps", type=int, default=None, help="steps per run (default 20000, --quick 2000)"
    )
    parser.add_argument(
        "--repeats", type=int, default=None, help="timings per setting (default 3, --quick 1)"
    )
    parser.add_argument("--json", help="write the measurements to this JSON file")
    args = parser.parse_args()
    steps = args.steps or (2000 if args.quick else 20000)
    repeats = args.repeats or (1 if args.quick else 3)

    from distributed import Client, LocalCluster

    problem = sd.paper_synthetic(0)
    rng = np.random.default_rng(1)
    d = 50
    U0, V0 = 0.1 * rng.standard_normal((80, d)), 0.1 * rng.standard_normal((100, d))
    common = dict(
        scheme=DropBlock(5, theta=0.5),
        lr=1e-7,
        iterations=steps,
        record_every=steps // 10,
        seed=range(args.runs),
    )

    def call(**kwargs):
        return sd.train_many(problem.X, problem.Y, U0, V0, **common, **kwargs)

    one_core, reference = best_of(lambda: call(threads=1), repeats)
    all_cores, _ = best_of(lambda: call(threads=None), repeats)
    start = time.perf_counter()
    with (
        LocalCluster(
            n_workers=args.workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
            silence_logs=logging.ERROR,
        ) as cluster,
        Client(cluster) as client,
    ):
        client.wait_for_workers(args.workers)
        startup = time.perf_counter() - start
        on_cluster, remote = best_of(lambda: call(client=client), repeats)
    identical = all(
        all(
            getattr(r, f).tobytes() == getattr(here, f).tobytes()
            for f in ("U", "V", "stochastic_objective", "deterministic_objective")
        )
        for r, here in zip(remote, reference)
    )
    rows = [
        ["train_many, threads=1 (here)", one_core, 1.0],
        [f"train_many, threads=0 (here, {os.cpu_count()} cores)", all_cores, one_core / all_cores],
        [
            f"train_many, client= LocalCluster({args.workers} x 1 thread)",
            on_cluster,
            one_core / on_cluster,
        ],
    ]
    print(
        f"## {args.runs} runs of {steps} steps (a, b, N, d = 80, 100, 1000, {d}; DropBlock("
        "5, theta=0.5))\n"
    )
    print(markdown_table(["call", "seconds", "speed-up over threads=1"], rows))
    print(
        f"\nLocalCluster start-up ({args.workers} worker processes): {startup:.2f} s (not in the "
        "timings)"
    )
    print(f"every cluster run bit-identical to the local run: {identical}")
    write_json(
        args.json,
        {
            "machine": machine_info(),
            "runs": args.runs,
            "steps": steps,
            "workers": args.workers,
            "repeats": repeats,
            "seconds": {"threads_1": one_core, "threads_all": all_cores, "cluster": on_cluster},
            "cluster_startup_seconds": startup,
            "bit_identical": identical,
        },
    )
    if not identical:
        raise SystemExit("cluster results differ from the local ones")


if __name__ == "__main__":
    main()
