"""python/structdrop/_core.pyi against the compiled module it describes.

The package ships py.typed, so mypy users see only the stub: every name, class member and
parameter name in it must exist in ``structdrop._core``, and everything public there must be in
the stub. The stub is read with ``ast``; the module's side comes from the module itself and from
the signatures pybind11 writes at the top of each docstring (independent of the stub).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Union

import pytest

from structdrop import _core

STUB = Path(_core.__file__).resolve().parent / "_core.pyi"
if not STUB.exists():  # an editable install keeps the stub in the source tree
    STUB = Path(__file__).resolve().parents[2] / "python" / "structdrop" / "_core.pyi"

Definition = Union[ast.FunctionDef, ast.ClassDef]


def stub_definitions() -> dict[str, Definition]:
    tree = ast.parse(STUB.read_text(encoding="utf-8"), filename=str(STUB))
    found: dict[str, Definition] = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            assert node.name not in found, f"{node.name} defined twice in {STUB.name}"
            found[node.name] = node
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            raise AssertionError(f"{STUB.name}: module-level variable at line {node.lineno}")
    return found


def public(names: object) -> set[str]:
    return {name for name in names if not name.startswith("_")}  # type: ignore[attr-defined]


def stub_parameters(function: ast.FunctionDef) -> list[str]:
    args = function.args
    names = [a.arg for a in args.posonlyargs + args.args + args.kwonlyargs]
    return [name for name in names if name != "self"]


def split_top_level(text: str) -> list[str]:
    """Split a parameter list at the commas outside brackets."""
    parts, depth, start = [], 0, 0
    for i, char in enumerate(text):
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [part.strip() for part in parts if part.strip()]


def runtime_parameters(obj: object, name: str) -> list[str]:
    """Parameter names from pybind11's signature line(s) (the first overload's, when several)."""
    doc = getattr(obj, "__doc__", None) or ""
    match = re.search(rf"^(?:\d+\. )?{re.escape(name)}\((.*)\) ->", doc, flags=re.MULTILINE)
    assert match, f"no pybind11 signature for {name} in its docstring: {doc[:200]!r}"
    names = [part.split(":")[0].split("=")[0].strip() for part in split_top_level(match.group(1))]
    return [n for n in names if n not in ("self", "/", "*")]


def test_every_stub_name_exists_and_every_public_name_is_stubbed():
    stub = set(stub_definitions())
    module = public(dir(_core))
    assert stub - module == set(), "in _core.pyi but not in structdrop._core"
    assert module - stub == set(), "in structdrop._core but not in _core.pyi"


@pytest.mark.parametrize(
    "name",
    [n for n, node in stub_definitions().items() if isinstance(node, ast.FunctionDef)],
)
def test_function_parameters_match(name):
    node = stub_definitions()[name]
    assert isinstance(node, ast.FunctionDef)
    assert stub_parameters(node) == runtime_parameters(getattr(_core, name), name)


@pytest.mark.parametrize(
    "name",
    [n for n, node in stub_definitions().items() if isinstance(node, ast.ClassDef)],
)
def test_class_members_match(name):
    node = stub_definitions()[name]
    cls = getattr(_core, name)
    assert isinstance(cls, type)
    members: dict[str, ast.stmt] = {}
    for item in node.body:
        if isinstance(item, ast.FunctionDef):
            members[item.name] = item
        elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
            members[item.target.id] = item
    assert public(members) == public(dir(cls)), f"public members of {name}"
    for member, item in members.items():
        assert hasattr(cls, member), f"{name}.{member} is in the stub, not in the module"
        if member == "__init__" and isinstance(item, ast.FunctionDef):
            assert stub_parameters(item) == runtime_parameters(cls.__init__, "__init__")


def test_the_parser_sees_a_wrong_stub():
    """The checks above can fail: a stale signature and a missing name are caught."""
    stale = ast.parse("def scheme_stats(kind: int, theta: float, d: int) -> None: ...").body[0]
    assert isinstance(stale, ast.FunctionDef)
    assert stub_parameters(stale) != runtime_parameters(_core.scheme_stats, "scheme_stats")
    assert "SgdJob" in public(dir(_core)) and "sgd_job" not in public(dir(_core))
