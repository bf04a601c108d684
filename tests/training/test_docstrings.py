"""The public API of schemes, objectives, moments, training and datasets documents what it returns,
what it raises and an example, and every example runs (as a doctest)."""

from __future__ import annotations

import doctest
import inspect

import pytest

from structdrop import datasets, moments, objectives, schemes, training

MODULES = [schemes, objectives, moments, training, datasets]


def _public_api():
    for module in MODULES:
        for name in module.__all__:
            obj = getattr(module, name)
            if getattr(obj, "__module__", None) not in (
                module.__name__,
                "structdrop._objective_terms",
            ):
                continue  # a re-export: checked in its home module
            yield f"{module.__name__}.{name}", obj
            if inspect.isclass(obj):
                for attr, member in vars(obj).items():
                    if attr.startswith("_") or isinstance(member, property):
                        continue
                    if callable(member) or isinstance(member, (classmethod, staticmethod)):
                        yield f"{module.__name__}.{name}.{attr}", getattr(obj, attr)


API = dict(_public_api())


def _defines_its_own_init(cls: type) -> bool:
    init = cls.__dict__.get("__init__")
    own = init is not None and inspect.getsourcefile(inspect.unwrap(init)) != "<string>"
    return own or "__post_init__" in cls.__dict__


@pytest.mark.parametrize("name", sorted(API))
def test_sections(name):
    obj = API[name]
    doc = inspect.getdoc(obj) or ""
    assert "Example:" in doc and ">>>" in doc.split("Example:")[1], name
    if inspect.isclass(obj):
        if _defines_its_own_init(obj) and not issubclass(obj, BaseException):
            assert "Raises:" in doc, name
        return
    assert "Raises:" in doc, name
    returns = inspect.signature(obj).return_annotation
    if returns not in (None, "None"):
        assert "Returns:" in doc, name


def _doctests():
    finder = doctest.DocTestFinder()
    for module in MODULES:
        for test in finder.find(module):
            if test.examples:
                yield test


DOCTESTS = {test.name: test for test in _doctests()}


@pytest.mark.parametrize("name", sorted(DOCTESTS))
def test_examples_run(name):
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    result = runner.run(DOCTESTS[name], out=lambda text: pytest.fail(text))
    assert result.failed == 0
