"""Smoke test of an installed structdrop: what a wheel build runs against the wheel (< 30 s).

A fast subset of the suite, chosen to fail when a wheel is broken (missing or mis-compiled
extension, kernels the CPU cannot run or that disagree, wrong version metadata), each check
against something independent of the compiled core: the Philox known-answer vectors, a NumPy
replay of whole runs, mask enumeration, the variational form of the k-support norm, KKT
conditions and the NumPy reference of the global minimum, and values stored from seeded runs
(so every platform's wheel must reproduce the runs of this one). The subset's tests live in the
suite's modules and are imported here, so they are the same tests; run from anywhere:
``python -m pytest <project>/tests/smoke``.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from pathlib import Path
from types import ModuleType

import structdrop


def _suite_module(relative: str) -> ModuleType:
    """A module of the suite, loaded from its file (the suites are folders, not packages)."""
    path = Path(__file__).resolve().parents[1] / relative
    spec = importlib.util.spec_from_file_location(f"_smoke_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_objectives = _suite_module("training/test_objectives.py")
_seeded_runs = _suite_module("training/test_seeded_runs.py")
_training = _suite_module("training/test_training.py")

test_dropconnect_matches_enumeration_and_printed_formula_does_not = (
    _objectives.test_dropconnect_matches_enumeration_and_printed_formula_does_not
)
test_unit_schemes_match_enumeration = _objectives.test_unit_schemes_match_enumeration
test_seeded_runs_give_the_stored_values = _seeded_runs.test_seeded_runs_give_the_stored_values
test_the_random_stream_gives_the_stored_draws = (
    _seeded_runs.test_the_random_stream_gives_the_stored_draws
)
test_every_kernel_instruction_set_gives_identical_bits = (
    _training.test_every_kernel_instruction_set_gives_identical_bits
)
test_expected_step_is_gradient_step_of_deterministic_objective = (
    _training.test_expected_step_is_gradient_step_of_deterministic_objective
)
test_philox_known_answers = _training.test_philox_known_answers
test_run_matches_numpy_replay_of_its_draws = _training.test_run_matches_numpy_replay_of_its_draws


def test_version_is_the_installed_metadata():
    """One version source: __init__.py, which the build writes into the distribution's metadata."""
    assert structdrop.__version__ == importlib.metadata.version("structdrop")
