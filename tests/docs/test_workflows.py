"""The GitHub workflows, pyproject.toml and the documentation tell the same story.

docs/platforms.md states which wheels exist, on which GitHub runner each is built and tested,
which Python and PyTorch versions the tests use, and what this project's own CI (.ci/run) checks;
README.md, docs/getting-started.md and the PyTorch guide repeat the short form. pyproject.toml
decides what cibuildwheel builds and which PyTorch the torch extra accepts, and the workflows under
.github/workflows/ do the building and testing. Each test below reads two or three of these and
fails when one changes without the others (the page's "Changing the matrix" section).
"""

from __future__ import annotations

import fnmatch
import itertools
import re
import sys
from pathlib import Path
from typing import Any

import pytest

yaml = pytest.importorskip("yaml")  # the test extra has it

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python < 3.11
    tomllib = pytest.importorskip("tomli")  # the test extra has it

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
PLATFORMS = ROOT / "docs" / "platforms.md"


def _text(path: Path) -> str:
    """A file's text with runs of whitespace (line breaks included) as one space."""
    return re.sub(r"\s+", " ", path.read_text(encoding="utf-8"))


def _pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def _workflow(name: str) -> dict[str, Any]:
    return yaml.safe_load((WORKFLOWS / name).read_text(encoding="utf-8"))


def _triggers(workflow: dict[str, Any]) -> dict[str, Any]:
    # YAML 1.1 reads the key `on` as the boolean True
    return workflow.get("on", workflow.get(True))


def _combinations(matrix: dict[str, Any]) -> list[dict[str, Any]]:
    """The jobs of a matrix as GitHub expands it: the product of the lists, then each ``include``
    entry added to every combination it does not contradict (or appended when it fits none)."""
    assert "exclude" not in matrix, "the expansion below does not handle exclude"
    keys = [k for k in matrix if k != "include"]
    original = [dict(zip(keys, v)) for v in itertools.product(*(matrix[k] for k in keys))]
    original = original if keys else []
    added = []
    for extra in matrix.get("include", []):
        fits = [c for c in original if all(c[k] == v for k, v in extra.items() if k in keys)]
        for c in fits:
            c.update({k: v for k, v in extra.items() if k not in keys})
        if not fits:
            added.append(dict(extra))
    return original + added


def _table() -> list[dict[str, str]]:
    """The rows of the platform table of docs/platforms.md, keyed by its header cells."""
    lines = PLATFORMS.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| platform | wheel |"))
    header = [cell.strip() for cell in lines[start].strip("|").split("|")]
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        assert len(cells) == len(header), line
        rows.append(dict(zip(header, cells)))
    assert rows, "the platform table has no rows"
    return rows


