"""Every public function and method says what it returns, what it raises, and shows an example
that runs.

The public names are read from the modules, not from a hand-kept list: every function in the
``__all__`` of the modules below (structdrop, its torch, Lightning and PyProximal parts, the
figures, the command line and the NumPy reference), every class there, and every public method
those classes define (themselves or through a base class of the package), except overrides of
another library's hooks (``forward``, ``extra_repr``, Lightning's ``on_*``: their contract is that
library's). Functions and methods need Google-style ``Returns:`` (or ``Yields:``; not when they
return None), ``Raises:`` and ``Example:``/``Examples:`` sections; classes need ``Example:``, and
``Raises:`` when they define their own constructor checks (``__init__`` or ``__post_init__``).
Each docstring's ``>>>`` lines run as a doctest (the torch modules' only where torch imports; the
examples must be quick).
"""

from __future__ import annotations

import doctest
import importlib
import importlib.util
import inspect
import re
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

import structdrop

PUBLIC_MODULES = (
    "structdrop",
    "structdrop.torch",
    "structdrop.torch.lightning",
    "structdrop.pyproximal",
    "structdrop.figures",
    "structdrop.cli",
    "structdrop.reference",
)
# What each optional module needs to import (a module whose needs are missing is skipped).
NEEDS = {
    "structdrop.torch": ("torch",),
    "structdrop.torch.lightning": ("torch", "lightning"),
    "structdrop.pyproximal": ("pyproximal",),
}


def _importable(module: str) -> bool:
    return all(importlib.util.find_spec(name) is not None for name in NEEDS.get(module, ()))


def _ours(obj: object) -> bool:
    return (getattr(obj, "__module__", None) or "").split(".")[0] == "structdrop"


def _methods(cls: type) -> Iterator[tuple[str, Any]]:
    """The public methods ``cls`` defines itself or inherits from a class of the package (not
    properties, not what a base class of another library such as torch.nn.Module defines)."""
    seen = set()
    hooks = {name for klass in cls.__mro__ if not _ours(klass) for name in vars(klass)}
    for klass in cls.__mro__:
        if not _ours(klass):
            continue
        for name, value in vars(klass).items():
            if name.startswith("_") or name in seen or name in hooks:
                continue
            seen.add(name)
            function = value.__func__ if isinstance(value, (classmethod, staticmethod)) else value
            if inspect.isfunction(function):
                yield name, function


def _public_objects() -> list[tuple[str, str, Any]]:
    """(dotted name, kind, object): kind is "function", "method" or "class"."""
    found = []
    for module_name in PUBLIC_MODULES:
        if not _importable(module_name):
            continue
        module = importlib.import_module(module_name)
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.isclass(obj) and _ours(obj):
                found.append((f"{module_name}.{name}", "class", obj))
                found.extend(
                    (f"{module_name}.{name}.{method}", "method", function)
                    for method, function in _methods(obj)
                )
            elif inspect.isfunction(obj) and _ours(obj):
                found.append((f"{module_name}.{name}", "function", obj))
    return found


OBJECTS = _public_objects()
IDS = [name for name, _, _ in OBJECTS]


def _sections(doc: str) -> set[str]:
    """The Google-style section headers of ``doc`` ("Returns", "Raises", "Example", ...)."""
    return set(re.findall(r"^\s*([A-Z][A-Za-z ]*):\s*$", doc, flags=re.MULTILINE))


def _returns_none(obj: Any) -> bool:
    try:
        annotation = inspect.signature(obj).return_annotation
    except (TypeError, ValueError):
        return False
    return annotation in (None, "None")


def _checks_its_arguments(cls: type) -> bool:
    """Whether the class defines its own constructor (an exception's is not a check)."""
    if issubclass(cls, BaseException):
        return False
    init = vars(cls).get("__init__")
    own_init = init is not None and inspect.getsourcefile(inspect.unwrap(init)) != "<string>"
    return own_init or "__post_init__" in vars(cls)


def _missing_sections(kind: str, doc: str, obj: Any = None) -> list[str]:
    sections = _sections(doc)
    missing = []
    if kind != "class":
        if not sections & {"Returns", "Yields"} and not _returns_none(obj):
            missing.append("Returns:")
        if "Raises" not in sections:
            missing.append("Raises:")
    elif obj is not None and _checks_its_arguments(obj) and "Raises" not in sections:
        missing.append("Raises:")
    if not sections & {"Example", "Examples"}:
        missing.append("Example:")
    return missing


def test_the_public_names_are_found():
    # The collection itself: the main functions and classes, and methods of the result types.
    names = set(IDS)
    assert {
        "structdrop.dropblock_global_min",
        "structdrop.GlobalMin",
        "structdrop.GlobalMin.factorize",
        "structdrop.balanced_factorization",
        "structdrop.DropBlock.objective",
    } <= names
    assert not any(".__" in name for name in names)


def test_the_section_reader_sees_what_it_must():
    doc = "Summary.\n\n    Returns:\n        x.\n\n    Raises:\n        y.\n\n    Example:\n"
    assert _missing_sections("function", doc) == []
    assert _missing_sections("function", "Summary. Returns: x") == [
        "Returns:",
        "Raises:",
        "Example:",
    ]
    assert _missing_sections("class", "Summary.\n\nExamples:\n    >>> 1\n    1\n") == []


@pytest.mark.parametrize(("name", "kind", "obj"), OBJECTS, ids=IDS)
def test_docstring_has_returns_raises_and_example(name, kind, obj):
    doc = inspect.getdoc(obj) or ""
    missing = _missing_sections(kind, doc, obj)
    assert not missing, f"{name}: its docstring has no {', '.join(missing)} section"


def _examples(obj: Any, name: str) -> list[doctest.DocTest]:
    globs = dict(vars(inspect.getmodule(obj) or structdrop))
    globs.update({"np": np, "sd": structdrop, "structdrop": structdrop})
    test = doctest.DocTestParser().get_doctest(inspect.getdoc(obj) or "", globs, name, None, 0)
    return [test] if test.examples else []


DOCTESTS = [(name, test) for name, _, obj in OBJECTS for test in _examples(obj, name)]


@pytest.mark.parametrize(("name", "test"), DOCTESTS, ids=[name for name, _ in DOCTESTS])
def test_docstring_examples_run(name, test):
    runner = doctest.DocTestRunner(
        optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False
    )
    report: list[str] = []
    runner.run(test, out=report.append)
    assert runner.failures == 0, f"{name}: its example fails:\n" + "".join(report)
