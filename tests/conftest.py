"""Shared fixtures. Puts tests/_support on sys.path, so every suite imports the oracle modules
whatever subfolder it sits in. Only that folder: with tests/ itself on sys.path, the folder
tests/torch would stand in for a missing PyTorch (see tests/__init__.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "_support"))


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20200601)
