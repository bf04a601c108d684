"""structdrop.datasets (the built-in data) and its deprecated former name structdrop.examples."""

from __future__ import annotations

import importlib
import pickle
import subprocess
import sys

import numpy as np
import pytest

import structdrop
from structdrop import datasets


def test_paper_synthetic_is_the_documented_draw():
    # Re-draw from the documented recipe (X, then U_true, then V_true, from default_rng(seed)).
    problem = datasets.paper_synthetic(seed=4, a=5, b=6, N=7, rank=2)
    rng = np.random.default_rng(4)
    X = rng.standard_normal((6, 7))
    M = rng.standard_normal((5, 2)) @ rng.standard_normal((6, 2)).T
    np.testing.assert_array_equal(problem.X, X)
    np.testing.assert_array_equal(problem.M, M)
    np.testing.assert_allclose(problem.Y, M @ X, rtol=1e-13, atol=0.0)
    assert np.linalg.matrix_rank(problem.M) == 2 and problem.seed == 4
    assert structdrop.paper_synthetic is datasets.paper_synthetic
    assert structdrop.SyntheticProblem is datasets.SyntheticProblem


def test_examples_is_a_deprecated_alias():
    sys.modules.pop("structdrop.examples", None)  # the warning comes with the first import
    with pytest.warns(DeprecationWarning, match=r"structdrop\.examples is deprecated.*datasets"):
        examples = importlib.import_module("structdrop.examples")
    assert examples.paper_synthetic is datasets.paper_synthetic
    assert examples.SyntheticProblem is datasets.SyntheticProblem
    assert sorted(examples.__all__) == sorted(datasets.__all__)


def test_old_pickles_still_load():
    # A SyntheticProblem pickled before the rename names its class structdrop.examples (a name of
    # the same length, so swapping the bytes keeps the pickle's length prefixes valid).
    problem = datasets.paper_synthetic(seed=0, a=2, b=3, N=4, rank=1)
    old = pickle.dumps(problem).replace(b"structdrop.datasets", b"structdrop.examples")
    assert b"structdrop.examples" in old
    sys.modules.pop("structdrop.examples", None)
    with pytest.warns(DeprecationWarning, match="structdrop.examples"):
        loaded = pickle.loads(old)
    assert type(loaded) is datasets.SyntheticProblem
    np.testing.assert_array_equal(loaded.Y, problem.Y)


def test_importing_structdrop_does_not_warn():
    # Only the old name warns: the package itself must import cleanly under -W error.
    code = "import structdrop, structdrop.datasets, structdrop.cli"
    result = subprocess.run(
        [sys.executable, "-W", "error::DeprecationWarning", "-c", code],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
