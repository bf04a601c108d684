"""Small timing helpers shared by the benchmarks (medians of repeats, markdown tables, JSON)."""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Sequence
from typing import Callable

import numpy as np


def median_seconds(
    fn: Callable[[], object], repeats: int = 7, min_time: float = 0.02, max_time: float = 5.0
) -> float:
    """Median wall time of ``fn()`` over ``repeats`` timings; each timing loops until ``min_time``.

    Stops early (with fewer repeats) once ``max_time`` seconds have been spent.
    """
    fn()  # warm-up: page faults, caches, lazy initialisation
    samples = []
    spent = 0.0
    for _ in range(repeats):
        loops = 0
        start = time.perf_counter()
        while True:
            fn()
            loops += 1
            elapsed = time.perf_counter() - start
            if elapsed >= min_time:
                break
        samples.append(elapsed / loops)
        spent += elapsed
        if spent > max_time:
            break
    return float(np.median(samples))


def peak_rss_growth_mib(fn: Callable[[], object]) -> float:
    """Growth (MiB) of the process's peak resident set during ``fn()`` over the resident set before.

    Linux only: the peak (VmHWM) is reset through /proc/self/clear_refs; NaN elsewhere. Counts every
    resident page, anonymous or file-backed (memory-mapped files read through the mapping).
    """

    def status(field: str) -> int:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
        raise RuntimeError(field)

    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:
        return float("nan")
    before = status("VmRSS")
    fn()
    return (status("VmHWM") - before) / 2**20


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    def fmt(value: object) -> str:
        if isinstance(value, float):
            if value != value:
                return "-"
            return f"{value:.3g}" if abs(value) < 1e4 else f"{value:.3e}"
        return str(value)

    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def machine_info() -> dict:
    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "machine": platform.machine(),
        "processor": platform.processor(),
        "cpus": os.cpu_count(),
        "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE"),
    }


def write_json(path: str | None, payload: dict) -> None:
    if not path:
        return
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as handle:
        json.dump(payload, handle, indent=2)
    print(f"\nwrote {path}")
