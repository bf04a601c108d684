"""Every ```python block of README.md and docs/**/*.md runs as written.

The blocks of one file run in order in one namespace (later blocks may use what earlier ones
defined), in a fresh temporary working directory, with matplotlib on its non-interactive backend.
A block whose first line is ``# requires: NAME`` (``torch``, ``dask``, ``matplotlib``,
``pyproximal``, ...; several names separated by commas or spaces) is skipped when one of those
packages cannot be imported; the file's other blocks still run. Blocks that are not meant to run
use another language tag (``text``, ``console``, ``bash``).

What this checks against: the documentation itself. A block that raises, or whose ``assert``
statements fail, fails the test, with the file, the block's first line number and the traceback.
"""

from __future__ import annotations

import importlib.util
import re
import sys
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_SKIP_DIRS = {"_build", "auto_examples"}
_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`\s]*)")
_REQUIRES = re.compile(r"^#\s*requires:\s*(?P<names>.+?)\s*$")


def _documents() -> list[Path]:
    docs = [ROOT / "README.md"]
    docs_dir = ROOT / "docs"
    if docs_dir.is_dir():
        docs += sorted(
            p
            for p in docs_dir.rglob("*.md")
            if not _SKIP_DIRS.intersection(p.relative_to(docs_dir).parts)
        )
    return [p for p in docs if p.is_file()]


def python_blocks(text: str) -> list[tuple[int, str]]:
    """The ```python blocks of a Markdown text as (first line number, source), in order.

    A fence closes only on a fence of the same character at least as long (CommonMark), so a
    ```text block that shows a ```python block is not mistaken for code.
    """
    blocks: list[tuple[int, str]] = []
    open_fence: str | None = None
    is_python = False
    start = 0
    lines: list[str] = []
    indent = ""
    for number, line in enumerate(text.splitlines(), start=1):
        match = _FENCE.match(line)
        if open_fence is None:
            if match:
                open_fence = match["fence"]
                indent = match["indent"]
                is_python = match["info"].lower() in {"python", "py", "python3"}
                start, lines = number + 1, []
            continue
        stripped = line.strip()
        if stripped.startswith(open_fence[0] * len(open_fence)) and set(stripped) == {
            open_fence[0]
        }:
            if is_python:
                blocks.append((start, "\n".join(lines) + "\n"))
            open_fence = None
            continue
        lines.append(line[len(indent) :] if line.startswith(indent) else line)
    if open_fence is not None:
        raise ValueError(f"unclosed {open_fence} fence opened at line {start - 1}")
    return blocks


def _missing_requirements(source: str) -> list[str]:
    first = source.lstrip("\n").split("\n", 1)[0]
    match = _REQUIRES.match(first)
    if not match:
        return []
    names = [n for n in re.split(r"[,\s]+", match["names"]) if n]
    return [n for n in names if importlib.util.find_spec(n) is None]


DOCUMENTS = _documents()


def test_the_documents_have_code():
    """The collector finds the README and its blocks (a broken collector would pass vacuously)."""
    assert ROOT / "README.md" in DOCUMENTS
    assert len(python_blocks((ROOT / "README.md").read_text(encoding="utf-8"))) >= 3


def test_fences_are_parsed_like_commonmark():
    text = "````text\n```python\nraise SystemExit\n```\n````\n```python\nx = 1\n```\n"
    assert python_blocks(text) == [(7, "x = 1\n")]


@pytest.mark.parametrize("path", DOCUMENTS, ids=[str(p.relative_to(ROOT)) for p in DOCUMENTS])
def test_python_blocks_run(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = python_blocks(path.read_text(encoding="utf-8"))
    if not blocks:
        pytest.skip(f"{path.name} has no python blocks")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    namespace: dict[str, object] = {"__name__": "__doc_block__"}
    skipped = []
    for line, source in blocks:
        missing = _missing_requirements(source)
        if missing:
            skipped.append(f"line {line} needs {', '.join(missing)}")
            continue
        code = compile(source, f"{path.relative_to(ROOT)}:{line}", "exec")
        try:
            with warnings.catch_warnings():
                # the documents show the 1.0 spellings only: an old one warns from the block
                warnings.filterwarnings("error", category=FutureWarning, module="__doc_block__")
                exec(code, namespace)
        except Exception as exc:  # the block's own error, located in the document
            raise AssertionError(
                f"the python block at {path.relative_to(ROOT)} line {line} failed: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        finally:
            _close_figures()
    if len(skipped) == len(blocks):
        pytest.skip("; ".join(skipped))


def _close_figures() -> None:
    """Free figures a block drew (matplotlib is imported only if a block imported it)."""
    plt = sys.modules.get("matplotlib.pyplot")
    if plt is not None:
        plt.close("all")


_LINK = re.compile(r"\]\((?P<target>[^)\s]+)\)")


def _strip_code(text: str) -> str:
    """The text without fenced blocks and inline code (links there are examples, not links)."""
    text = re.sub(r"^(`{3,}|~{3,}).*?^\1", "", text, flags=re.S | re.M)
    return re.sub(r"`[^`\n]*`", "", text)


@pytest.mark.parametrize("path", DOCUMENTS, ids=[str(p.relative_to(ROOT)) for p in DOCUMENTS])
def test_relative_links_resolve(path: Path) -> None:
    """Every relative link of README.md and docs/ points to a file of the repository."""
    broken = []
    for match in _LINK.finditer(_strip_code(path.read_text(encoding="utf-8"))):
        target = match["target"]
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue  # http(s):, mailto:, in-page anchors
        if not (path.parent / target.split("#", 1)[0]).exists():
            broken.append(target)
    assert not broken, f"{path.relative_to(ROOT)} links to missing files: {broken}"


_TEST_FILE = re.compile(r"\b(tests/[\w/]+\.(?:py|cpp))(?:::(test_\w+))?")
_TEST_NAME = re.compile(r"`(test_\w+)`")


def _test_functions() -> set[str]:
    names: set[str] = set()
    for source in (ROOT / "tests").rglob("*.py"):
        names.update(re.findall(r"^\s*def (test_\w+)", source.read_text("utf-8"), re.M))
    return names


@pytest.mark.parametrize("path", DOCUMENTS, ids=[str(p.relative_to(ROOT)) for p in DOCUMENTS])
def test_named_checks_exist(path: Path) -> None:
    """Every test file and test function a page names as the check of a promise exists (a renamed
    or deleted test would otherwise leave the page citing a check that no longer runs)."""
    text = path.read_text(encoding="utf-8")
    functions = _test_functions()
    missing = []
    for match in _TEST_FILE.finditer(text):
        file, name = match.group(1), match.group(2)
        if not (ROOT / file).is_file():
            missing.append(file)
        elif name and not re.search(rf"^\s*def {name}\b", (ROOT / file).read_text("utf-8"), re.M):
            missing.append(f"{file}::{name}")
    for name in _TEST_NAME.findall(text):
        if name not in functions and not (ROOT / "tests" / f"{name}.py").is_file():
            missing.append(name)
    assert not missing, f"{path.relative_to(ROOT)} names checks that do not exist: {missing}"


def test_readme_stays_short():
    """The README is the front page; the manual lives in docs/."""
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 200, len(lines)


# ---------------------------------------------------------------------------------------------
# CITATION.cff: its version is the package's, and it has the keys cffconvert requires
# ---------------------------------------------------------------------------------------------

_CFF_REQUIRED = {"cff-version", "message", "title", "authors", "version", "preferred-citation"}


def _top_level_scalars(text: str) -> dict[str, str]:
    """Top-level ``key: value`` pairs of a YAML mapping, without PyYAML (values unquoted)."""
    pairs = {}
    for line in text.splitlines():
        match = re.match(r"^([A-Za-z][\w-]*):\s*(.*?)\s*$", line)
        if match:
            pairs[match[1]] = match[2].strip("\"'")
    return pairs


def test_citation_version_and_keys_without_pyyaml():
    """Runs everywhere: the few keys needed, read line by line."""
    import structdrop

    pairs = _top_level_scalars((ROOT / "CITATION.cff").read_text(encoding="utf-8"))
    assert _CFF_REQUIRED <= set(pairs), _CFF_REQUIRED - set(pairs)
    assert pairs["cff-version"] == "1.2.0"
    assert pairs["version"] == structdrop.__version__


def test_citation_parses_as_yaml():
    """With PyYAML (skipped without it): the whole file parses and the paper is complete."""
    yaml = pytest.importorskip("yaml")
    import structdrop

    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text(encoding="utf-8"))
    assert _CFF_REQUIRED <= set(cff)
    assert str(cff["version"]) == structdrop.__version__ and cff["cff-version"] == "1.2.0"
    assert cff["authors"] and all(isinstance(a, dict) for a in cff["authors"])
    paper = cff["preferred-citation"]
    assert paper["title"] == "On the Regularization Properties of Structured Dropout"
    assert paper["year"] == 2020 and "CVPR" in paper["collection-title"]
    assert [a["family-names"] for a in paper["authors"]] == ["Pal", "Lane", "Vidal", "Haeffele"]
