"""Re-run the benchmarks whose results docs/benchmarks.md shows, and store their JSON here.

Each script under bench/ writes its own JSON (``--json PATH``) with a ``machine`` section; this
wrapper adds a ``recorded`` section that the scripts do not write: the exact command, the UTC
date, the wall time and the 1-minute load average before and after the run (the reference set was
measured on a shared machine, so the load says how much to trust a ratio).

    python docs/benchmarks/regenerate.py                 # every benchmark in BENCHMARKS
    python docs/benchmarks/regenerate.py solver sweep    # some of them

Run it from the repository root with structdrop installed (an editable build is fine).
"""

from __future__ import annotations

import datetime
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent

#: name -> the script's arguments besides ``--json``: the full run where it took under about three
#: minutes on the reference machine (two shared cores), ``--quick`` where it took longer.
BENCHMARKS: dict[str, list[str]] = {
    "solver": ["bench/solver.py"],
    "sweep": ["bench/sweep.py"],
    "objectives": ["bench/objectives.py"],
    "moments": ["bench/moments.py"],
    "sgd": ["bench/sgd.py"],
    "train_many_dask": ["bench/train_many_dask.py"],
    "dropblock2d": ["bench/dropblock2d.py"],
    "large": ["bench/large.py", "--quick"],
}


def run(name: str) -> None:
    out = HERE / f"{name}.json"
    argv = ["python", *BENCHMARKS[name], "--json", str(out.relative_to(ROOT))]
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    subprocess.run([sys.executable, *argv[1:]], cwd=ROOT, check=True)
    seconds = time.perf_counter() - start
    payload = json.loads(out.read_text())
    payload["recorded"] = {
        "command": shlex.join(argv),
        "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M"),
        "wall_seconds": round(seconds, 1),
        "loadavg_1min_before": round(load_before, 2),
        "loadavg_1min_after": round(os.getloadavg()[0], 2),
    }
    out.write_text(json.dumps(payload, indent=2) + "\n")


def main(argv: list[str]) -> int:
    names = argv or list(BENCHMARKS)
    unknown = [name for name in names if name not in BENCHMARKS]
    if unknown:
        raise SystemExit(f"unknown benchmark(s) {unknown}; choose from {sorted(BENCHMARKS)}")
    for name in names:
        print(f"== {name}: {' '.join(BENCHMARKS[name])}", flush=True)
        run(name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
