"""Sphinx extension: benchmark tables rendered at build time from the JSON that bench/ writes.

docs/benchmarks.md holds one marker block per benchmark::

    ```{structdrop-bench} solver
    ```

which becomes the command that produced ``docs/benchmarks/solver.json`` (from its ``recorded``
section, written by docs/benchmarks/regenerate.py), the machine and load, and the tables that
:data:`TABLES` defines for that benchmark. A key missing from the JSON stops the build with an
error naming the file and the key (:class:`BenchmarkDataError`); nothing is left blank silently.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _markers import escape_markdown, replace_markers

MARKER = "structdrop-bench"
DATA = Path(__file__).resolve().parent.parent / "benchmarks"


class BenchmarkDataError(ValueError):
    """The benchmark JSON lacks something a table needs (or is not there at all)."""


class Strict(Mapping):
    """A read-only view of a JSON object whose missing keys raise :class:`BenchmarkDataError`."""

    def __init__(self, data: Any, where: str) -> None:
        if not isinstance(data, dict):
            raise BenchmarkDataError(f"{where}: expected a JSON object, got {type(data).__name__}")
        self._data, self._where = data, where

    def __getitem__(self, key: str) -> Any:
        if key not in self._data:
            raise BenchmarkDataError(
                f"{self._where} has no key {key!r} (it has: {', '.join(sorted(self._data))})"
            )
        return wrap(self._data[key], f"{self._where}[{key!r}]")

    def __iter__(self):
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)


def wrap(value: Any, where: str) -> Any:
    if isinstance(value, dict):
        return Strict(value, where)
    if isinstance(value, list):
        return [wrap(item, f"{where}[{i}]") for i, item in enumerate(value)]
    return value


@dataclass(frozen=True)
class Table:
    """One table: a caption, the records (a function of the whole JSON) and the columns."""

    caption: str
    records: Callable[[Strict], Sequence[Any]]
    columns: Sequence[tuple[str, Callable[[Any], Any]]]


def key(name: str, scale: float = 1.0) -> Callable[[Any], Any]:
    return lambda rec: rec[name] * scale if scale != 1.0 else rec[name]


def ratio(top: str, bottom: str) -> Callable[[Any], float]:
    return lambda rec: rec[top] / rec[bottom]


def one(rec: Strict) -> list[Strict]:
    return [rec]


def fmt(value: Any) -> str:
    """Numbers to 3 significant digits, NaN and None as '-', booleans as yes/no."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}".replace(",", " ") if abs(value) >= 10**5 else str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
            return f"{value:.2e}"
        return f"{value:.3g}"
    if isinstance(value, (list, tuple)):
        return " x ".join(fmt(v) for v in value)
    return escape_markdown(str(value))


MS, US = 1e3, 1e6