def _code(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


def _build_pythons() -> list[tuple[int, int]]:
    """The CPython versions of the cibuildwheel build list, in order."""
    versions = []
    for pattern in _pyproject()["tool"]["cibuildwheel"]["build"]:
        match = re.fullmatch(r"cp3(\d+)-\*", pattern)
        assert match, f"unexpected build pattern {pattern!r}"
        versions.append((3, int(match[1])))
    return sorted(versions)


def _dotted(version: tuple[int, int]) -> str:
    return f"{version[0]}.{version[1]}"


# ---------------------------------------------------------------------------------------------
# Python and PyTorch versions
# ---------------------------------------------------------------------------------------------


def test_python_range_is_one_in_pyproject_the_docs_and_the_tests_workflow():
    project = _pyproject()["project"]
    pythons = _build_pythons()
    oldest, newest = pythons[0], pythons[-1]
    # the build list is every minor version from requires-python's bound on, without a gap
    assert project["requires-python"] == f">={_dotted(oldest)}"
    assert pythons == [(3, minor) for minor in range(oldest[1], newest[1] + 1)]
    # the tests run with the oldest and the newest
    jobs = _combinations(_workflow("tests.yml")["jobs"]["tests"]["strategy"]["matrix"])
    assert {job["python"] for job in jobs} == {_dotted(oldest), _dotted(newest)}
    # every page that names the range names this one
    span = f"CPython {_dotted(oldest)} to {_dotted(newest)}"
    for page in ("README.md", "docs/getting-started.md", "docs/platforms.md"):
        text = _text(ROOT / page)
        assert span in text, page
        assert set(re.findall(r"CPython 3\.\d+ to 3\.\d+", text)) == {span}, page
    listed = ", ".join(_dotted(v) for v in pythons[:-1]) + f" and {_dotted(newest)}"
    assert f"Each wheel is built for CPython {listed}." in _text(PLATFORMS)


def _oldest_torch() -> str:
    (spec,) = [s for s in _pyproject()["project"]["optional-dependencies"]["torch"] if "torch" in s]
    match = re.fullmatch(r"torch>=(\d+\.\d+\.\d+)", spec)
    assert match, f"the torch extra should name its oldest release: {spec!r}"
    return match[1]


def test_torch_range_is_one_in_pyproject_the_docs_and_the_tests_workflow():
    oldest = _oldest_torch()
    jobs = _combinations(_workflow("tests.yml")["jobs"]["tests"]["strategy"]["matrix"])
    pairs = {(job["python"], job["torch"]) for job in jobs}
    pythons = [_dotted(v) for v in _build_pythons()]
    newest = {torch for python, torch in pairs if python == pythons[-1]}
    assert len(pairs) == 2 and (pythons[0], oldest) in pairs, pairs
    (newest_spec,) = newest
    match = re.fullmatch(r"(\d+\.\d+)\.\*", newest_spec)  # the latest patch of the newest release
    assert match, newest_spec
    # docs/platforms.md names both pairs, exactly these
    stated = set(re.findall(r"\(Python (3\.\d+), torch (\d+\.\d+(?:\.\d+)?)\)", _text(PLATFORMS)))
    assert stated == {(pythons[0], oldest), (pythons[-1], match[1])}
    # and every page that names the oldest torch names this one
    for page in ("README.md", "docs/getting-started.md", "docs/guide/torch.md"):
        named = re.findall(r"(\d+\.\d+\.\d+) or newer", _text(ROOT / page))
        assert named and set(named) == {oldest}, (page, named)


def test_tests_workflow_does_what_the_readme_says():
    """Install from the checkout with the README's extras (torch from PyTorch's CPU wheels first),
    run the demonstration, then the README's test command."""
    readme = _text(ROOT / "README.md")
    (extras,) = re.findall(
        r'pip install "\.\[([\w,]+)\]" torch==[\d.]+ && python -m pytest', readme
    )
    runs = [step.get("run", "") for step in _workflow("tests.yml")["jobs"]["tests"]["steps"]]
    torch_at = next(i for i, r in enumerate(runs) if 'install "torch==${{ matrix.torch }}"' in r)
    assert "--index-url https://download.pytorch.org/whl/cpu" in runs[torch_at]
    install_at = runs.index(f'python -m pip install ".[{extras}]"')
    assert torch_at < install_at < runs.index("python -m structdrop")
    assert runs[-1] == "python -m pytest"


# ---------------------------------------------------------------------------------------------
# Operating systems, architectures, wheels
# ---------------------------------------------------------------------------------------------


def test_tests_workflow_runs_on_the_runners_of_the_table():
    jobs = _combinations(_workflow("tests.yml")["jobs"]["tests"]["strategy"]["matrix"])
    stated = {runner for row in _table() for runner in _code(row["tests run on"])}
    assert {job["os"] for job in jobs} == stated
    # Linux x86-64 and aarch64, macOS arm64, Windows
    assert stated == {"ubuntu-latest", "ubuntu-24.04-arm", "macos-15", "windows-latest"}


_PLATFORM_TAG = re.compile(r"(?:(manylinux|musllinux)_\d+_\d+|macosx_\d+_\d+|win)_(\w+)")


def _cibuildwheel_platforms() -> set[str]:
    """The platform parts of the identifiers cibuildwheel builds from pyproject.toml
    (``manylinux_x86_64``, ``macosx_arm64``, ``win_amd64``, ...), skip patterns applied."""
    config = _pyproject()["tool"]["cibuildwheel"]
    names = set()
    for arch in config["linux"]["archs"]:
        names |= {f"manylinux_{arch}", f"musllinux_{arch}"}
    names |= {f"macosx_{arch}" for arch in config["macos"]["archs"]}
    names |= {f"win_{arch.lower()}" for arch in config["windows"]["archs"]}
    return {
        name
        for name in names
        if not any(fnmatch.fnmatch(f"cp39-{name}", pattern) for pattern in config["skip"])
    }


def _wheel_tag(platform: str) -> str:
    """The full wheel platform tag pyproject.toml gives a cibuildwheel platform: the manylinux and
    musllinux images, and the macOS deployment target (with its per-arch override)."""
    config = _pyproject()["tool"]["cibuildwheel"]
    family, arch = platform.split("_", 1)
    if family in ("manylinux", "musllinux"):
        return f"{config['linux'][f'{family}-{arch}-image']}_{arch}"
    if family == "macosx":
        target = config["macos"]["environment"]["MACOSX_DEPLOYMENT_TARGET"]
        for override in config.get("overrides", []):
            if fnmatch.fnmatch(f"cp39-{platform}", override["select"]):
                target = override["environment"].get("MACOSX_DEPLOYMENT_TARGET", target)
        major, minor = (target.split(".") + ["0"])[:2]
        return f"macosx_{major}_{minor}_{arch}"
    return platform


def test_the_table_lists_the_wheels_pyproject_builds():
    stated = [tag for row in _table() for tag in _code(row["wheel"])]
    assert len(stated) == len(set(stated))
    assert set(stated) == {_wheel_tag(p) for p in _cibuildwheel_platforms()}


@pytest.mark.parametrize("page", ["README.md", "docs/getting-started.md"])
def test_the_short_form_of_the_wheel_list_matches_pyproject(page):
    """README.md and getting started name the wheels in words: glibc from the manylinux image,
    musl when a musllinux wheel is built, the oldest macOS of each architecture."""
    text = _text(ROOT / page)
    tags = {_wheel_tag(p) for p in _cibuildwheel_platforms()}
    (glibc,) = {re.fullmatch(r"manylinux_(\d+)_(\d+)_\w+", t).groups() for t in tags if "many" in t}
    assert f"glibc {'.'.join(glibc)}" in text
    assert ("musl" in text) == any(t.startswith("musllinux") for t in tags)
    for tag in tags:
        match = re.fullmatch(r"macosx_(\d+)_(\d+)_(\w+)", tag)
        if match:
            since = match[1] if match[2] == "0" else f"{match[1]}.{match[2]}"
            name = {"x86_64": "x86-64", "arm64": "Apple silicon"}[match[3]]
            assert f"{name} from {since}" in text, (tag, page)


def test_wheels_workflow_builds_each_wheel_on_the_runner_of_the_table():
    job = _workflow("wheels.yml")["jobs"]["wheels"]
    runners = _combinations(job["strategy"]["matrix"])
    arch_of = {r["os"]: r["arch"] for r in runners}
    assert len(arch_of) == len(runners), "one architecture per runner"
    # cibuildwheel builds the matrix's arch on each runner
    (build,) = [s for s in job["steps"] if s.get("uses", "").startswith("pypa/cibuildwheel@")]
    assert build["env"]["CIBW_ARCHS"] == "${{ matrix.arch }}"
    config = _pyproject()["tool"]["cibuildwheel"]
    for platform, prefix in (("linux", "ubuntu-"), ("macos", "macos-"), ("windows", "windows-")):
        built = {arch for runner, arch in arch_of.items() if runner.startswith(prefix)}
        assert built == set(config[platform]["archs"]), platform
    # each wheel of the table on the runner the table names, which builds its architecture
    arch_names = {"amd64": "AMD64"}
    for row in _table():
        (tag,) = _code(row["wheel"])
        (runner,) = _code(row["wheels built on"])
        arch = _PLATFORM_TAG.fullmatch(tag)[2]
        assert arch_of[runner] == arch_names.get(arch, arch), (tag, runner)
    assert set(arch_of) == {r for row in _table() for r in _code(row["wheels built on"])}


def test_wheels_workflow_publishes_only_version_tags_by_trusted_publishing():
    workflow = _workflow("wheels.yml")
    assert "v*" in _triggers(workflow)["push"]["tags"]
    assert workflow["permissions"] == {"contents": "read"}  # no job but publish may mint a token
    jobs = workflow["jobs"]
    publish = jobs["publish"]
    assert set(publish["needs"]) == {"wheels", "sdist"}
    assert publish["if"] == "github.event_name == 'push' && startsWith(github.ref, 'refs/tags/v')"
    assert publish["permissions"] == {"id-token": "write"}
    assert publish["environment"]["name"] == "pypi"
    download, upload = publish["steps"]
    assert download["uses"].startswith("actions/download-artifact@")
    assert upload["uses"] == "pypa/gh-action-pypi-publish@release/v1"
    assert "password" not in upload.get("with", {})  # trusted publishing: no token
    # the download pattern takes every wheel and the sdist, and nothing else is uploaded
    pattern = download["with"]["pattern"]
    uploads = [
        step["with"]
        for name in ("wheels", "sdist")
        for step in jobs[name]["steps"]
        if step.get("uses", "").startswith("actions/upload-artifact@")
    ]
    assert len(uploads) == 2
    assert all(fnmatch.fnmatch(u["name"].split("$")[0] + "x", pattern) for u in uploads)
    assert [u["path"] for u in uploads] == ["wheelhouse/*.whl", "dist/*.tar.gz"]
    assert download["with"]["merge-multiple"] is True and download["with"]["path"] == "dist"
    # a tag that does not name the package's version stops the release
    sdist_runs = " ".join(step.get("run", "") for step in jobs["sdist"]["steps"])
    assert "__version__" in sdist_runs and "GITHUB_REF_NAME" in sdist_runs


def test_docs_workflow_builds_the_site_as_ci_does():
    runs = [step.get("run", "") for step in _workflow("docs.yml")["jobs"]["docs"]["steps"]]
    assert "bash .ci/docs" in runs
    assert "python -m sphinx -E -W" in (ROOT / ".ci" / "docs").read_text(encoding="utf-8")


# ---------------------------------------------------------------------------------------------
# What .ci/run checks here
# ---------------------------------------------------------------------------------------------


def _ci_scripts() -> dict[str, str]:
    """.ci/run and every script under .ci/ that it runs, by name, with their text."""
    run = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    names = re.findall(r"^[^#\n]*\b(?:bash|python3?) (\.ci/[\w.-]+)", run, re.M)
    return {".ci/run": run} | {
        n: (ROOT / n).read_text(encoding="utf-8") for n in sorted(set(names))
    }


# Each phrase the last column of the table may use, and what makes it true: a pattern found in
# .ci/run or in a script that .ci/run runs (a script the phrase names must be one of those).
_HERE = {
    "natively": r"^python -m pytest",
    "the whole suite": r"^python -m pytest$",
    "the sanitizers": r"STRUCTDROP_SANITIZE=ON",
    "other OpenBLAS kernels": r"OPENBLAS_CORETYPE=",
    "a wheel installed without compiler": r"auditwheel repair",
    "under qemu-user emulation": r"qemu",
    "`.ci/aarch64`": r"aarch64",
    "the code paths, cross-compiled": r"x86_64-w64-mingw32",
    "`.ci/compile-checks`": r"mingw32",
}


def test_what_the_table_says_ci_run_checks_is_in_ci_run():
    """Every claim of the last column is a phrase listed above whose evidence is in .ci/run or a
    script it runs; a row that CI here does not check says so ("no"). A new claim fails until it
    is added above with its evidence."""
    scripts = _ci_scripts()
    everything = "\n".join(scripts.values())
    for row in _table():
        cell = row["checked here by `.ci/run`"]
        if cell == "no":
            continue
        rest = cell
        for phrase, pattern in _HERE.items():
            if phrase not in cell:
                continue
            rest = rest.replace(phrase, "")
            for script in _code(phrase):
                assert script in scripts, f"{row['platform']}: .ci/run does not run {script}"
            assert re.search(pattern, everything, re.M), (row["platform"], phrase, pattern)
        assert not re.sub(r"[\s,:;]", "", rest), (row["platform"], rest)


def test_windows_code_paths_run_under_wine_as_the_page_says():
    """The page: the C++ unit checks run under wine (the mingw-w64 build of them)."""
    assert "C++ unit checks (`tests/cpp`) under wine" in _text(PLATFORMS)
    assert re.search(r"^[^#\n]*\bwine", _ci_scripts().get(".ci/compile-checks", ""), re.M)


# ---------------------------------------------------------------------------------------------
# Nothing is said to be on PyPI before it is
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "page", ["README.md", "docs/index.md", "docs/getting-started.md", "docs/platforms.md"]
)
def test_pip_install_structdrop_is_only_promised_for_a_published_release(page):
    """Until a release is on PyPI, every mention of ``pip install structdrop`` is conditional on
    one, and the page gives the install from a checkout (``pip install .``)."""
    text = (ROOT / page).read_text(encoding="utf-8")
    assert re.search(r"^\$? ?pip install \.(\s|$)", text, re.M), page
    for paragraph in re.split(r"\n\s*\n", text):
        if "pip install structdrop" in paragraph:
            assert re.search(r"once a release is published", paragraph, re.I), paragraph


def test_the_platforms_above_are_what_cibuildwheel_builds():
    """The reading of [tool.cibuildwheel] above against cibuildwheel itself, where it is installed
    (.ci/run installs it for its release step; skipped without it)."""
    pytest.importorskip("cibuildwheel")
    import subprocess

    identifiers = set()
    for platform in ("linux", "macos", "windows"):
        out = subprocess.run(
            [sys.executable, "-m", "cibuildwheel", "--print-build-identifiers"]
            + ["--platform", platform, str(ROOT)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        identifiers |= set(out.split())
    expected = {
        f"cp3{minor}-{platform}"
        for (_, minor) in _build_pythons()
        for platform in _cibuildwheel_platforms()
    }
    assert identifiers == expected
