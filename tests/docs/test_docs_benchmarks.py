"""The benchmark page's renderer (docs/_ext/structdrop_bench.py) against the committed JSON.

Every committed result renders, with one table row per record and the command that produced it;
the page shows every committed result; and a JSON file that lacks a key a table needs, or the
file itself, stops the rendering with an error that names what is missing.
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs"
sys.path.insert(0, str(DOCS / "_ext"))

import structdrop_bench as bench  # noqa: E402
from _markers import find_markers  # noqa: E402

COMMITTED = sorted(path.stem for path in (DOCS / "benchmarks").glob("*.json"))


def test_the_page_shows_every_committed_result():
    page = (DOCS / "benchmarks.md").read_text()
    shown = [marker.argument for marker in find_markers(page, bench.MARKER)]
    assert sorted(shown) == COMMITTED == sorted(bench.TABLES)


@pytest.mark.parametrize("name", COMMITTED)
def test_committed_json_renders(name):
    payload = bench.load(name)
    text = bench.render(name, payload)
    assert f"Produced by `{payload['recorded']['command']}`" in text
    assert f"bench/{name}.py" in payload["recorded"]["command"]
    for table in bench.TABLES[name]:
        rows = table.records(bench.Strict(payload, name))
        assert rows
        # Its caption, header, rule and one line per record.
        block = text[text.index(bench.escape_markdown(table.caption)) :].split("\n\n", 2)[1]
        lines = [line for line in block.splitlines() if line.startswith("|")]
        assert len(lines) == 2 + len(rows)
        assert all(line.count("|") == len(table.columns) + 1 for line in lines)


def _drop(payload: dict, path: tuple) -> dict:
    broken = copy.deepcopy(payload)
    target = broken
    for step in path[:-1]:
        target = target[step]
    del target[path[-1]]
    return broken


CASES = [
    ("solver", ("recorded",), "'recorded'"),
    ("solver", ("recorded", "command"), "'command'"),
    ("solver", ("sizes", 0, "copy"), "'copy'"),
    ("solver", ("batch", "threads_2"), "'threads_2'"),
    ("sweep", ("speedup",), "'speedup'"),
    ("sgd", ("per_step", 3, "engine_us"), "'engine_us'"),
    ("moments", ("rows",), "'rows'"),
    ("objectives", ("rows", 0, "rel_diff"), "'rel_diff'"),
    ("train_many_dask", ("seconds", "cluster"), "'cluster'"),
    ("dropblock2d", ("results", 1, "ratio_full_over_torchvision"), "ratio_full_over"),
    ("large", ("records", 0, "dask_s"), "'dask_s'"),
]


@pytest.mark.parametrize("name, path, message", CASES)
def test_a_missing_key_fails_loudly(name, path, message):
    broken = _drop(bench.load(name), path)
    with pytest.raises(bench.BenchmarkDataError, match=message) as info:
        bench.render(name, broken, f"{name}.json")
    assert f"{name}.json" in str(info.value)  # the error names the file


def test_a_missing_file_or_an_unknown_benchmark_fails(tmp_path):
    with pytest.raises(bench.BenchmarkDataError, match="regenerate.py solver"):
        bench.load("solver", tmp_path)
    with pytest.raises(bench.BenchmarkDataError, match="no tables"):
        bench.render("no_such_benchmark", {"recorded": {}})


def test_numbers_are_formatted_as_shown():
    assert bench.fmt(float("nan")) == "-" and bench.fmt(None) == "-"
    assert bench.fmt(0.123456) == "0.123" and bench.fmt(1234567.0) == "1.23e+06"
    assert bench.fmt(True) == "yes" and bench.fmt([16, 256]) == "16 x 256"
    assert bench.fmt(1000000) == "1 000 000" and bench.fmt("a|b") == "a\\|b"


def test_committed_results_record_machine_and_load():
    for name in COMMITTED:
        payload = json.loads((DOCS / "benchmarks" / f"{name}.json").read_text())
        recorded = payload["recorded"]
        assert recorded["loadavg_1min_before"] >= 0 and recorded["wall_seconds"] > 0
        assert "machine" in payload or "meta" in payload