#: The tables of each benchmark, by the name of its JSON file (docs/benchmarks/NAME.json).
TABLES: dict[str, list[Table]] = {
    "solver": [
        Table(
            "Public prox of beta ||.||_(r)^2, r = n/20, beta = 1: median time, and ratios to "
            "np.copy of the input (the floor of any call that returns a new array)",
            lambda d: d["sizes"],
            [
                ("n", key("n")),
                ("np.copy (ms)", key("copy", MS)),
                ("np.sort / copy", ratio("sort", "copy")),
                ("sorted input / copy", ratio("api_sorted", "copy")),
                ("unsorted / copy", ratio("api_unsorted", "copy")),
                ("signed / copy", ratio("api_signed", "copy")),
                ("float32 / copy", ratio("api_float32", "copy")),
                ("NumPy reference / API (unsorted)", ratio("numpy", "api_unsorted")),
            ],
        ),
        Table(
            "Worst-case input families: seconds per call",
            lambda d: d["families"],
            [("input", key("family")), ("n", key("n")), ("seconds", key("seconds"))],
        ),
        Table(
            "Batch of rows (prox_ksupport_sq_batch): median ms",
            lambda d: one(d["batch"]),
            [
                ("rows x n", lambda b: [b["rows"], b["n"]]),
                ("r", key("r")),
                ("1 thread (ms)", key("threads_1", MS)),
                ("2 threads (ms)", key("threads_2", MS)),
                ("speed-up", key("speedup_2_threads")),
                ("Python loop of single calls (ms)", key("python_loop", MS)),
            ],
        ),
        Table(
            "Spectral prox of a matrix next to the SVD it needs: median ms",
            lambda d: d["spectral"],
            [
                ("shape", key("shape")),
                ("r", key("r")),
                ("np.linalg.svd (ms)", key("svd", MS)),
                ("prox_ksupport_sq (ms)", key("prox", MS)),
                ("prox / svd", ratio("prox", "svd")),
            ],
        ),
        Table(
            "The literal Theorem 7 search over (rho, lambda)",
            lambda d: one(d["search_target"]),
            [
                ("n", key("n")),
                ("r", key("r")),
                ("C++ (ms)", key("cpp_search", MS)),
                ("NumPy (ms)", key("numpy_search", MS)),
                ("NumPy / C++", key("ratio")),
            ],
        ),
    ],
    "sweep": [
        Table(
            "sweep_global_min over a grid of settings against a Python loop over the NumPy "
            "reference prox (timed on a random subset of the settings, scaled to the grid)",
            one,
            [
                ("n", key("n")),
                ("settings", key("settings")),
                ("C++, all cores (s)", key("cpp_total")),
                ("C++, 1 thread (s)", key("cpp_single_thread")),
                ("NumPy per setting (ms)", key("numpy_per_setting", MS)),
                ("NumPy, whole grid (s, scaled)", key("numpy_total_estimated")),
                ("speed-up", key("speedup")),
            ],
        ),
        Table(
            "Scaling in n (900 settings)",
            lambda d: d["scaling_n"],
            [
                ("n", lambda row: row[0]),
                ("total (s)", lambda row: row[2]),
                ("per setting (us)", lambda row: row[3]),
            ],
        ),
        Table(
            "Scaling in the number of settings",
            lambda d: d["scaling_settings"],
            [
                ("n", lambda row: row[0]),
                ("settings", lambda row: row[1]),
                ("total (s)", lambda row: row[2]),
                ("per setting (us)", lambda row: row[3]),
            ],
        ),
    ],
    "objectives": [
        Table(
            "One exact objective: C++ from cached moments against the direct NumPy formula over "
            "the N samples (speed-up = NumPy / C++; 'with moments' includes computing them)",
            lambda d: d["rows"],
            [
                ("scheme", key("scheme")),
                ("N", key("N")),
                ("d", key("d")),
                ("NumPy (ms)", key("numpy_s", MS)),
                ("C++ cached (ms)", key("cpp_cached_s", MS)),
                ("moments (ms)", key("moments_s", MS)),
                ("speed-up", key("speedup_cached")),
                ("speed-up with moments", key("speedup_with_moments")),
                ("relative difference", key("rel_diff")),
            ],
        ),
    ],
    "moments": [
        Table(
            "data_moments against NumPy's own products: median seconds, ratios to NumPy float64, "
            "peak memory beyond the inputs",
            lambda d: d["rows"],
            [
                ("N", key("N")),
                ("route", key("route")),
                ("seconds", key("seconds")),
                ("/ NumPy (median)", key("ratio_to_numpy")),
                ("/ NumPy (best)", key("best_ratio_to_numpy")),
                ("peak (MiB)", key("peak_mib")),
                ("max relative difference", key("rel_diff")),
            ],
        ),
    ],
    "sgd": [
        Table(
            "Microseconds per masked-SGD step: the C++ engine (structdrop.train) against a NumPy "
            "loop and a PyTorch CPU loop; 'x arithmetic' is the step time over the time of its "
            "multiply-adds at the measured matrix-vector rate",
            lambda d: d["per_step"],
            [
                ("d", key("d")),
                ("scheme", key("scheme")),
                ("C++ (us)", key("engine_us")),
                ("NumPy (us)", key("numpy_us")),
                ("PyTorch (us)", key("torch_us")),
                ("NumPy / C++", key("numpy_over_engine")),
                ("PyTorch / C++", key("torch_over_engine")),
                ("x arithmetic", key("times_arithmetic")),
            ],
        ),
        Table(
            "Many runs at once (train_many): steps per second",
            lambda d: d["parallel"],
            [
                ("threads", key("threads")),
                ("runs", key("runs")),
                ("steps per run", key("steps")),
                ("steps / s", key("steps_per_second")),
                ("seconds", key("seconds")),
            ],
        ),
        Table(
            "Cost against the retain probability (a dropped unit costs nothing)",
            lambda d: d["theta"],
            [
                ("theta", key("theta")),
                ("scheme", key("scheme")),
                ("C++ (us per step)", key("engine_us")),
                ("relative to theta = 1", key("relative")),
            ],
        ),
    ],
    "train_many_dask": [
        Table(
            "train_many: R runs here on one core, on all cores, and on a dask.distributed "
            "LocalCluster (best of the repeats; the cluster's start-up is a separate column)",
            one,
            [
                ("runs", key("runs")),
                ("steps", key("steps")),
                ("workers", key("workers")),
                ("1 thread (s)", lambda d: d["seconds"]["threads_1"]),
                ("all cores (s)", lambda d: d["seconds"]["threads_all"]),
                ("cluster (s)", lambda d: d["seconds"]["cluster"]),
                ("cluster start-up (s)", key("cluster_startup_seconds")),
                ("bit-identical to 1 thread", key("bit_identical")),
            ],
        ),
    ],
    "dropblock2d": [
        Table(
            "DropBlock2d training-mode forward (block 7, p = 0.1): median ms per call",
            lambda d: [
                dict(shape=rec["shape"], route=route, seconds=rec["seconds"][route])
                for rec in d["results"]
                for route in rec["seconds"]
            ],
            [
                ("input shape", lambda rec: rec["shape"]),
                ("route", lambda rec: rec["route"]),
                ("ms", lambda rec: rec["seconds"] * MS),
            ],
        ),
        Table(
            "structdrop's default (full) against torchvision's rule",
            lambda d: d["results"],
            [("input shape", key("shape")), ("time ratio", key("ratio_full_over_torchvision"))],
        ),
    ],
    "large": [
        Table(
            "The global minimum with data X (b x N) by each route: seconds and peak memory "
            "beyond the inputs (MiB)",
            lambda d: d["records"],
            [
                ("N", key("N")),
                ("a", key("a")),
                ("b", key("b")),
                ("X @ X.T (s)", key("gram_s")),
                ("in process (s)", key("in_process_s")),
                ("in process (MiB)", key("in_process_mib")),
                ("route", key("route")),
                ("SVD route (s)", key("svd_s")),
                ("SVD route (MiB)", key("svd_mib")),
                ("from disk (s)", key("disk_s")),
                ("CLI (s)", key("cli_s")),
                ("CLI peak / X file", key("cli_mib_over_file")),
                ("dask (s)", key("dask_s")),
                ("dask worker peak (MiB)", key("dask_worker_peak_rss_mib")),
            ],
        ),
    ],
}


