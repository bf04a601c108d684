"""Benchmark: run-steps per second of structdrop.torch.batched_train (Algorithm 1, many runs
at once).

Paper sizes (Section 5.1): a, b, N, d = 80, 100, 1000, 50, DropBlock(theta=0.5, r=5), one sample
per step. For R = 1 .. 65536 runs it times, in one process on one device:

  batched_train            structdrop.torch.batched_train (eager, and with --cuda-graph on CUDA)
  plain batched loop       the obvious batched PyTorch loop: torch.randint/torch.rand per step, bmm
  per-sample loop          one run, autograd + torch.optim.SGD, one sample per step (run-steps/s
                           does not grow with R: it is the per-step rate of a single run)
  C++ engine               structdrop.train (one run on the CPU), when it is installed

and prints a markdown table of medians (of --repeats timings) with the ratio batched_train / plain
batched loop (target: >= 3 on CUDA). Each batched_train timing is a whole call (setup, graph
capture, the two recordings and the final copy to the host included), with enough steps to
amortise them.
Usage::

    python bench/torch_gpu.py                       # CUDA, float32, R = 1, 4, ..., 65536
    python bench/torch_gpu.py --device cpu --quick  # a quick check on the CPU
    python bench/torch_gpu.py --json out.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from functools import partial

import numpy as np
import torch

import structdrop
import structdrop.torch as sdt

A, B, N, D, R_BLOCK, THETA = 80, 100, 1000, 50, 5, 0.5
LR = 1e-6


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _median_time(fn, repeats: int, device: torch.device) -> float:
    times = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def plain_batched_loop(X, Y, U0, V0, runs, iterations, device, dtype, seed=0):
    """The obvious batched loop (Algorithm 1 for R runs, masks and samples from torch's RNG)."""
    gen = torch.Generator(device=device).manual_seed(seed)
    Xt = X.T.contiguous()
    Yt = Y.T.contiguous()
    U = U0.expand(runs, *U0.shape).clone()
    V = V0.expand(runs, *V0.shape).clone()
    k = D // R_BLOCK
    with torch.no_grad():
        for _ in range(iterations):
            idx = torch.randint(N, (runs,), device=device, generator=gen)
            x, y = Xt[idx], Yt[idx]
            w = (torch.rand(runs, k, device=device, generator=gen) < THETA).to(dtype)
            z = w.repeat_interleave(R_BLOCK, dim=1) / THETA
            h = torch.bmm(x.unsqueeze(1), V).squeeze(1) * z  # R x d
            eps = torch.bmm(h.unsqueeze(1), U.transpose(1, 2)).squeeze(1) - y  # R x a
            gU = eps.unsqueeze(2) * h.unsqueeze(1)
            gV = x.unsqueeze(2) * (torch.bmm(eps.unsqueeze(1), U).squeeze(1) * z).unsqueeze(1)
            U -= LR * gU
            V -= LR * gV
    return U, V


def per_sample_loop(X, Y, U0, V0, iterations, device, dtype, seed=0):
    """One run, one sample per step, autograd and torch.optim.SGD: the way most people write it."""
    gen = torch.Generator(device=device).manual_seed(seed)
    U = torch.nn.Parameter(U0.clone())
    V = torch.nn.Parameter(V0.clone())
    opt = torch.optim.SGD([U, V], lr=LR)
    k = D // R_BLOCK
    for _ in range(iterations):
        i = torch.randint(N, (1,), device=device, generator=gen)
        x, y = X[:, i], Y[:, i]
        z = ((torch.rand(k, device=device, generator=gen) < THETA).to(dtype)).repeat_interleave(
            R_BLOCK
        ) / THETA
        loss = 0.5 * ((U * z) @ (V.T @ x) - y).square().sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return U, V


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])  # the summary
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    parser.add_argument("--quick", action="store_true", help="few sizes, short timings")
    parser.add_argument(
        "--runs", type=int, nargs="*", help="numbers of runs (default 1, 4, ..., 65536)"
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--run-steps", type=float, default=None, help="target run-steps per timing")
    parser.add_argument("--no-cuda-graph", action="store_true")
    parser.add_argument("--json", default=None, help="write the results to this path")
    parser.add_argument(
        "--deep",
        action="store_true",
        help="also run deep_experiment (ResNet-50 when torchvision imports) on the digits",
    )
    parser.add_argument("--deep-only", action="store_true", help="run only the deep experiment")
    parser.add_argument("--deep-epochs", type=int, default=40)
    args = parser.parse_args()
    deep = run_deep(args) if (args.deep or args.deep_only) else None
    if args.deep_only:
        if args.json:
            with open(args.json, "w") as fh:
                json.dump({"deep": deep}, fh, indent=2)
        return

    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype)
    if args.runs:
        run_counts = args.runs
    elif args.quick:
        run_counts = [1, 16, 256] if device.type == "cpu" else [1, 64, 4096]
    else:
        run_counts = [4**i for i in range(9)]  # 1 .. 65536
    budget = args.run_steps or (
        (2e4 if args.quick else 2e5) if device.type == "cpu" else (2e6 if args.quick else 2e7)
    )
    repeats = 1 if args.quick else args.repeats
    use_graph = device.type == "cuda" and not args.no_cuda_graph

    prob = structdrop.paper_synthetic(0)
    rng = np.random.default_rng(1)
    U0n, V0n = rng.standard_normal((A, D)), rng.standard_normal((B, D))
    X = torch.as_tensor(prob.X, dtype=dtype, device=device)
    Y = torch.as_tensor(prob.Y, dtype=dtype, device=device)
    U0 = torch.as_tensor(U0n, dtype=dtype, device=device)
    V0 = torch.as_tensor(V0n, dtype=dtype, device=device)
    scheme = sdt.SchemeSpec("dropblock", THETA, R_BLOCK)
    try:
        from structdrop import schemes as _schemes

        scheme = _schemes.DropBlock(THETA, R_BLOCK)
    except ImportError:
        pass

    # single-run references (independent of R)
    ps_iters = int(min(2000, max(50, budget / 50)))
    per_sample_loop(X, Y, U0, V0, 10, device, dtype)  # warm-up
    t = _median_time(
        lambda: per_sample_loop(X, Y, U0, V0, ps_iters, device, dtype), repeats, device
    )
    per_sample_rate = ps_iters / t
    cpp_rate = None
    if hasattr(structdrop, "train"):
        cpp_iters = int(min(200000, max(1000, budget)))
        t = _median_time(
            lambda: structdrop.train(
                prob.X, prob.Y, U0n, V0n, scheme, LR, cpp_iters, record_every=cpp_iters
            ),
            repeats,
            torch.device("cpu"),
        )
        cpp_rate = cpp_iters / t

    def ours(runs: int, graph: bool, steps: int) -> sdt.BatchedTrainResult:
        return sdt.batched_train(
            X,
            Y,
            U0,
            V0,
            scheme,
            LR,
            steps,
            runs=runs,
            record_every=steps,
            device=device,
            dtype=dtype,
            cuda_graph=graph,
        )

    rows = []
    for runs in run_counts:
        # batched_train: enough steps to amortise its start (one CUDA-graph capture per call);
        # the plain loop has no start-up cost, so fewer steps measure its steady rate
        lo, hi = (
            (200, 5000) if device.type == "cpu" else ((500, 5000) if args.quick else (2000, 20000))
        )
        iters = int(min(hi, max(lo, budget / runs)))
        plain_iters = min(iters, 500 if args.quick else 2000)
        row = {"runs": runs, "iterations": iters, "plain_iterations": plain_iters}
        ours(runs, False, 100)  # warm-up (kernels, cuBLAS handles, allocator)
        row["batched_train"] = (
            runs * iters / _median_time(partial(ours, runs, False, iters), repeats, device)
        )
        if use_graph:
            ours(runs, True, 100)
            row["batched_train_graph"] = (
                runs * iters / _median_time(partial(ours, runs, True, iters), repeats, device)
            )
        plain_batched_loop(X, Y, U0, V0, runs, 5, device, dtype)
        row["plain_batched_loop"] = (
            runs
            * plain_iters
            / _median_time(
                partial(plain_batched_loop, X, Y, U0, V0, runs, plain_iters, device, dtype),
                repeats,
                device,
            )
        )
        row["per_sample_loop"] = per_sample_rate
        row["cpp_engine"] = cpp_rate
        best = max(row["batched_train"], row.get("batched_train_graph", 0.0))
        row["ratio_vs_plain"] = best / row["plain_batched_loop"]
        rows.append(row)
        print(f"R={runs}: {best:.3g} run-steps/s ({row['ratio_vs_plain']:.2f}x plain)", flush=True)

    name = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else platform.processor() or "cpu"
    )
    print(
        f"\nDevice: {name} ({device}), torch {torch.__version__}, {args.dtype}; a, b, N, d = {A}, "
        f"{B}, {N}, {D}; DropBlock(theta={THETA}, r={R_BLOCK}), batch 1. Run-steps per second "
        f"(medians of {repeats}).\n"
    )
    head = (
        "| runs | batched_train | "
        + ("batched_train + CUDA graph | " if use_graph else "")
        + "plain batched loop | per-sample loop | C++ engine (1 run, CPU) | best / plain |"
    )
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for row in rows:
        cells = [str(row["runs"]), f"{row['batched_train']:.3g}"]
        if use_graph:
            cells.append(f"{row['batched_train_graph']:.3g}")
        cells += [
            f"{row['plain_batched_loop']:.3g}",
            f"{row['per_sample_loop']:.3g}",
            "n/a" if row["cpp_engine"] is None else f"{row['cpp_engine']:.3g}",
            f"{row['ratio_vs_plain']:.2f}",
        ]
        print("| " + " | ".join(cells) + " |")
    if args.json:
        meta = {
            "device": name,
            "torch": torch.__version__,
            "dtype": args.dtype,
            "sizes": [A, B, N, D],
            "theta": THETA,
            "block_size": R_BLOCK,
            "repeats": repeats,
        }
        with open(args.json, "w") as fh:
            json.dump({"meta": meta, "rows": rows, "deep": deep}, fh, indent=2)


