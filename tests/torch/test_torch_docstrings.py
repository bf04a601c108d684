"""Every public function, class and method of structdrop.torch (and .lightning) documents what it
returns, what it raises and shows an example, and every example runs as a doctest."""

from __future__ import annotations

import doctest
import importlib
import inspect

import pytest

torch = pytest.importorskip("torch")
sdt = pytest.importorskip("structdrop.torch")

MODULES = [
    "structdrop.torch." + name
    for name in (
        "batched",
        "conv_regularizer",
        "deep",
        "dropblock_nd",
        "layers",
        "lightning",
        "mask_statistics",
        "moments",
        "monitor",
        "objectives",
        "schedules",
        "weight_dropout",
    )
]
# overrides of torch and Lightning hooks: their contract is the framework's, documented there
HOOKS = {"forward", "extra_repr", "on_train_start", "on_train_batch_end"}


def _public():
    lightning = importlib.import_module("structdrop.torch.lightning")
    for module, names in ((sdt, sdt.__all__), (lightning, lightning.__all__)):
        for name in names:
            obj = getattr(module, name)
            yield name, obj
            if inspect.isclass(obj):
                for attr, value in vars(obj).items():
                    if attr.startswith("_") or attr in HOOKS or isinstance(value, property):
                        continue
                    if callable(value) or isinstance(value, (staticmethod, classmethod)):
                        yield f"{name}.{attr}", getattr(obj, attr)


@pytest.mark.parametrize(
    "name, obj", list(_public()), ids=lambda v: v if isinstance(v, str) else ""
)
def test_docstring_has_returns_raises_and_example(name, obj):
    doc = inspect.getdoc(obj) or ""
    needed = ["Example:"] if inspect.isclass(obj) else ["Returns:", "Raises:", "Example:"]
    missing = [section for section in needed if section not in doc]
    assert not missing, f"{name} lacks {missing}"


@pytest.mark.parametrize("module_name", MODULES)
def test_examples_run(module_name):
    module = importlib.import_module(module_name)
    finder, runner = doctest.DocTestFinder(), doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    torch.manual_seed(0)
    for test in finder.find(module, module_name):
        runner.run(test)
    assert runner.failures == 0, f"{runner.failures} failing example(s) in {module_name}"
