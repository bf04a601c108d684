"""The package's import structure: every module imports on its own, and the core layers form a DAG.

Both tests read the package's sources, not a hand-kept list, so a new module is covered as soon as
it exists. An import cycle that happens to resolve in the order ``import structdrop`` uses can
still break a user whose first import is a submodule, or a refactor that reorders
``__init__.py``; a function-level import that dodges such a cycle hides it from both readers and
tools, so the graph below counts imports wherever they stand (except under ``TYPE_CHECKING``).
"""

from __future__ import annotations

import ast
import importlib.util
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

import pytest

import structdrop

PACKAGE_DIR = Path(structdrop.__file__).resolve().parent


def _module_files() -> dict[str, Path]:
    """Dotted name -> source file of every Python module and package of structdrop."""
    modules = {}
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


MODULES = _module_files()


def _extension_modules() -> set[str]:
    """Dotted names of the compiled modules (import targets without Python source).

    Found by their stub (``_core.pyi``, beside the sources in a checkout) or their binary (beside
    them in an installed wheel).
    """
    names = set()
    for path in PACKAGE_DIR.rglob("*"):
        stem = next(
            (path.name[: -len(s)] for s in EXTENSION_SUFFIXES if path.name.endswith(s)), None
        )
        if path.suffix == ".pyi":
            stem = path.stem
        if stem is not None:
            parts = path.parent.relative_to(PACKAGE_DIR.parent).parts
            names.add(".".join((*parts, stem)))
    return names


EXTENSIONS = _extension_modules()


def _is_type_checking_block(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")
    )


def _imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement of ``tree``, at any depth, except those under ``if TYPE_CHECKING``."""
    found: list[ast.Import | ast.ImportFrom] = []
    stack = [tree]
    while stack:
        node = stack.pop()
        if _is_type_checking_block(node):
            stack.extend(getattr(node, "orelse", []))
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        stack.extend(ast.iter_child_nodes(node))
    return found


def _internal_imports(name: str) -> set[str]:
    """The structdrop modules that module ``name`` imports (function-level imports included)."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    known = set(MODULES) | EXTENSIONS
    targets = set()
    for node in _imports(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names if alias.name in known)
            continue
        if node.level:
            base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
            source = ".".join(base + ([node.module] if node.module else []))
        else:
            source = node.module or ""
        for alias in node.names:
            submodule = f"{source}.{alias.name}"
            if submodule in known:  # "from . import _core", "from .cli import demo"
                targets.add(submodule)
            elif source in known:
                targets.add(source)
    targets.discard(name)
    return targets


def _cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in graph:
                    continue
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(component)
    return components


def test_cycle_finder_finds_a_planted_cycle():
    # The check below is only as good as this search: a cycle through three modules and a
    # self-contained chain beside it.
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"d"}}
    assert _cycles(graph) == [{"a", "b", "c"}]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_import_graph_sees_function_level_imports(tmp_path):
    # A function-level import is an edge; one under TYPE_CHECKING is not.
    tree = ast.parse(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from .schemes import MaskScheme\n"
        "def f():\n    from .objectives import ObjectiveTerms\n"
    )
    modules = [node.module for node in _imports(tree) if isinstance(node, ast.ImportFrom)]
    assert sorted(m for m in modules if m) == ["objectives", "typing"]


def test_schemes_and_objectives_are_layered_without_a_cycle():
    graph = {name: _internal_imports(name) for name in MODULES}
    layered = {
        "structdrop.schemes",
        "structdrop.objectives",
        "structdrop._objective_terms",
        "structdrop._blocks",
        "structdrop.width",
    }
    for component in _cycles(graph):
        assert not component & layered, f"import cycle through {sorted(component)}"
    # The intended direction: objectives -> schemes -> _objective_terms, never back.
    assert "structdrop._objective_terms" in graph["structdrop.schemes"]
    assert "structdrop.schemes" in graph["structdrop.objectives"]
    assert "structdrop.objectives" not in graph["structdrop.schemes"]
    for lower in ("structdrop.schemes", "structdrop.objectives"):
        assert lower not in graph["structdrop._objective_terms"]


def test_the_package_has_no_import_cycle():
    # Every cycle, lazy ones included: a function-level import that closes a cycle still ties the
    # two modules together (neither can be understood, tested or moved without the other), and it
    # breaks as soon as someone hoists it to the top of the file.
    graph = {name: _internal_imports(name) for name in MODULES}
    cycles = [" <-> ".join(sorted(component)) for component in _cycles(graph)]
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_data_moments_has_one_home():
    # DataMoments is defined in moments; every module that needs it imports it from there, not
    # through a module that re-exports it.
    for name, path in MODULES.items():
        for node in _imports(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.ImportFrom) or node.module in (None, "structdrop"):
                continue
            if "DataMoments" in {alias.name for alias in node.names}:
                assert node.module.rpartition(".")[2] == "moments", (
                    f"{name} imports DataMoments from {node.module}"
                )