def run_deep(args) -> dict:
    """The Section 5.2 experiment: final objective over the Theorem 7 bound, singular values
    vs a*."""
    device = torch.device(args.device)
    trunk = "small_cnn" if args.quick else "auto"
    epochs = 2 if args.quick else args.deep_epochs
    res = sdt.deep_experiment(
        0.5,
        epochs=epochs,
        device=device,
        trunk=trunk,
        progress=True,
        n_train=300 if args.quick else None,
    )
    print(
        f"\nDeep experiment ({res.trunk}, {res.dataset}, N={res.n_train}, {epochs} epochs, "
        f"{res.device}, {res.seconds:.1f} s): final objective {res.objective[-1]:.3f}, Theorem 7 "
        f"bound {res.lower_bound:.3f}, ratio {res.relative_gap + 1:.4f}; "
        f"max |sigma(UG) - a*| / a*_1 = "
        f"{res.singular_value_error:.4f}\n"
    )
    print("| i | sigma_i(U G) | a*_i |\n|---|---|---|")
    for i, (s_, t_) in enumerate(zip(res.singular_values, res.theory_singular_values), 1):
        print(f"| {i} | {s_:.4f} | {t_:.4f} |")
    return {
        "trunk": res.trunk,
        "dataset": res.dataset,
        "n_train": res.n_train,
        "epochs": epochs,
        "objective": res.objective.tolist(),
        "lower_bound": res.lower_bound,
        "ratio": res.relative_gap + 1,
        "singular_values": res.singular_values.tolist(),
        "theory_singular_values": res.theory_singular_values.tolist(),
        "seconds": res.seconds,
        "singular_value_error": res.singular_value_error,
        "device": res.device,
    }


if __name__ == "__main__":
    main()
