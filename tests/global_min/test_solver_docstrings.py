"""The public functions and classes of the closed-form solvers document what they return, what
they raise and show an example, and every example runs (doctest)."""

from __future__ import annotations

import doctest
import importlib
import inspect
import pydoc

import pytest

import structdrop as sd

MODULES = ["structdrop.global_min", "structdrop.sweep", "structdrop.width", "structdrop.ksupport"]


def _modules():
    names = list(MODULES)
    try:
        importlib.import_module("pyproximal")
        names.append("structdrop.pyproximal")
    except ImportError:
        pass
    return [importlib.import_module(name) for name in names]


def _public(module):
    for name in module.__all__:
        value = getattr(module, name)
        if inspect.isfunction(value) or inspect.isclass(value):
            yield f"{module.__name__}.{name}", value


@pytest.mark.parametrize("module", _modules(), ids=lambda m: m.__name__)
def test_every_public_callable_has_returns_raises_and_an_example(module):
    for name, value in _public(module):
        doc = inspect.getdoc(value) or ""
        assert "Example:" in doc and ">>>" in doc, name
        if inspect.isfunction(value):
            assert "Returns:" in doc and "Raises:" in doc, name


@pytest.mark.parametrize("module", _modules(), ids=lambda m: m.__name__)
def test_examples_run(module):
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    tests = [t for t in finder.find(module) if t.examples]
    assert tests
    for test in tests:
        runner.run(test)
    assert runner.failures == 0


def test_help_of_dropblock_global_min_says_what_it_returns_raises_and_shows_an_example():
    text = pydoc.render_doc(sd.dropblock_global_min, renderer=pydoc.plaintext)
    assert "Returns:" in text and "GlobalMin" in text and "singular_values" in text
    assert "Raises:" in text and "TypeError" in text and "ValueError" in text
    assert "Example:" in text and "sd.dropblock_global_min(" in text
    # the signature help shows is the 1.0 one
    assert "block_size" in text and "beta" in text