def test_progress_is_shown_only_through_the_progress_module():
    # One helper for every display (tqdm bars, the engine's step line, dask's bar): no other
    # module imports a progress library itself.
    for name, path in MODULES.items():
        if name == "structdrop._progress":
            continue
        for node in _imports(ast.parse(path.read_text(encoding="utf-8"))):
            modules = (
                [alias.name for alias in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
            )
            for module in modules:
                assert module.split(".")[0] != "tqdm" and not module.startswith(
                    "dask.diagnostics"
                ), f"{name} imports {module}: show progress through structdrop._progress"


def test_the_architecture_page_names_every_private_module_where_it_is():
    # docs/architecture.md's tree says which feature owns each private helper: every private
    # module or subpackage of structdrop is named there, and every name it gives exists.
    # The page of the checkout these tests belong to (the package may be installed elsewhere);
    # runs from a copy of the tests alone, as under emulation, have no docs to hold it to.
    page_path = Path(__file__).resolve().parents[2] / "docs" / "architecture.md"
    if not page_path.exists():
        pytest.skip("docs/architecture.md is not beside these tests")
    page = page_path.read_text(encoding="utf-8")
    tree = page.split("python/structdrop/", 1)[1].split("\ntests/", 1)[0]
    private = {
        path.name + ("/" if path.is_dir() else "")
        for path in PACKAGE_DIR.iterdir()
        if path.name.startswith("_")
        and path.name != "__pycache__"
        and (path.suffix in (".py", ".pyi") or (path / "__init__.py").exists())
        and path.name != "__init__.py"
        and path.name != "__main__.py"
    }
    named = set(re.findall(r"(?<![\w/])(_[a-z_]+(?:\.pyi?|/))", tree))
    assert private - named == set(), f"not on docs/architecture.md: {sorted(private - named)}"
    assert named - private == set(), f"named but absent: {sorted(named - private)}"
    for package in (name for name in private if name.endswith("/")):
        for module in (PACKAGE_DIR / package).glob("[!_]*.py"):
            assert module.name in tree, f"{package}{module.name} is not on docs/architecture.md"


def _third_party_roots(name: str) -> set[str]:
    """Top-level names of the third-party packages that ``name`` and its parents import at load."""
    roots = set()
    parts = name.split(".")
    for depth in range(1, len(parts) + 1):
        path = MODULES.get(".".join(parts[:depth]))
        if path is None:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:  # module level only: lazy imports are not needed to import
            if isinstance(node, ast.Try):  # "try: import torch" guards count as needs
                nodes = [n for n in node.body if isinstance(n, (ast.Import, ast.ImportFrom))]
            else:
                nodes = [node]
            for imp in nodes:
                if isinstance(imp, ast.Import):
                    roots.update(alias.name.split(".")[0] for alias in imp.names)
                elif isinstance(imp, ast.ImportFrom) and not imp.level and imp.module:
                    roots.add(imp.module.split(".")[0])
    return roots - {"structdrop", "__future__"}


_LIST_LOADED = (
    "import importlib, sys; importlib.import_module({name!r}); "
    "print('\\n'.join(m for m in sys.modules if m.split('.')[0] == 'structdrop'))"
)


def _import_alone(name: str) -> tuple[str, int, str, set[str]]:
    """Import ``name`` first thing in a fresh interpreter: (name, exit code, stderr, loaded)."""
    result = subprocess.run(
        [sys.executable, "-c", _LIST_LOADED.format(name=name)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    return name, result.returncode, result.stderr, set(result.stdout.split())


@pytest.mark.slow
def test_every_module_imports_alone_in_a_fresh_interpreter():
    # Modules of an optional extra that is not installed (torch, matplotlib, ...) are left out.
    names = [
        name
        for name in MODULES
        if all(importlib.util.find_spec(root) for root in _third_party_roots(name))
    ]
    assert "structdrop.schemes" in names and "structdrop.objectives" in names
    packages = [n for n in names if MODULES[n].name == "__init__.py"]
    failures = []

    def run_all(batch: list[str]) -> list[tuple[str, int, str, set[str]]]:
        # One interpreter per module, a few at a time (loading torch takes seconds).
        with ThreadPoolExecutor(max_workers=max(2, min(8, os.cpu_count() or 2))) as pool:
            results = list(pool.map(_import_alone, batch))
        failures.extend(f"{n} (exit {code}):\n{err[-2000:]}" for n, code, err, _ in results if code)
        return results

    # Importing a module first runs its package's __init__; when that already loads the module,
    # importing the module alone is exactly importing the package, so one interpreter covers both.
    covered = set()
    for package, code, _, loaded in run_all(packages):
        if code == 0:
            covered |= {n for n in loaded if n.rpartition(".")[0] == package}
    run_all([n for n in names if n not in covered and n not in packages])
    assert not failures, "\n\n".join(failures)


def test_import_structdrop_loads_only_numpy_and_the_core():
    """docs/api.md: ``import structdrop`` loads only NumPy and the compiled core; tqdm comes with
    the first progress bar."""
    if not hasattr(sys, "stdlib_module_names"):  # Python < 3.10
        pytest.skip("needs sys.stdlib_module_names")
    code = (
        "import sys\n"
        "top = lambda: {m.split('.')[0] for m in sys.modules}\n"
        "import numpy\n"
        "before = top()\n"
        "import structdrop\n"
        "new = top() - before - set(sys.stdlib_module_names)\n"
        "print(sorted(m for m in new if not m.startswith('_') and m != 'cython_runtime'))\n"
        "structdrop.data_moments(numpy.ones((2, 3)), progress=True)\n"
        "print('tqdm' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert result.stdout.split()[-2:] == ["['structdrop']", "True"], result.stdout
