"""Benchmark: a DropBlock2d training-mode forward, structdrop against torchvision's and
timm's rules.

On typical ResNet shapes (64 x 256 x 14 x 14 and 64 x 64 x 56 x 56, block 7, p = 0.1) it times,
in one process, the call a user makes:

  structdrop full     structdrop.torch.DropBlock2d(7, p=0.1) (default: seeds wherever a block
                      meets the map, every unit dropped with probability p; on the CPU the
                      sparse sampler: only the firing seeds are drawn, by geometric gaps)
  structdrop full dense  the same law with sampler="dense" (one uniform per seed position and a
                      separable max-pool: the path used on GPUs)
  structdrop valid    the same with seeds="valid" (per-unit rescaling tensor)
  structdrop tiles    overlapping=False (the paper's non-overlapping tiles)
  torchvision rule    torchvision.ops.drop_block2d's rule, reimplemented below from its source
                      (torchvision/ops/drop_block.py): bernoulli_ seeds on the valid region, pad,
                      one b x b max_pool2d, batch-wide renormalisation. torchvision's wheel does not
                      load beside the local CPU-only torch here, hence the reimplementation.
  timm rule           timm.layers.DropBlock2d's default (drop_block_fast_2d), reimplemented
                      likewise: bernoulli_ seeds at every unit, one b x b max_pool2d,
                      renormalisation.

It prints a markdown table of medians and the ratio structdrop full / torchvision rule (target
<= 1.2) and writes JSON with --json. The callables are timed round-robin (one call of each per
repeat), so that load changes on a shared machine affect all of them alike.

    python bench/dropblock2d.py            # batch 64
    python bench/dropblock2d.py --quick    # batch 16, fewer repeats (seconds)
    python bench/dropblock2d.py --device cuda --json out.json
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _timing import machine_info, markdown_table, write_json  # noqa: E402

import structdrop.torch as sdt  # noqa: E402


def torchvision_rule(x: torch.Tensor, p: float, block_size: int, eps: float = 1e-6) -> torch.Tensor:
    """torchvision.ops.drop_block2d(x, p, block_size) in training mode, reimplemented from its
    formula."""
    n, c, h, w = x.shape
    gamma = p * h * w / (block_size**2 * (h - block_size + 1) * (w - block_size + 1))
    noise = torch.empty(
        (n, c, h - block_size + 1, w - block_size + 1), dtype=x.dtype, device=x.device
    )
    noise.bernoulli_(gamma)
    half = block_size // 2
    noise = F.pad(noise, [half] * 4, value=0)
    noise = F.max_pool2d(noise, stride=(1, 1), kernel_size=(block_size, block_size), padding=half)
    noise = 1 - noise
    return x * noise * (noise.numel() / (eps + noise.sum()))


def timm_rule(x: torch.Tensor, p: float, block_size: int) -> torch.Tensor:
    """timm.layers.DropBlock2d(p, block_size) (default fast=True) in training mode,
    reimplemented."""
    _, _, h, w = x.shape
    cb = min(block_size, h, w)
    gamma = p * h * w / cb**2 / ((w - block_size + 1) * (h - block_size + 1))
    mask = torch.empty_like(x).bernoulli_(gamma)
    mask = 1 - F.max_pool2d(mask, kernel_size=cb, stride=1, padding=cb // 2)
    return x * mask * (mask.numel() / mask.to(torch.float32).sum().add(1e-6)).to(x.dtype)


def _interleaved_medians(fns: dict, repeats: int, device: torch.device) -> dict[str, float]:
    """Median time of each callable, timed round-robin so that a change of machine load hits
    all alike."""

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for fn in fns.values():  # warm-up (allocator, kernels)
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            sync()
            start = time.perf_counter()
            fn()
            sync()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="batch 16 and 5 repeats")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--block", type=int, default=7)
    parser.add_argument("--p", type=float, default=0.1)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--json", default=None, help="write the results as JSON to this path")
    args = parser.parse_args()

    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype)
    batch = 16 if args.quick else 64
    repeats = args.repeats or (5 if args.quick else 15)
    torch.manual_seed(0)
    shapes = [(batch, 256, 14, 14), (batch, 64, 56, 56)]
    layers = {
        "structdrop full": sdt.DropBlock2d(args.block, p=args.p),
        "structdrop full dense": sdt.DropBlock2d(args.block, p=args.p, sampler="dense"),
        "structdrop valid": sdt.DropBlock2d(args.block, p=args.p, seeds="valid"),
        "structdrop tiles": sdt.DropBlock2d(args.block, p=args.p, overlapping=False),
    }
    rows, results = [], []
    for shape in shapes:
        x = torch.randn(shape, device=device, dtype=dtype)
        fns = {name: (lambda layer=layer, x=x: layer(x)) for name, layer in layers.items()}
        fns["torchvision rule"] = lambda x=x: torchvision_rule(x, args.p, args.block)
        fns["timm rule"] = lambda x=x: timm_rule(x, args.p, args.block)
        times = _interleaved_medians(fns, repeats, device)
        ratio = times["structdrop full"] / times["torchvision rule"]
        label = " x ".join(map(str, shape))
        print(
            f"{label}: "
            + ", ".join(f"{k} {v * 1e3:.2f} ms" for k, v in times.items())
            + f"; full / torchvision = {ratio:.2f}",
            flush=True,
        )
        rows.append([label] + [times[k] * 1e3 for k in times] + [ratio])
        results.append(
            {"shape": list(shape), "seconds": times, "ratio_full_over_torchvision": ratio}
        )
        del x
    names = list(layers) + ["torchvision rule", "timm rule"]
    print()
    print(
        f"DropBlock2d forward in training mode (mask sampling + rescaling), block {args.block}, p "
        f"= {args.p}, {args.dtype} on {device}, median of {repeats} interleaved; threads = "
        f"{torch.get_num_threads()}"
    )
    print()
    print(markdown_table(["shape"] + [f"{n} (ms)" for n in names] + ["full / torchvision"], rows))
    write_json(
        args.json,
        {
            "benchmark": "dropblock2d",
            "quick": args.quick,
            "device": str(device),
            "dtype": args.dtype,
            "block": args.block,
            "p": args.p,
            "repeats": repeats,
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "machine": machine_info(),
            "results": results,
        },
    )


if __name__ == "__main__":
    main()
