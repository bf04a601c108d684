"""Benchmark of the masked-SGD engine (Algorithm 1): structdrop.train vs NumPy vs PyTorch loops.

Measured in one run, on the paper's synthetic data (a, b, N = 80, 100, 1000;
structdrop.paper_synthetic) with U0, V0 of width d (entries 0.1 N(0, 1), lr = 1e-7 so that nothing
diverges whatever the length):

1. microseconds per step at d = 50 (the paper's width), 500 and 5000, for several schemes:
   the C++ engine (structdrop.train, no recordings), the NumPy reference loop
   (structdrop.reference.train) and a plain PyTorch CPU loop (float64, torch.no_grad, when torch
   is importable); ratios NumPy / C++ and PyTorch / C++;
2. the arithmetic each step must do, E[kept units] (2b + 3a) multiply-adds (all d units for
   DropConnect), against a dense matrix-vector rate measured here (NumPy/BLAS A^T x with A of
   (a + b) x max(d, 500) doubles, i.e. the same memory level as U and V): "x arithmetic" is the
   measured step time over that ideal time;
3. 64 runs: steps per second of train_many with 1 thread and with all cores;
4. cost versus theta (Dropout and DropBlock r = 5, d = 500): a dropped unit costs nothing;
5. the cost of progress=True, and which kernel instruction set ran (AVX2 or baseline; same bits).

Every timing is the median of repeats; loop timings are differences between runs of T and T/2
steps, so that set-up and the two recordings (steps 0 and T) cancel. The NumPy and PyTorch loops run
with one BLAS thread (as every engine run does; --blas-threads=N to change). Usage:
    python bench/sgd.py [--quick] [--json out.json] [--blas-threads=1]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import time

# One BLAS thread: every engine run is single-threaded, so the per-step comparison is core for
# core (parallelism is measured separately with train_many). Override with --blas-threads.
_BLAS_THREADS = next((a.split("=", 1)[1] for a in sys.argv if a.startswith("--blas-threads=")), "1")
for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, _BLAS_THREADS)

import numpy as np
from _timing import machine_info, markdown_table, write_json

import structdrop as sd
from structdrop import _core, reference
from structdrop.schemes import DropBlock, DropConnect, Dropout, NoDropout

try:  # optional baseline
    import torch  # type: ignore
except Exception:  # pragma: no cover - depends on the environment
    torch = None

A, B, N = 80, 100, 1000


def factors(d: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return 0.1 * rng.standard_normal((A, d)), 0.1 * rng.standard_normal((B, d))


def expected_kept(scheme, d: int) -> float:
    if isinstance(scheme, NoDropout):
        return float(d)
    if isinstance(scheme, DropConnect):
        return float(d)  # every column works; the mask is elementwise
    return float(np.sum(reference.training.mask_means(scheme, d)))


def macs_per_step(scheme, d: int) -> float:
    return expected_kept(scheme, d) * (2 * B + 3 * A)


def median(values) -> float:
    return float(np.median(values))


def engine_step_seconds(X, Y, U0, V0, scheme, steps: int, seed: int = 0) -> float:
    """Seconds per step of structdrop.train: (time of `steps` steps - time of steps/2) / (steps/2),
    which cancels the fixed costs (set-up, the recordings at steps 0 and T)."""
    half = max(1, steps // 2)
    t_full = sd.train(X, Y, U0, V0, scheme, 1e-7, steps, record_every=10**12, seed=seed).seconds
    t_half = sd.train(X, Y, U0, V0, scheme, 1e-7, half, record_every=10**12, seed=seed).seconds
    return (t_full - t_half) / (steps - half)


def numpy_step_seconds(X, Y, U0, V0, scheme, steps: int, seed: int = 0) -> float:
    """The same for the NumPy reference loop (its recordings pass over all N samples)."""
    half = max(1, steps // 2)
    t_full = reference.train(
        X, Y, U0, V0, scheme, 1e-7, steps, record_every=10**12, seed=seed
    ).seconds
    t_half = reference.train(
        X, Y, U0, V0, scheme, 1e-7, half, record_every=10**12, seed=seed
    ).seconds
    return (t_full - t_half) / (steps - half)


def time_engine(X, Y, U0, V0, scheme, steps: int, repeats: int) -> float:
    """Median seconds per step of structdrop.train."""
    engine_step_seconds(X, Y, U0, V0, scheme, min(steps, 1000))  # warm-up
    return median([engine_step_seconds(X, Y, U0, V0, scheme, steps, rep) for rep in range(repeats)])


def time_interleaved(
    X, Y, U0, V0, scheme, engine_steps: int, loop_steps: int, repeats: int
) -> dict:
    """Engine, NumPy and PyTorch timings interleaved repeat by repeat (so that a busy machine
    slows all three alike); medians of the times and of the per-repeat ratios."""
    engine_step_seconds(X, Y, U0, V0, scheme, min(engine_steps, 1000))
    if torch is not None:
        torch_loop(X, Y, U0, V0, scheme, min(loop_steps, 50), 0)
    engine, numpy_loop, torch_time = [], [], []
    for rep in range(repeats):
        engine.append(engine_step_seconds(X, Y, U0, V0, scheme, engine_steps, rep))
        numpy_loop.append(numpy_step_seconds(X, Y, U0, V0, scheme, loop_steps, rep))
        torch_time.append(
            torch_loop(X, Y, U0, V0, scheme, loop_steps, rep) if torch is not None else float("nan")
        )
    engine_arr, numpy_arr, torch_arr = np.array(engine), np.array(numpy_loop), np.array(torch_time)
    return dict(
        engine=median(engine_arr),
        numpy=median(numpy_arr),
        torch=median(torch_arr),
        numpy_ratio=median(numpy_arr / engine_arr),
        torch_ratio=median(torch_arr / engine_arr),
    )


def torch_loop(X, Y, U0, V0, scheme, steps: int, seed: int) -> float:
    """A plain PyTorch CPU loop of the same step (float64, no autograd); seconds per step."""
    params = scheme._core_params()
    kind, theta, block_size = params.kind, params.theta, params.block_size
    Kind = _core.SchemeKind
    if kind == Kind.overlapping_dropblock:
        return float("nan")
    gen = torch.Generator().manual_seed(seed)
    Xt = torch.from_numpy(X)
    Yt = torch.from_numpy(Y)
    U = torch.from_numpy(U0.copy())
    V = torch.from_numpy(V0.copy())
    b, n = Xt.shape
    d = U.shape[1]
    lr = 1e-7
    start = time.perf_counter()
    with torch.no_grad():
        for _ in range(steps):
            j = int(torch.randint(n, (1,), generator=gen))
            x, y = Xt[:, j], Yt[:, j]
            if kind == Kind.dropconnect:
                Z = (torch.rand((b, d), generator=gen, dtype=torch.float64) < theta).to(
                    torch.float64
                ) / theta
                W = Z * V
                h = W.T @ x
                eps = U @ h - y
                g = U.T @ eps
                U -= lr * torch.outer(eps, h)
                V -= lr * Z * torch.outer(x, g)
                continue
            if kind == Kind.none:
                D = torch.ones(d, dtype=torch.float64)
            elif kind == Kind.dropout:
                D = (torch.rand(d, generator=gen, dtype=torch.float64) < theta).to(
                    torch.float64
                ) / theta
            else:
                w = torch.rand(d // block_size, generator=gen, dtype=torch.float64) < theta
                D = w.repeat_interleave(block_size).to(torch.float64) / theta
            h = D * (V.T @ x)
            eps = U @ h - y
            g = D * (U.T @ eps)
            U -= lr * torch.outer(eps, h)
            V -= lr * torch.outer(x, g)
    return (time.perf_counter() - start) / steps


def matvec_rate(rows: int, cols: int, repeats: int) -> float:
    """Multiply-adds per second of a dense BLAS A^T x (A: rows x cols float64, Fortran order)."""
    rng = np.random.default_rng(0)
    Amat = np.asfortranarray(rng.standard_normal((rows, cols)))
    x = rng.standard_normal(rows)
    out = np.empty(cols)
    loops = max(1, int(2e8 / (rows * cols)))
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(loops):
            np.dot(Amat.T, x, out=out)
        samples.append((time.perf_counter() - start) / loops)
    return rows * cols / median(samples)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="fewer steps and repeats (a smoke test)"
    )
    parser.add_argument("--json", default=None, help="write the results to this JSON file")
    parser.add_argument(
        "--blas-threads",
        default="1",
        help="BLAS/PyTorch threads of the NumPy and PyTorch loops (default 1)",
    )
    args = parser.parse_args()
    quick = args.quick
    if torch is not None:
        torch.set_num_threads(int(args.blas_threads))
    repeats = 3 if quick else 5

    problem = sd.paper_synthetic(seed=0)
    X, Y = problem.X, problem.Y
    isa = _core.sgd_kernel_isa()
    print(
        f"# masked SGD: a, b, N = {A}, {B}, {N}; kernels: {isa}; torch: "
        f"{torch.__version__ if torch else 'not installed'}; BLAS threads: "
        f"{os.environ.get('OPENBLAS_NUM_THREADS')}"
    )

    # 2. dense mat-vec rates at the memory levels of U, V (d = 50 and 500: L2; d = 5000: L3).
    rates = {d: matvec_rate(A + B, max(d, 500), repeats) for d in (50, 500, 5000)}

    # 1. microseconds per step.
    widths = (50, 500) if quick else (50, 500, 5000)
    engine_steps = {
        50: 20_000 if quick else 200_000,
        500: 2_000 if quick else 20_000,
        5000: 200 if quick else 2_000,
    }
    loop_steps = {
        50: 300 if quick else 3_000,
        500: 100 if quick else 500,
        5000: 10 if quick else 40,
    }
    rows, records = [], []
    for d in widths:
        U0, V0 = factors(d)
        schemes = [NoDropout(), Dropout(0.5), DropBlock(5, theta=0.5)]
        if d == 50 or not quick:
            schemes.append(DropConnect(0.5))
        for scheme in schemes:
            t = time_interleaved(X, Y, U0, V0, scheme, engine_steps[d], loop_steps[d], repeats)
            engine = t["engine"]
            macs = macs_per_step(scheme, d)
            ideal = macs / rates[d]
            rows.append(
                [
                    d,
                    repr(scheme),
                    engine * 1e6,
                    t["numpy"] * 1e6,
                    t["torch"] * 1e6,
                    t["numpy_ratio"],
                    t["torch_ratio"],
                    macs,
                    macs / engine * 1e-9,
                    engine / ideal,
                ]
            )
            records.append(
                dict(
                    d=d,
                    scheme=repr(scheme),
                    engine_us=engine * 1e6,
                    numpy_us=t["numpy"] * 1e6,
                    torch_us=t["torch"] * 1e6,
                    numpy_over_engine=t["numpy_ratio"],
                    torch_over_engine=t["torch_ratio"],
                    macs_per_step=macs,
                    engine_gmacs=macs / engine * 1e-9,
                    matvec_gmacs=rates[d] * 1e-9,
                    times_arithmetic=engine / ideal,
                )
            )
    print("\n## Microseconds per step (median of repeats)\n")
    print(
        markdown_table(
            [
                "d",
                "scheme",
                "C++ us",
                "NumPy us",
                "PyTorch us",
                "NumPy/C++",
                "PyTorch/C++",
                "MAC/step",
                "C++ GMAC/s",
                "x arithmetic",
            ],
            rows,
        )
    )
    print("\n(NumPy/C++ and PyTorch/C++: medians of the ratios of interleaved repeats.)")
    print(
        "\nDense mat-vec rate (BLAS A^T x, same memory level): "
        + ", ".join(f"d={d}: {r * 1e-9:.2f} GMAC/s" for d, r in rates.items())
        + ". 'x arithmetic' = C++ time / (MAC per step / that rate)."
    )

    # 3. 64 parallel runs at the paper's size.
    U0, V0 = factors(50)
    scheme = DropBlock(5, theta=0.5)
    steps = 2_000 if quick else 20_000
    parallel = []
    for threads in (1, None):  # None: every core
        samples = []
        for _ in range(repeats):
            start = time.perf_counter()
            sd.train_many(
                X,
                Y,
                U0,
                V0,
                scheme,
                1e-7,
                steps,
                record_every=10**12,
                seed=range(64),
                threads=threads,
            )
            samples.append(time.perf_counter() - start)
        seconds = median(samples)
        parallel.append(
            dict(
                threads=threads or os.cpu_count(),
                runs=64,
                steps=steps,
                steps_per_second=64 * steps / seconds,
                seconds=seconds,
            )
        )
    print("\n## 64 runs of DropBlock(5, theta=0.5), d = 50 (train_many)\n")
    print(
        markdown_table(
            ["threads", "runs x steps", "seconds", "steps/s", "speed-up"],
            [
                [
                    p["threads"],
                    f"64 x {steps}",
                    p["seconds"],
                    p["steps_per_second"],
                    p["steps_per_second"] / parallel[0]["steps_per_second"],
                ]
                for p in parallel
            ],
        )
    )

    # 4. cost versus theta.
    d = 500
    U0, V0 = factors(d)
    theta_rows, theta_records = [], []
    reference_time = time_engine(X, Y, U0, V0, NoDropout(), engine_steps[d], repeats)
    for theta in (0.1, 0.25, 0.5, 0.75, 0.9):
        row = [theta]
        for scheme in (Dropout(theta), DropBlock(5, theta=theta)):
            t = time_engine(X, Y, U0, V0, scheme, engine_steps[d], repeats)
            row += [t * 1e6, t / reference_time]
            theta_records.append(
                dict(
                    theta=theta, scheme=repr(scheme), engine_us=t * 1e6, relative=t / reference_time
                )
            )
        theta_rows.append(row)
    print(
        f"\n## Cost versus theta, d = {d} (relative to no dropout: {reference_time * 1e6:.1f} "
        "us/step)\n"
    )
    print(
        markdown_table(
            ["theta", "Dropout us", "Dropout rel.", "DropBlock(r=5) us", "DropBlock rel."],
            theta_rows,
        )
    )

    # 5. progress=True costs nothing measurable.
    U0, V0 = factors(50)
    steps = 50_000 if quick else 500_000
    quiet, loud = [], []
    for _ in range(repeats):
        quiet.append(
            sd.train(
                X, Y, U0, V0, DropBlock(5, theta=0.5), 1e-7, steps, record_every=10**12
            ).seconds
        )
        with contextlib.redirect_stderr(io.StringIO()):
            loud.append(
                sd.train(
                    X,
                    Y,
                    U0,
                    V0,
                    DropBlock(5, theta=0.5),
                    1e-7,
                    steps,
                    record_every=10**12,
                    progress=True,
                ).seconds
            )
    print(
        f"\nprogress=True: {median(loud) / steps * 1e6:.3f} us/step vs "
        f"{median(quiet) / steps * 1e6:.3f} without"
    )

    write_json(
        args.json,
        dict(
            machine=machine_info(),
            kernels=isa,
            torch=torch.__version__ if torch else None,
            quick=quick,
            per_step=records,
            parallel=parallel,
            theta=theta_records,
            matvec_gmacs={str(k): v * 1e-9 for k, v in rates.items()},
            progress=dict(quiet_us=median(quiet) / steps * 1e6, loud_us=median(loud) / steps * 1e6),
        ),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