def _machine(payload: Strict) -> str:
    raw = payload._data.get("machine")
    if not isinstance(raw, dict):  # bench/objectives.py writes it under "meta"
        raw = payload["meta"]._data
    keys = ("machine", "cpus", "python", "numpy")
    return ", ".join(f"{k} {raw[k]}" for k in keys if raw.get(k) not in (None, ""))


def render_table(table: Table, payload: Strict) -> str:
    records = table.records(payload)
    if not records:
        raise BenchmarkDataError(f"{payload._where}: no records for the table {table.caption!r}")
    header = "| " + " | ".join(escape_markdown(name) for name, _ in table.columns) + " |"
    rule = "|" + "|".join("---" for _ in table.columns) + "|"
    rows = ["| " + " | ".join(fmt(get(rec)) for _, get in table.columns) + " |" for rec in records]
    return f"{escape_markdown(table.caption)}:\n\n" + "\n".join([header, rule, *rows]) + "\n"


def render(name: str, payload: dict[str, Any], source: str | None = None) -> str:
    """Markdown for one benchmark: where its numbers come from, then its tables."""
    if name not in TABLES:
        raise BenchmarkDataError(f"no tables are defined for the benchmark {name!r}")
    data = Strict(payload, source or f"{name}.json")
    recorded = data["recorded"]
    parts = [
        f"Produced by `{recorded['command']}` on {recorded['date_utc']} UTC "
        f"({recorded['wall_seconds']:.0f} s; load average {recorded['loadavg_1min_before']:.1f} "
        f"before and {recorded['loadavg_1min_after']:.1f} after; {_machine(data)}).\n"
    ]
    parts += [render_table(table, data) for table in TABLES[name]]
    return "\n".join(parts)


def load(name: str, directory: Path = DATA) -> dict[str, Any]:
    path = directory / f"{name}.json"
    if not path.is_file():
        raise BenchmarkDataError(
            f"{path} is missing: run 'python docs/benchmarks/regenerate.py {name}'"
        )
    with open(path) as handle:
        return json.load(handle)


def _on_source_read(app, docname: str, source: list[str]) -> None:
    if f"{{{MARKER}}}" not in source[0]:
        return

    def expand(marker) -> str:
        try:
            return render(
                marker.argument, load(marker.argument), f"docs/benchmarks/{marker.argument}.json"
            )
        except BenchmarkDataError as exc:
            from sphinx.errors import ExtensionError

            raise ExtensionError(f"{docname}: benchmark {marker.argument!r}: {exc}") from exc

    source[0] = replace_markers(source[0], MARKER, expand)


def setup(app) -> dict[str, Any]:
    app.connect("source-read", _on_source_read)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
