"""Benchmark: one BoundMonitor evaluation against one eval-mode pass and one training epoch.

The network is the deep experiment's: a small CNN -> Linear(256, 80) ->
DropBlock1d(5, p=0.5, overlapping=False) ->
Linear(80, classes, bias) on N random 1 x S x S images with random labels (the timing does not
depend on what is learnt). Over the same DataLoader it times, with the repeats of the three
interleaved (so that load on a shared machine hits them alike):
  eval pass    the whole network in eval mode under torch.no_grad(), every batch;
  evaluate     BoundMonitor.evaluate(): the features' pass (eval mode, float64 moments on the
               device), then the objective, both bounds and the spectra from the moments;
  train epoch  forward, squared loss, backward and an Adam step on every batch.
The ratios are evaluate's median over the eval pass's median and over the epoch's median (target:
evaluate at most 1.2 times the eval pass).

    python bench/monitor.py                  # N = 8192 images of 16 x 16, batches of 256
    python bench/monitor.py --quick          # N = 2048, seconds
    python bench/monitor.py --device cuda    # on a GPU
    python bench/monitor.py --threads 1      # one CPU thread (steadier on a busy machine)
    python bench/monitor.py --json bench/results/monitor.json
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from typing import Callable

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _timing import machine_info, markdown_table, write_json  # noqa: E402

import structdrop.torch as sdt  # noqa: E402
from structdrop.torch.deep import small_cnn  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="N = 2048, 3 repeats")
    parser.add_argument("--n", type=int, default=8192, help="images (default 8192)")
    parser.add_argument("--size", type=int, default=16, help="image side S (default 16)")
    parser.add_argument("--classes", type=int, default=10, help="classes (default 10)")
    parser.add_argument("--batch-size", type=int, default=256, help="batch size (default 256)")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats (default 5)")
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: torch's)"
    )
    parser.add_argument("--json", default=None, help="write the results as JSON to this path")
    args = parser.parse_args()
    if args.quick:
        args.n, args.repeats = 2048, 3
    device = torch.device(args.device)
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    images = torch.randn(args.n, 1, args.size, args.size)
    labels = torch.randint(0, args.classes, (args.n,))
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(images, labels), batch_size=args.batch_size
    )
    trunk, width = small_cnn(1)
    features = torch.nn.Sequential(trunk, torch.nn.Linear(width, 80)).to(device)
    drop = sdt.DropBlock1d(5, p=0.5, overlapping=False)
    head = torch.nn.Linear(80, args.classes).to(device)
    net = torch.nn.Sequential(features, drop, head)
    optimiser = torch.optim.Adam(net.parameters(), lr=1e-3)
    monitor = sdt.BoundMonitor(features, head, drop, loader, num_classes=args.classes)

    def eval_pass() -> None:
        net.eval()
        with torch.no_grad():
            for x, _ in loader:
                net(x.to(device))
        net.train()
        _sync(device)

    def evaluate() -> None:
        monitor.evaluate()
        _sync(device)

    def train_epoch() -> None:
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            onehot = torch.nn.functional.one_hot(y, args.classes).to(x.dtype)
            loss = (net(x) - onehot).square().sum(1).mean()
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
        _sync(device)

    routes: dict[str, Callable[[], None]] = {
        "eval pass": eval_pass,
        "evaluate": evaluate,
        "train epoch": train_epoch,
    }
    for fn in routes.values():  # warm-up
        fn()
    times: dict[str, list[float]] = {name: [] for name in routes}
    for _ in range(args.repeats):
        for name, fn in routes.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    median = {name: statistics.median(t) for name, t in times.items()}
    rows = [
        [
            name,
            median[name],
            min(times[name]),
            median[name] / median["eval pass"],
            median[name] / median["train epoch"],
        ]
        for name in routes
    ]
    print(
        f"N = {args.n} images of {args.size} x {args.size}, batch {args.batch_size}, "
        f"{args.classes} classes, device {device}, torch threads {torch.get_num_threads()}, "
        f"{args.repeats} repeats\n"
    )
    print(
        markdown_table(
            ["route", "median s", "best s", "/ eval pass", "/ train epoch"],
            rows,
        )
    )
    ratio = median["evaluate"] / median["eval pass"]
    print(f"\nevaluate / eval pass = {ratio:.3f} (target <= 1.2)")
    write_json(
        args.json,
        {
            "machine": machine_info(),
            "settings": {**vars(args), "device": str(device)},
            "seconds": times,
            "median": median,
            "evaluate_over_eval_pass": ratio,
            "evaluate_over_train_epoch": median["evaluate"] / median["train epoch"],
        },
    )


if __name__ == "__main__":
    main()
