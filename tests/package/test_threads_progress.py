"""One meaning of ``threads`` and ``progress`` in every public function, validated alike.

threads: None (every core) or a positive integer; ``threads=0`` (the old "every core") still works
with a FutureWarning naming ``threads=None``. progress: a bool, or a delay in seconds >= 0 (True
is a delay of 0). The functions are discovered from the public ``__all__`` lists by signature, so a
new function with such a parameter fails here until it is given a call below.
"""

from __future__ import annotations

import inspect
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
from _public_api import public_objects

import structdrop as sd
from structdrop._progress import progress_delay
from structdrop._results import values_equal
from structdrop._validation import as_threads
from structdrop.figures import FigureConfig
from structdrop.schemes import Dropout

PARAMETERS = ("threads", "progress")

rng = np.random.default_rng(0)
X = rng.standard_normal((3, 40))
Y = rng.standard_normal((4, 40))
U0 = 0.1 * rng.standard_normal((4, 2))
V0 = 0.1 * rng.standard_normal((3, 2))


def _factors(runs):
    return [(run.U, run.V) for run in runs]  # the rest holds wall-clock seconds


def _torch_calls():
    try:
        import torch
    except ImportError:
        return {}
    from structdrop.torch import BoundMonitor, feature_moments

    def monitor(**kw):
        torch.manual_seed(0)
        head = torch.nn.Linear(3, 1, bias=False, dtype=torch.float64)
        return BoundMonitor(lambda x: x, head, torch.nn.Dropout(0.5), batches, **kw).evaluate()

    batches = [(torch.ones(2, 3, dtype=torch.float64), torch.ones(2, 1, dtype=torch.float64))]
    return {
        "structdrop.torch.feature_moments": lambda **kw: feature_moments(
            lambda x: x, batches, **kw
        ),
        "structdrop.torch.BoundMonitor": monitor,
        # validation only (None: too slow to run here): trains a network
        "structdrop.torch.deep_experiment": None,
    }


# A valid call of every public function with ``threads`` or ``progress``, completed by **kw.
CALLS = {
    "structdrop.dropblock_global_min": lambda **kw: sd.dropblock_global_min(
        Y, X=X, block_size=2, theta_bar=0.6, **kw
    ),
    "structdrop.data_moments": lambda **kw: sd.data_moments(X, Y, **kw),
    "structdrop.stream_moments": lambda **kw: sd.stream_moments([(X, Y), (X, Y)], **kw),
    "structdrop.prox_ksupport_sq_batch": lambda **kw: sd.prox_ksupport_sq_batch(Y, 2, 0.5, **kw),
    "structdrop.sweep_global_min": lambda **kw: sd.sweep_global_min(
        Y, X=X, block_sizes=[1, 2], theta_bars=[0.5], **kw
    ),
    "structdrop.width_sweep": lambda **kw: sd.width_sweep(
        Y, [2, 4], X=X, block_size=2, theta_bar=0.6, **kw
    ),
    "structdrop.train": lambda **kw: _factors(
        [sd.train(X, Y, U0, V0, Dropout(0.5), 1e-3, 5, **kw)]
    ),
    "structdrop.train_many": lambda **kw: _factors(
        sd.train_many(X, Y, U0, V0, Dropout(0.5), 1e-3, 5, seed=range(3), **kw)
    ),
    "structdrop.reference.train": lambda **kw: _factors(
        [sd.reference.train(X, Y, U0, V0, Dropout(0.5), 1e-3, 5, **kw)]
    ),
    "structdrop.figures.FigureConfig": lambda **kw: FigureConfig(Path("out"), **kw),
    **_torch_calls(),
}

BAD = {
    "threads": [(-3, ValueError), (-1, ValueError), (1.5, TypeError), (2.0, TypeError),
                (True, TypeError), (np.bool_(False), TypeError), ("2", TypeError)],
    "progress": [(-1, ValueError), (-0.5, ValueError), (math.nan, ValueError),
                 (math.inf, ValueError), ("yes", TypeError), (None, TypeError),
                 ([1], TypeError)],
}  # fmt: skip


def _public_with(parameter: str) -> dict[str, object]:
    found = {}
    for name, obj in public_objects().items():
        if not callable(obj):
            continue
        try:
            signature = inspect.signature(obj)
        except (TypeError, ValueError):
            continue
        if parameter in signature.parameters:
            found[name] = obj
    return found


WITH = {parameter: _public_with(parameter) for parameter in PARAMETERS}


def test_every_public_function_with_threads_or_progress_has_a_call():
    discovered = set(WITH["threads"]) | set(WITH["progress"])
    assert discovered == set(CALLS)
    # not vacuous: the known ones are found
    assert {"structdrop.train_many", "structdrop.sweep_global_min"} <= set(WITH["threads"])
    assert {"structdrop.train", "structdrop.data_moments"} <= set(WITH["progress"])


def _cases():
    for parameter in PARAMETERS:
        for name in sorted(WITH[parameter]):
            for bad, error in BAD[parameter]:
                yield pytest.param(name, parameter, bad, error, id=f"{name}-{parameter}={bad!r}")


@pytest.mark.parametrize("name, parameter, bad, error", list(_cases()))
def test_bad_values_are_refused_naming_the_parameter(name, parameter, bad, error):
    call = CALLS[name] or WITH[parameter][name]
    kwargs = {parameter: bad}
    if CALLS[name] is None:  # validation only: the first arguments needed to get that far
        kwargs["theta"] = 0.5
    with pytest.raises(error, match=parameter):
        call(**kwargs)


@pytest.mark.parametrize("name", sorted(n for n in WITH["threads"] if CALLS[n] is not None))
def test_threads_zero_is_every_core_with_a_future_warning(name):
    call = CALLS[name]
    every_core = call(threads=None)
    with pytest.warns(FutureWarning, match=r"threads=None") as record:
        old = call(threads=0)
    assert values_equal(old, every_core)
    # the warning points at the caller's line, not into structdrop
    assert record[0].filename == __file__
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for count in (1, 2, np.int64(3)):
            assert values_equal(call(threads=count), every_core)  # never depends on threads


@pytest.mark.parametrize("name", sorted(n for n in WITH["progress"] if CALLS[n] is not None))
def test_progress_accepts_bools_and_delays(name):
    call = CALLS[name]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for good in (False, True, np.bool_(True), 0, 1, 0.5, np.float32(3600.0)):
            call(progress=good)


def test_the_progress_rule():
    """True is the default delay (0 s); a number is seconds, so progress=1 is one second, not
    True (bool is an int subclass: checked first)."""
    assert progress_delay(False) is None and progress_delay(np.bool_(False)) is None
    assert progress_delay(True) == 0.0 and progress_delay(np.bool_(True)) == 0.0
    assert progress_delay(1) == 1.0 and progress_delay(0) == 0.0
    assert progress_delay(np.float32(2.5)) == 2.5 and progress_delay(np.int64(4)) == 4.0
    assert as_threads(None) is None and as_threads(np.int32(4)) == 4


def test_train_progress_delay_keeps_short_runs_quiet(capfd):
    """progress=True prints the line; a delay longer than the run prints nothing, as for the bars
    of the data passes."""
    sd.train(X, Y, U0, V0, Dropout(0.5), 1e-3, 5, progress=True)
    assert "structdrop.train: done" in capfd.readouterr().err
    sd.train(X, Y, U0, V0, Dropout(0.5), 1e-3, 5, progress=3600)
    sd.train_many(X, Y, U0, V0, Dropout(0.5), 1e-3, 5, seed=range(3), progress=3600.0)
    assert capfd.readouterr().err == ""
