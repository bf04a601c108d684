"""Benchmark: the global minimum with data X (b x N) at scale, by every route a user can take.

For each N it measures, in one run (time, and peak anonymous memory beyond the inputs):
  X @ X.T     one NumPy Gram product (BLAS syrk): the yardstick of one pass over the data;
  svd route   the route of structdrop <= 0.1: thin SVD of X, an N x k basis, Y P (a x N temporaries)
              and A* (a x N) -- only while it fits in memory (N <= --svd-max);
  in process  structdrop.dropblock_global_min(Y, X=X, block_size=r, theta_bar=...) on arrays in
              RAM (the call a user makes: moments at BLAS speed, then the route choice,
              coefficients only);
  from disk   the same call on np.load(..., mmap_mode="r") of .npy files written in chunks;
  CLI         `structdrop solve Y.npy --X X.npy ...` in a subprocess, its peak anonymous memory
              (RssAnon sampled every 5 ms) against the size of X's file;
  dask        the moments on a dask.distributed LocalCluster with 2 workers reading blocks of the
              files, then global_min_from_moments; its objective against the in-process one and
              the largest peak resident set (VmHWM) of a worker.
Beyond --ram-max samples only the disk-based routes run (the data are never in memory).

    python bench/large.py --quick                        # N = 1e5, b = 200, a = 50: about a minute
    python bench/large.py                                # N = 1e5, 4e5, 1e6 (b = 500, a = 100)
    python bench/large.py --sizes 100000,400000,10000000 # 1e7: a 40 GB X on disk
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from _timing import machine_info, markdown_table, write_json

import structdrop as sd


def rss_anon_kb(pid: int | str = "self") -> int:
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    return 0


class PeakAnon:
    """Peak RssAnon of a process (this one by default) while the block runs, minus its value
    at entry."""

    def __init__(self, pid: int | str = "self", interval: float = 0.005) -> None:
        self.pid, self.interval = pid, interval
        self.peak_kb = 0
        self._stop = threading.Event()

    def _sample(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak_kb = max(self.peak_kb, rss_anon_kb(self.pid) - self.start_kb)
            except (FileNotFoundError, ProcessLookupError):
                return
            time.sleep(self.interval)

    def __enter__(self) -> PeakAnon:
        self.start_kb = rss_anon_kb(self.pid) if self.pid == "self" else 0
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def mib(self) -> float:
        return self.peak_kb / 1024


def timed(fn, *args, **kwargs):
    """Wall time, peak anonymous memory (MiB) and result of fn(*args, **kwargs)."""
    with PeakAnon() as peak:
        start = time.perf_counter()
        result = fn(*args, **kwargs)
        seconds = time.perf_counter() - start
    return seconds, peak.mib, result


def svd_route(Y: np.ndarray, X: np.ndarray, r: int, theta_bar: float) -> float:
    """The pre-0.2 route: thin SVD of X, the N x k basis, Y's coordinates, A* = a x N."""
    _, sigma, vt = np.linalg.svd(X, full_matrices=False)
    k = int(np.count_nonzero(sigma > sigma[0] * max(X.shape) * np.finfo(float).eps))
    basis = vt[:k].T
    reduced = Y @ basis
    residual = float(np.linalg.norm(Y - reduced @ basis.T) ** 2)
    left, m, w = np.linalg.svd(reduced, full_matrices=False)
    prox = sd.prox_ksupport_sq(m, r, (1 - theta_bar) / theta_bar)
    A = (left[:, : prox.rank] * prox.values[: prox.rank]) @ (w[: prox.rank] @ basis.T)
    del A
    return residual + prox.objective


def write_npy(path: Path, rows: int, n: int, fill, chunk: int = 50_000) -> None:
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float64, shape=(rows, n))
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        out[:, start:stop] = fill(start, stop)
    out.flush()
    del out


def make_files(folder: Path, a: int, b: int, n: int, seed: int) -> tuple[Path, Path]:
    """X with i.i.d. normal entries and Y = M X + noise, written a column block at a time."""
    mix = np.random.default_rng(seed).standard_normal((a, b)) / np.sqrt(b)
    x_path, y_path = folder / f"X_{n}.npy", folder / f"Y_{n}.npy"
    write_npy(
        x_path, b, n, lambda s, e: np.random.default_rng([seed, s]).standard_normal((b, e - s))
    )
    X = np.load(x_path, mmap_mode="r")
    write_npy(
        y_path,
        a,
        n,
        lambda s, e: (
            mix @ X[:, s:e] + np.random.default_rng([seed, s, 1]).standard_normal((a, e - s))
        ),
    )
    return x_path, y_path


