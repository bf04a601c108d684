"""The API page (docs/api.md) documents every name that structdrop's public modules export.

Checked twice: on the page's source, through the extension that expands it (every name of every
``__all__`` sits in a topic, nothing stale is listed), and, when a built site is given through
STRUCTDROP_DOCS_HTML (.ci/docs does), on the built objects.inv, read here without Sphinx.
"""

from __future__ import annotations

import importlib
import os
import sys
import zlib
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("pyproximal")
pytest.importorskip("matplotlib")

DOCS = Path(__file__).resolve().parents[2] / "docs"
sys.path.insert(0, str(DOCS / "_ext"))

import structdrop_api  # noqa: E402

PAGE = (DOCS / "api.md").read_text()


def test_public_modules_include_the_subpackages():
    found = structdrop_api.public_modules()
    for module in [
        "structdrop",
        "structdrop.torch",
        "structdrop.pyproximal",
        "structdrop.reference",
        "structdrop.figures",
        "structdrop.cli",
    ]:
        assert module in found
    # Fully re-exported modules are documented through the package, private ones not at all.
    assert "structdrop.ksupport" not in found and "structdrop.torch.layers" not in found
    assert not any(part.startswith("_") for name in found for part in name.split("."))


def test_every_exported_name_is_in_a_topic():
    expansion = structdrop_api.expand(PAGE)
    assert expansion.problems == []
    for module in structdrop_api.public_modules():
        exported = set(importlib.import_module(module).__all__)
        documented = set(expansion.documented.get(module, []))
        # A package's own names; the rest of its __all__ is documented at the package above.
        own = set(structdrop_api.own_exports(module))
        assert own <= documented, f"{module}: {sorted(own - documented)} not on the page"
        assert documented <= exported
        assert expansion.untopical.get(module) == []
    for name in importlib.import_module("structdrop").__all__:
        assert f"structdrop.{name}\n" in expansion.text


def test_a_new_export_is_documented_and_reported(monkeypatch):
    import structdrop

    def brand_new_function() -> None:
        """Not in any topic of the page."""

    monkeypatch.setattr(structdrop, "brand_new_function", brand_new_function, raising=False)
    monkeypatch.setattr(structdrop, "__all__", [*structdrop.__all__, "brand_new_function"])
    expansion = structdrop_api.expand(PAGE)
    assert ".. autofunction:: structdrop.brand_new_function" in expansion.text
    assert expansion.untopical["structdrop"] == ["brand_new_function"]
    assert any("structdrop.brand_new_function" in problem for problem in expansion.problems)


def test_a_stale_name_is_reported():
    stale = PAGE.replace("dropblock_global_min\n", "dropblock_global_min\nno_such_name\n", 1)
    problems = structdrop_api.expand(stale).problems
    assert any("structdrop.no_such_name is listed" in problem for problem in problems)


def _inventory(path: Path) -> set[str]:
    """Object names of a Sphinx objects.inv (format 2: four header lines, then zlib text)."""
    raw = path.read_bytes()
    lines = raw.split(b"\n", 4)
    assert lines[0].startswith(b"# Sphinx inventory version 2"), lines[0]
    text = zlib.decompress(lines[4]).decode()
    return {line.split(" ", 1)[0] for line in text.splitlines() if " py:" in line}


def test_built_inventory_has_every_public_name():
    html = os.environ.get("STRUCTDROP_DOCS_HTML")
    if not html:
        pytest.skip("no built site given: set STRUCTDROP_DOCS_HTML (bash .ci/docs does)")
    names = _inventory(Path(html) / "objects.inv")
    missing = [
        f"{module}.{name}"
        for module in structdrop_api.public_modules()
        for name in structdrop_api.own_exports(module)
        if f"{module}.{name}" not in names
    ]
    assert missing == []
