"""Deprecated alias of :mod:`structdrop.datasets` (the module's former name).

Importing it warns (DeprecationWarning) and gives the same objects as ``structdrop.datasets``;
``structdrop.paper_synthetic`` and ``structdrop.SyntheticProblem`` are unaffected. Old pickles of a
``SyntheticProblem`` still load through it.
"""

from __future__ import annotations

import warnings

from .datasets import SyntheticProblem, paper_synthetic

__all__ = ["SyntheticProblem", "paper_synthetic"]

warnings.warn(
    "structdrop.examples is deprecated and will be removed: import structdrop.datasets "
    "(or structdrop.paper_synthetic, structdrop.SyntheticProblem) instead",
    DeprecationWarning,
    stacklevel=2,
)