def run_cli(x_path: Path, y_path: Path, r: int, theta_bar: float) -> tuple[float, float, dict]:
    """`structdrop solve` in a subprocess; its wall time and peak RssAnon (MiB)."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "structdrop",
            "solve",
            str(y_path),
            "--X",
            str(x_path),
            "--block-size",
            str(r),
            "--theta-bar",
            str(theta_bar),
            "--json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    with PeakAnon(proc.pid) as peak:
        out, err = proc.communicate()
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"structdrop solve failed: {err[-2000:]}")
    return seconds, peak.mib, json.loads(out.strip().splitlines()[-1])


def _peak_resident_mib() -> float:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def run_dask(
    x_path: Path, y_path: Path, r: int, theta_bar: float, workers: int
) -> tuple[float, float, float]:
    """Moments on a LocalCluster (workers read their blocks of the files), then the minimum.

    Returns the time, the objective and the largest peak resident set of a worker (MiB)."""
    import dask.array as da
    from distributed import Client, LocalCluster

    from structdrop._data.io import MappedNpy

    with (
        LocalCluster(n_workers=workers, threads_per_worker=1, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        X, Y = MappedNpy(x_path), MappedNpy(y_path)
        columns = max(1, (64 * 2**20) // (8 * X.shape[0]))
        Xd = da.from_array(X, chunks=(X.shape[0], columns), asarray=True, fancy=False)
        Yd = da.from_array(Y, chunks=(Y.shape[0], columns), asarray=True, fancy=False)
        start = time.perf_counter()
        moments = sd.data_moments(Xd, Yd)
        result = sd.global_min_from_moments(moments, block_size=r, theta_bar=theta_bar)
        seconds = time.perf_counter() - start
        worker_peak = max(client.run(_peak_resident_mib).values())
        return seconds, result.objective, worker_peak


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--sizes", default=None, help="comma-separated N (default 1e5, 4e5, 1e6)")
    parser.add_argument("--a", type=int, default=None)
    parser.add_argument("--b", type=int, default=None)
    parser.add_argument(
        "--ram-max", type=float, default=2e6, help="largest N held in memory (b = 500)"
    )
    parser.add_argument("--svd-max", type=float, default=4e5, help="largest N for the SVD route")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--dir", default=None, help="where to write the .npy files (default: a temp dir)"
    )
    parser.add_argument("--json", default="bench/results/large.json")
    args = parser.parse_args()
    a = args.a or (50 if args.quick else 100)
    b = args.b or (200 if args.quick else 500)
    sizes = (
        [int(float(s)) for s in args.sizes.split(",")]
        if args.sizes
        else ([100_000] if args.quick else [100_000, 400_000, 1_000_000])
    )
    r, theta_bar = 5, 0.5
    rows, records = [], []
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        folder = Path(tmp)
        for n in sizes:
            print(
                f"N = {n}: writing X ({b * n * 8 / 2**30:.2f} GiB) and Y to {folder} ...",
                file=sys.stderr,
                flush=True,
            )
            x_path, y_path = make_files(folder, a, b, n, seed=n)
            rec: dict = {"N": n, "a": a, "b": b, "x_file_mib": x_path.stat().st_size / 2**20}
            in_ram = n <= args.ram_max * 500 / b
            if in_ram:
                X, Y = np.load(x_path), np.load(y_path)
                rec["gram_s"], rec["gram_mib"], _ = timed(np.matmul, X, X.T)
                rec["in_process_s"], rec["in_process_mib"], res = timed(
                    sd.dropblock_global_min, Y, r, theta_bar, X=X
                )
                rec["route"], rec["objective"] = res.route, res.objective
                if n <= args.svd_max:
                    rec["svd_s"], rec["svd_mib"], svd_obj = timed(svd_route, Y, X, r, theta_bar)
                    rec["svd_rel_diff"] = abs(svd_obj - res.objective) / res.objective
                del X, Y
            Xm, Ym = np.load(x_path, mmap_mode="r"), np.load(y_path, mmap_mode="r")
            rec["disk_s"], rec["disk_mib"], disk = timed(
                sd.dropblock_global_min, Ym, r, theta_bar, X=Xm
            )
            rec.setdefault("objective", disk.objective)
            rec.setdefault("route", disk.route)
            rec["disk_rel_diff"] = abs(disk.objective - rec["objective"]) / rec["objective"]
            del Xm, Ym
            rec["cli_s"], rec["cli_mib"], cli = run_cli(x_path, y_path, r, theta_bar)
            rec["cli_mib_over_file"] = rec["cli_mib"] / rec["x_file_mib"]
            rec["cli_rel_diff"] = abs(cli["objective"] - rec["objective"]) / rec["objective"]
            try:
                rec["dask_s"], dask_obj, rec["dask_worker_peak_rss_mib"] = run_dask(
                    x_path, y_path, r, theta_bar, args.workers
                )
                rec["dask_rel_diff"] = abs(dask_obj - rec["objective"]) / rec["objective"]
            except ImportError:
                rec["dask_s"] = rec["dask_rel_diff"] = rec["dask_worker_peak_rss_mib"] = float(
                    "nan"
                )
            os.remove(x_path)
            os.remove(y_path)
            records.append(rec)
            gram = rec.get("gram_s", float("nan"))
            rows.append(
                [
                    n,
                    rec["route"],
                    gram,
                    rec.get("svd_s", float("nan")),
                    rec.get("in_process_s", float("nan")),
                    rec.get("in_process_s", float("nan")) / gram,
                    rec["disk_s"],
                    rec["cli_s"],
                    rec["dask_s"],
                    rec.get("svd_mib", float("nan")),
                    rec.get("in_process_mib", float("nan")),
                    rec["disk_mib"],
                    rec["cli_mib"],
                    rec["cli_mib_over_file"],
                    rec["dask_worker_peak_rss_mib"],
                    rec.get("dask_rel_diff", float("nan")),
                ]
            )
            print(json.dumps(rec), file=sys.stderr, flush=True)
    headers = [
        "N",
        "route",
        "X@X.T s",
        "svd s",
        "in-process s",
        "in-process / X@X.T",
        "disk s",
        "CLI s",
        "dask s",
        "svd MiB",
        "in-process MiB",
        "disk MiB",
        "CLI MiB",
        "CLI MiB / file",
        "dask worker peak RSS MiB",
        "dask rel diff",
    ]
    print(
        f"\nglobal minimum with X: a = {a}, b = {b}, r = {r}, theta_bar = {theta_bar}; "
        "memory is peak anonymous memory beyond the inputs\n"
    )
    print(markdown_table(headers, rows))
    write_json(
        args.json,
        {
            "machine": machine_info(),
            "a": a,
            "b": b,
            "r": r,
            "theta_bar": theta_bar,
            "records": records,
        },
    )


if __name__ == "__main__":
    main()
