"""The public API as the tests enumerate it: every name in the public modules' ``__all__``.

Tests that must cover every public type or function (result types, the ``threads`` and
``progress`` conventions) discover them here, so that a new public name is covered without
editing them. structdrop.torch is skipped where torch does not import.
"""

from __future__ import annotations

import importlib

PUBLIC_MODULES = ["structdrop", "structdrop.figures", "structdrop.reference", "structdrop.torch"]


def public_objects() -> dict[str, object]:
    """``{"module.name": object}`` for every name in a public module's ``__all__``."""
    found = {}
    for module_name in PUBLIC_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ImportError:  # structdrop.torch without torch: not part of the API here
            continue
        for name in module.__all__:
            found[f"{module_name}.{name}"] = getattr(module, name)
    return found
