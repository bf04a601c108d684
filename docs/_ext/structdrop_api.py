"""Sphinx extension: the API reference generated from the public modules' ``__all__``.

docs/api.md groups the public names by topic with marker blocks::

    ```{structdrop-api} structdrop
    dropblock_global_min
    GlobalMin
    ```

Each block becomes autodoc entries (autofunction, autoclass, autoexception, automodule, autodata,
chosen from the object). After the topics, ```{structdrop-api-rest} structdrop``` documents the
names of ``structdrop.__all__`` that no topic listed, and warns about each (with ``-W`` the build
fails: a new export cannot be forgotten, only left without a topic until someone gives it one).
A listed name that is not in ``__all__`` is a warning too. :func:`public_modules` says which
modules must have a section; ``tests/docs/test_docs_api.py`` checks the page against it.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import warnings
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from _markers import find_markers, replace_markers

TOPIC = "structdrop-api"
REST = "structdrop-api-rest"
PACKAGE = "structdrop"


def exported(module_name: str) -> list[str]:
    """``module.__all__`` (a module without ``__all__`` exports nothing)."""
    return list(getattr(importlib.import_module(module_name), "__all__", []))


def own_exports(module_name: str) -> list[str]:
    """``module.__all__`` less the objects a package above it exports (documented there).

    Identity decides, not the name: ``structdrop.reference.train`` is not ``structdrop.train``.
    """
    parts = module_name.split(".")
    module = importlib.import_module(module_name)
    above = {
        id(getattr(importlib.import_module(ancestor), name))
        for ancestor in (".".join(parts[:i]) for i in range(1, len(parts)))
        for name in exported(ancestor)
    }
    return [name for name in exported(module_name) if id(getattr(module, name)) not in above]


def public_modules(package: str = PACKAGE) -> list[str]:
    """The package and its public modules whose ``__all__`` adds names to the package's.

    A module is public when no part of its dotted name starts with an underscore. Modules whose
    exports are all re-exported by a package above them (``structdrop.ksupport``,
    ``structdrop.torch.layers``, ...), or which a package above exports as a module, are documented
    through that package. Subpackages are imported (the optional ones need their dependency).
    """
    root = importlib.import_module(package)
    found = [package]
    for info in pkgutil.walk_packages(root.__path__, prefix=package + "."):
        parts = info.name.split(".")
        if any(part.startswith("_") for part in parts):
            continue
        if parts[-1] in exported(".".join(parts[:-1])):
            continue  # the parent exports the module itself (automodule documents it)
        # A deprecated alias (structdrop.examples) warns when imported; it is not documented.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", DeprecationWarning)
            own = own_exports(info.name)
        if any(issubclass(w.category, DeprecationWarning) for w in caught):
            continue
        if own:
            found.append(info.name)
    return found


def _directive(qualified: str, obj: Any) -> list[str]:
    if inspect.ismodule(obj):
        return [f".. automodule:: {qualified}", "   :members:"]
    if inspect.isclass(obj):
        kind = "autoexception" if issubclass(obj, BaseException) else "autoclass"
        return [f".. {kind}:: {qualified}"]
    if callable(obj):
        return [f".. autofunction:: {qualified}"]
    return [f".. autodata:: {qualified}", "   :no-value:"]


def entries(module_name: str, names: list[str]) -> str:
    """Markdown (one eval-rst block) documenting ``module_name.NAME`` for each name."""
    module: ModuleType = importlib.import_module(module_name)
    lines: list[str] = []
    for name in names:
        lines += _directive(f"{module_name}.{name}", getattr(module, name))
        lines.append("")
    return "```{eval-rst}\n" + "\n".join(lines) + "```\n"


@dataclass
class Expansion:
    """The page after expansion, what it documents, and the problems found on the way."""

    text: str
    documented: dict[str, list[str]] = field(default_factory=dict)  # module -> names, in order
    untopical: dict[str, list[str]] = field(default_factory=dict)  # documented by the rest block
    problems: list[str] = field(default_factory=list)


def expand(text: str) -> Expansion:
    """Expand the API marker blocks of a page (docs/api.md) into autodoc entries."""
    result = Expansion(text="")
    listed: dict[str, list[str]] = {}
    for marker in find_markers(text, TOPIC):
        listed.setdefault(marker.argument, []).extend(marker.body)

    def topic(marker) -> str:
        module, names = marker.argument, marker.body
        public = own_exports(module)
        known = [name for name in names if name in public]
        for name in names:
            if name not in public:
                result.problems.append(
                    f"{module}.{name} is listed but is not in {module}.__all__ "
                    "(or a package above it exports it: list it there)"
                )
        result.documented.setdefault(module, []).extend(known)
        return entries(module, known) if known else ""

    def rest(marker) -> str:
        module = marker.argument
        seen = set(listed.get(module, []))
        left = [name for name in own_exports(module) if name not in seen]
        for name in left:
            result.problems.append(
                f"{module}.{name} is exported but in no topic of the API page: "
                f"it is listed under the module's other names; add it to a topic"
            )
        result.untopical[module] = left
        result.documented.setdefault(module, []).extend(left)
        return entries(module, left) if left else ""

    expanded = replace_markers(text, TOPIC, topic)
    expanded = replace_markers(expanded, REST, rest)
    for module, names in result.documented.items():
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            result.problems.append(f"{module}: listed in more than one topic: {twice}")
    rest_modules = {marker.argument for marker in find_markers(text, REST)}
    for module in public_modules():
        if module not in rest_modules:
            result.problems.append(
                f"the public module {module} has no ```{{{REST}}} {module}``` block on the API page"
            )
    result.text = expanded
    return result


def _on_source_read(app, docname: str, source: list[str]) -> None:
    if f"{{{TOPIC}}}" not in source[0] and f"{{{REST}}}" not in source[0]:
        return
    from sphinx.util import logging

    expansion = expand(source[0])
    logger = logging.getLogger(__name__)
    for problem in expansion.problems:
        logger.warning(problem, location=docname)
    source[0] = expansion.text


def setup(app) -> dict[str, Any]:
    app.connect("source-read", _on_source_read)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
