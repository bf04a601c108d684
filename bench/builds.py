"""Masked-SGD speed of several builds of structdrop side by side (e.g. before/after a change to
the C++, or the default against the portable ISO C++ build).

Each build is a directory holding an installed structdrop, e.g. made with
    pip install --no-build-isolation --no-deps --target DIR . -Cbuild-dir=BUILD
(add -Ccmake.define.STRUCTDROP_PORTABLE=ON for the portable build).
Every round runs each build in its own process (PYTHONPATH=DIR), in turn, so that load on a shared
machine falls on all builds alike; the table shows medians over rounds. A step's time is the
difference between runs of T and T/2 steps of structdrop.train (set-up and the two recordings
cancel), measured as process CPU time, which is far less sensitive to other processes than wall
time; the best of three repeats per round. Data as bench/sgd.py: a, b, N = 80, 100, 1000. The
"call:" rows time small public calls (an objective, a one-step run, many tiny runs), where the
cost of the bindings themselves shows.
Usage:
    python bench/builds.py --build main=DIR_A --build branch=DIR_B [--rounds 6] [--quick]
                           [--json out.json]
The first build is the baseline of the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

A, B, N = 80, 100, 1000


def child(quick: bool) -> None:
    """Times this interpreter's structdrop; prints {case: us per step} as JSON."""
    import numpy as np

    import structdrop as sd
    from structdrop.schemes import DropBlock, DropConnect, Dropout, NoDropout

    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((B, N)), rng.standard_normal((A, N))
    out = {"module": sd.__file__, "kernels": sd._core.sgd_kernel_isa(), "us": {}}
    for d in (50,) if quick else (50, 500):
        U0, V0 = 0.1 * rng.standard_normal((A, d)), 0.1 * rng.standard_normal((B, d))
        for scheme in (NoDropout(), Dropout(0.5), DropBlock(5, theta=0.5), DropConnect(0.5)):
            for batch in (1, 8):
                T = max(2, (2000 if quick else 10000 if d == 50 else 2000) // batch)
                best = float("inf")
                for _ in range(3):
                    t0 = time.process_time()
                    sd.train(X, Y, U0, V0, scheme, 1e-7, T, batch_size=batch, record_every=10**9)
                    t1 = time.process_time()
                    sd.train(
                        X, Y, U0, V0, scheme, 1e-7, T // 2, batch_size=batch, record_every=10**9
                    )
                    t2 = time.process_time()
                    best = min(best, ((t1 - t0) - (t2 - t1)) / (T - T // 2) * 1e6)
                out["us"][f"d={d} {scheme!r} batch={batch}"] = best
    out["us"].update(call_costs(quick))
    print(json.dumps(out))


def call_costs(quick: bool) -> dict[str, float]:
    """Microseconds (CPU time, best of 5) of small public calls, where the cost of crossing into
    the compiled core (argument checks, conversions, the structs it takes and returns) shows: what
    a change to the bindings can slow down without touching a kernel."""
    import numpy as np

    import structdrop as sd

    rng = np.random.default_rng(1)
    a, b, n, d = 5, 6, 20, 4
    X, Y = (
        np.asfortranarray(rng.standard_normal((b, n))),
        np.asfortranarray(rng.standard_normal((a, n))),
    )
    U, V = (
        np.asfortranarray(rng.standard_normal((a, d))),
        np.asfortranarray(rng.standard_normal((b, d))),
    )
    runs = 64 if quick else 256
    many = [sd.Dropout(0.5)] * runs

    def best(call, repeats: int) -> float:
        times = []
        for _ in range(5):
            t0 = time.process_time()
            for _ in range(repeats):
                call()
            times.append((time.process_time() - t0) / repeats * 1e6)
        return min(times)

    scheme = sd.DropBlock(2, theta=0.5)
    return {
        f"call: objective, a x b x N = {a} x {b} x {n}, d = {d}": best(
            lambda: scheme.objective(X, Y, U, V), 300
        ),
        "call: train, 1 step": best(lambda: sd.train(X, Y, U, V, scheme, 1e-3, 1), 300),
        f"call: train_many, {runs} runs x 10 steps, per run": best(
            lambda: sd.train_many(X, Y, U, V, many, lr=1e-3, iterations=10, threads=1), 5
        )
        / runs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--build",
        action="append",
        default=[],
        metavar="NAME=DIR",
        help="an installed build (repeat)",
    )
    parser.add_argument("--rounds", type=int, default=6, help="rounds over all builds (default 6)")
    parser.add_argument("--quick", action="store_true", help="d = 50 only, short runs, 2 rounds")
    parser.add_argument("--json", default=None, help="write the results to this JSON file")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.quick)
        return
    builds = []
    for spec in args.build:
        name, sep, path = spec.partition("=")
        if not sep or not os.path.isdir(os.path.join(path, "structdrop")):
            parser.error(
                f"--build must be NAME=DIR with DIR/structdrop an installed build, got {spec!r}"
            )
        builds.append((name, os.path.abspath(path)))
    if len(builds) < 2:
        parser.error("give at least two --build NAME=DIR")
    rounds = 2 if args.quick else args.rounds
    if rounds < 1:
        parser.error("--rounds must be >= 1")

    from _timing import machine_info, markdown_table, write_json

    samples: dict[str, dict[str, list[float]]] = {name: {} for name, _ in builds}
    kernels = {}
    for r in range(rounds):
        for name, path in builds:
            env = dict(os.environ, PYTHONPATH=path)
            command = [sys.executable, os.path.abspath(__file__), "--child"] + (
                ["--quick"] if args.quick else []
            )
            result = json.loads(
                subprocess.run(command, env=env, check=True, capture_output=True, text=True).stdout
            )
            if not result["module"].startswith(path):
                sys.exit(
                    f"build {name}: imported {result['module']}, not the build in {path} (an "
                    "editable install in this environment shadows PYTHONPATH)"
                )
            kernels[name] = result["kernels"]
            for case, us in result["us"].items():
                samples[name].setdefault(case, []).append(us)
            print(f"round {r + 1}/{rounds}: {name} done", file=sys.stderr)

    import numpy as np

    base = builds[0][0]
    cases = list(samples[base])
    medians = {
        name: {case: float(np.median(samples[name][case])) for case in cases} for name, _ in builds
    }
    headers = (
        ["case (us per step, or per call; CPU time)"]
        + [f"{n} ({kernels[n]})" for n, _ in builds]
        + [f"{n} / {base}" for n, _ in builds[1:]]
    )
    rows = [
        [case]
        + [medians[n][case] for n, _ in builds]
        + [medians[n][case] / medians[base][case] for n, _ in builds[1:]]
        for case in cases
    ]
    print(
        f"# masked SGD per step and small calls, {rounds} interleaved rounds, median of "
        f"rounds; a, b, N = {A}, {B}, {N}\n"
    )
    print(markdown_table(headers, rows))
    write_json(
        args.json,
        dict(
            machine=machine_info(),
            rounds=rounds,
            builds=dict(builds),
            kernels=kernels,
            medians=medians,
            samples=samples,
        ),
    )


if __name__ == "__main__":
    main()
