"""Masked SGD training of a one-hidden-layer linear network (the paper's Algorithm 1), in C++.

The network is ``y = U D V^T x`` with ``U`` (a x d), ``V`` (b x d) and a random mask ``D`` drawn
afresh for every sample of every step from a :mod:`structdrop.schemes` scheme. One step, for a
sample ``(x, y)`` and its mask (both updates from the old ``U, V``)::

    eps = U D V^T x - y
    U  <- U - lr * eps x^T V D
    V  <- V - lr * x eps^T U D

with ``D = diag(z) / theta`` for Dropout and DropBlock -- exactly the paper's lines 8-9,
``U <- U - (eta/theta) eps x^T V D_z`` with ``eta = lr`` -- ``D = diag(z_i / mu_i)`` with the exact
per-unit mask means ``mu_i`` for OverlappingDropBlock, ``D = I`` without dropout, and for
DropConnect the prediction ``(1/theta) U (Z o V)^T x`` with an elementwise mask ``Z`` on ``V``.

Scaling convention (the paper's): ``lr`` multiplies the gradient of the per-sample loss
``(1/2) ||eps||^2``; the printed Algorithm 1 omits the factor 2 of ``d ||eps||^2``. A minibatch step
is the mean of its per-sample steps (one fresh mask per sample, all from the same old ``U, V``).
Every slot of every step draws its sample uniformly at random **with replacement** from the ``N``
columns of ``X``, so the expected step is ``-(lr / (2N))`` times the gradient of the scheme's
deterministic objective (Lemma 1, Lemma 10, the corrected DropConnect identity).

Step size of step ``t = 1, 2, ...``: ``lr`` (``lr_decay=None``) or
``lr / (1 + (t - 1) / lr_decay)``.

Recordings at steps ``0, record_every, 2 record_every, ...`` and at the last step:

* ``stochastic_objective``: ``||Y - U_t D V_t^T X||_F^2`` over all ``N`` samples with one mask
  -- the mask that step ``t + 1`` draws (its first minibatch slot), which is independent of
  ``U_t, V_t``, so its expectation is exactly the deterministic objective: the paper's
  "stochastic" curve of Figures 1 and 2;
* ``deterministic_objective``: the scheme's exact deterministic objective at ``U_t, V_t``.

Both are computed from the cached moments ``X X^T`` and ``Y X^T`` (no pass over the ``N`` samples).

Randomness: a counter-based generator (Philox4x32-10) keyed by the seed; every draw is a function
of (seed, step, minibatch slot) only, so a run gives the same draws on any machine and whatever
the number of threads or of other runs in a :func:`train_many` call, and ``record_every`` does not
change the trajectory. The C++ loops are compiled for the x86-64 baseline, AVX2 and AVX-512VL with
a fixed floating-point evaluation order (no FMA contraction) and picked at run time; all give the
same bits.

Cost: a step reads and writes only the columns of the kept units, about ``(2b + 3a)``
multiply-adds per kept unit (DropConnect: every unit), and fuses the update of step ``t`` with the
forward pass of step ``t + 1``; a recording costs ``O(a b d + a b^2)``, independent of ``N``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from . import _core
from ._progress import ProgressLine, progress_delay
from ._results import ResultEquality
from ._validation import as_float_array, as_int, as_nonnegative_float, as_threads
from .schemes import MaskScheme

if TYPE_CHECKING:  # typing.TypeGuard is Python 3.10+; annotations are not evaluated at run time
    from typing import TypeGuard

__all__ = ["TrainResult", "TrainingDiverged", "train", "train_many"]


@dataclass(frozen=True, eq=False)
class TrainResult(ResultEquality):
    """The outcome of one masked-SGD run.

    Attributes:
        U: final ``U`` (a x d).
        V: final ``V`` (b x d).
        record_iterations: the steps recorded, ``0, record_every, 2 record_every, ...`` and the
            last step (int64).
        stochastic_objective: ``||Y - U_t D V_t^T X||_F^2`` with the mask of step ``t + 1`` at each
            recorded step (the paper's "stochastic" curve).
        deterministic_objective: the scheme's exact deterministic objective at each recorded step.
        seconds: wall time of the run's loop, recordings included.

    Example:
        >>> import numpy as np, structdrop as sd
        >>> p = sd.paper_synthetic(seed=0, a=3, b=4, N=20, rank=2)
        >>> rng = np.random.default_rng(0)
        >>> U0, V0 = 0.1 * rng.standard_normal((3, 4)), 0.1 * rng.standard_normal((4, 4))
        >>> result = sd.train(p.X, p.Y, U0, V0, sd.Dropout(0.5), 1e-3, 50, record_every=25)
        >>> result.record_iterations
        array([ 0, 25, 50])
    """

    U: np.ndarray
    V: np.ndarray
    record_iterations: np.ndarray
    stochastic_objective: np.ndarray
    deterministic_objective: np.ndarray
    seconds: float


class TrainingDiverged(FloatingPointError):
    """The iterates of a run stopped being finite; ``step`` is the step that made them so and
    ``run`` the index of the run in a :func:`train_many` call (0 for :func:`train`).

    Example:
        >>> import numpy as np, structdrop as sd
        >>> X, Y = np.full((1, 1), 1e200), np.ones((1, 1))
        >>> try:
        ...     sd.train(X, Y, np.ones((1, 1)), np.ones((1, 1)), sd.NoDropout(), 1.0, 5)
        ... except sd.TrainingDiverged as error:
        ...     print(isinstance(error, FloatingPointError), error.run)
        True 0
    """

    def __init__(self, message: str, step: int, run: int = 0) -> None:
        super().__init__(message)
        self.step = step
        self.run = run

    def __reduce__(self) -> tuple[type, tuple[str, int, int]]:
        # Pickle with step and run: it crosses processes (a Dask worker hands it to the client).
        return (type(self), (str(self), self.step, self.run))


def _check_scheme(name: str, scheme: object, d: int) -> _core.SchemeParams:
    if not isinstance(scheme, MaskScheme):
        raise TypeError(
            f"{name} must be a structdrop.schemes scheme (NoDropout(), Dropout(theta), ...), "
            f"got {scheme!r}"
        )
    scheme.check_width(d)
    return scheme._core_params()


def _check_lr(name: str, value: object) -> float:
    lr = as_nonnegative_float(name, value)
    if lr <= 0:
        raise ValueError(f"{name} must be > 0, got {lr}")
    return lr


def _check_decay(name: str, value: object) -> float:
    if value is None:
        return 0.0
    decay = as_nonnegative_float(name, value)
    if decay <= 0:
        raise ValueError(f"{name} must be None (constant step size) or > 0, got {decay}")
    return decay


def _check_seed(name: str, value: object) -> int:
    seed = as_int(name, value, minimum=0)
    if seed >= 2**64:
        raise ValueError(f"{name} must be < 2**64, got {seed}")
    return seed


def _check_data(X: object, Y: object) -> tuple[np.ndarray, np.ndarray]:
    X = as_float_array("X", X, ndim=2)
    Y = as_float_array("Y", Y, ndim=2)
    if X.shape[1] != Y.shape[1]:
        raise ValueError(
            "X (b x N) and Y (a x N) must have the same number of columns N, "
            f"got X {X.shape}, Y {Y.shape}"
        )
    # The loop reads samples as columns: Fortran order (a copy unless X, Y already are).
    return np.asfortranarray(X), np.asfortranarray(Y)


def _check_factors(
    U0: object, V0: object, a: int, b: int, label: str = ""
) -> tuple[np.ndarray, np.ndarray]:
    U0 = as_float_array(f"U0{label}", U0, ndim=2)
    V0 = as_float_array(f"V0{label}", V0, ndim=2)
    if U0.shape[0] != a:
        raise ValueError(f"U0{label} must have a = {a} rows (the rows of Y), got shape {U0.shape}")
    if V0.shape[0] != b:
        raise ValueError(f"V0{label} must have b = {b} rows (the rows of X), got shape {V0.shape}")
    if U0.shape[1] != V0.shape[1]:
        raise ValueError(
            f"U0{label} ({U0.shape}) and V0{label} ({V0.shape}) must have the same number of "
            "columns d"
        )
    return np.asfortranarray(U0), np.asfortranarray(V0)


def _run(
    X: np.ndarray,
    Y: np.ndarray,
    jobs: list[_core.SgdJob],
    threads: int,
    progress: Callable[[int, int], None] | None,
    first: int = 0,
    total: int | None = None,
) -> list[TrainResult]:
    """Runs ``jobs`` in the C++ engine; they are runs ``first, first + 1, ...`` of a call with
    ``total`` runs (the indices and the "run j (seed s)" prefix of errors refer to that call)."""
    total = len(jobs) if total is None else total
    outcomes = _core.sgd_train_runs(X, Y, jobs, threads, progress, 0.25)
    results = []
    for j, outcome in enumerate(outcomes):
        if outcome.status == "diverged":
            prefix = "" if total == 1 else f"run {first + j} (seed {jobs[j].seed}): "
            raise TrainingDiverged(
                prefix + outcome.message, step=outcome.diverged_step, run=first + j
            )
        if outcome.status != "ok":
            raise RuntimeError(f"run {first + j}: {outcome.message}")
        U, V, steps = outcome.U, outcome.V, outcome.record_steps
        stochastic, deterministic = outcome.stochastic, outcome.deterministic
        # status "ok": the engine has set every array
        assert U is not None and V is not None and steps is not None
        assert stochastic is not None and deterministic is not None
        results.append(TrainResult(U, V, steps, stochastic, deterministic, outcome.seconds))
    return results


def _run_batch(
    X: np.ndarray, Y: np.ndarray, jobs: list[_core.SgdJob], threads: int, first: int, total: int
) -> list[TrainResult] | TrainingDiverged:
    """Runs ``first .. first + len(jobs) - 1`` of a call with ``total`` runs, as a Dask task runs
    them on a worker (handed to :func:`structdrop._dask_training.run_on_client`, which therefore
    never imports this module back).

    A divergence is returned, not raised: it is an outcome of the settings, not a failure of the
    worker (a raised one would be logged as an error by every worker it happens on)."""
    # Deserialised arrays may have lost the engine's column-major layout: X and Y are restored
    # here; an unpickled SgdJob restores its own U0/V0.
    try:
        return _run(
            np.asfortranarray(X),
            np.asfortranarray(Y),
            jobs,
            threads,
            None,
            first=first,
            total=total,
        )
    except TrainingDiverged as diverged:
        return diverged


def train(
    X: np.ndarray,
    Y: np.ndarray,
    U0: np.ndarray,
    V0: np.ndarray,
    scheme: MaskScheme,
    lr: float,
    iterations: int,
    batch_size: int = 1,
    record_every: int = 100,
    seed: int = 0,
    lr_decay: float | None = None,
    progress: bool | float = False,
) -> TrainResult:
    """Train ``y = U D V^T x`` by masked SGD (the paper's Algorithm 1) in C++.

    Args:
        X: inputs, b x N (samples are columns, as in the paper).
        Y: targets, a x N.
        U0: initial U, a x d (not modified).
        V0: initial V, b x d (not modified).
        scheme: a :mod:`structdrop.schemes` scheme (``NoDropout()``, ``Dropout(theta)``,
            ``DropBlock(block_size, theta=theta)``, ``OverlappingDropBlock(...)``,
            ``DropConnect(theta)``); it must apply at width d.
        lr: step size ``eta`` of Algorithm 1 (> 0): ``lr`` times the gradient of ``(1/2)||eps||^2``.
        iterations: number of steps T (>= 1).
        batch_size: samples per step; the step is the mean of the per-sample steps, each sample
            with its own mask, all from the same old U, V.
        record_every: record the objectives every this many steps (and at steps 0 and T).
        seed: seed of the counter-based generator (0 <= seed < 2**64).
        lr_decay: None for a constant step size, or t0 > 0 for ``lr / (1 + (t-1)/t0)`` at step t.
        progress: print a progress line to stderr (updated a few times a second; costs the loop
            nothing measurable); a number of seconds prints it only once the run has taken that
            long (``progress=1``: after one second; ``True``: from the start).

    Returns:
        A :class:`TrainResult`.

    Raises:
        TrainingDiverged: (a FloatingPointError) when the iterates stop being finite; the message
            and ``.step`` name the step.
        ValueError / TypeError: bad arguments (shapes, lr <= 0, iterations < 1, a scheme that does
            not apply at width d, ...).

    X and Y are copied once to Fortran order when they are not already; U0 and V0 are copied into
    the run. The run releases the GIL; Ctrl-C stops it (KeyboardInterrupt).

    Deviation from the printed paper: none in the update; the paper's Algorithm 1 is written for
    DropBlock only, and the other schemes use the same step with their own D (see the module
    docstring). Sampling with replacement is this implementation's choice (the paper does not say).

    Example:
        >>> import numpy as np, structdrop as sd
        >>> p = sd.paper_synthetic(seed=0, a=3, b=4, N=20, rank=2)
        >>> rng = np.random.default_rng(0)
        >>> U0, V0 = 0.1 * rng.standard_normal((3, 4)), 0.1 * rng.standard_normal((4, 4))
        >>> result = sd.train(p.X, p.Y, U0, V0, sd.DropBlock(2, theta=0.5), 1e-3, 200)
        >>> bool(result.deterministic_objective[-1] < result.deterministic_objective[0])
        True
    """
    results = train_many(
        X,
        Y,
        U0,
        V0,
        scheme,
        lr,
        iterations,
        batch_size=batch_size,
        record_every=record_every,
        seed=seed,
        lr_decay=lr_decay,
        threads=1,
        progress=progress,
        _label="structdrop.train",
    )
    return results[0]


def _is_sequence(value: object) -> TypeGuard[Iterable[Any]]:
    return isinstance(value, (Sequence, np.ndarray, range)) and not isinstance(value, (str, bytes))


def _per_run(value: object) -> list[Any] | None:
    return list(value) if _is_sequence(value) else None


def _factor_list(value: object) -> list[Any] | None:
    """U0/V0 per run: a 3-D array or a list/tuple of 2-D arrays; a 2-D array is shared."""
    if isinstance(value, (list, tuple)) and value and all(np.ndim(v) == 2 for v in value):
        return list(value)
    if isinstance(value, np.ndarray) and value.ndim == 3:
        return list(value)
    return None


def train_many(
    X: np.ndarray,
    Y: np.ndarray,
    U0: np.ndarray | Sequence[np.ndarray],
    V0: np.ndarray | Sequence[np.ndarray],
    scheme: MaskScheme | Sequence[MaskScheme],
    lr: float | Sequence[float],
    iterations: int | Sequence[int],
    batch_size: int | Sequence[int] = 1,
    record_every: int | Sequence[int] = 100,
    seed: int | Sequence[int] = 0,
    lr_decay: float | None | Sequence[float | None] = None,
    threads: int | None = None,
    progress: bool | float = False,
    *,
    client: Any = None,
    _label: str = "structdrop.train_many",
) -> list[TrainResult]:
    """Many independent masked-SGD runs on the same data, in C++ threads or on a Dask cluster.

    Same arguments as :func:`train`, but any of ``U0``, ``V0`` (a 3-D array or a list of 2-D
    arrays, widths may differ), ``scheme``, ``lr``, ``iterations``, ``batch_size``,
    ``record_every``, ``seed`` and ``lr_decay`` may be a sequence with one entry per run; the
    sequences must have the same length R and the single values are shared by the R runs.
    For instance ``train_many(X, Y, U0, V0, DropBlock(5, theta=0.5), 1e-4, 10**5, seed=range(64))``.

    Args:
        threads: worker threads: None (default) for every core, or a positive count; runs are
            dealt out dynamically. The result of each run is exactly that of :func:`train` with its
            settings, whatever ``threads``. With a ``client``: C++ threads per Dask task (None
            means 1, since every worker already runs one task per thread of its own).
            ``threads=0`` (the old spelling of every core) still works, with a FutureWarning.
        progress: one progress line on stderr for all the runs together (with a ``client``: a tqdm
            bar on stderr counting runs as their tasks finish); a number of seconds shows it only
            once the call has taken that long.
        client: a ``dask.distributed.Client`` (needs the ``dask`` extra) to spread the runs over
            its cluster's workers, or None (default) to run them here. X and Y are sent to every
            worker once; the runs are cut into batches of consecutive runs (about four tasks per
            worker thread, for load balance and progress), and each task runs its batch in the C++
            engine on its worker. The engine's random numbers depend only on each run's seed and
            settings, so every result is bit-identical to the same run done locally with
            :func:`train`, whatever the cluster. Workers need structdrop installed.

    Returns:
        One :class:`TrainResult` per run, in order.

    Raises:
        TrainingDiverged: naming the first run (index and seed) that diverged and its step. With a
            ``client``: the first diverged run to be reported, with its index in this call; the
            remaining tasks are cancelled.
        ValueError / TypeError: bad arguments, naming the run; a ``client`` that is not a
            ``dask.distributed.Client`` is a TypeError.
        RuntimeError: with a ``client``, a task that failed for another reason (a worker lost, for
            example), naming its runs; the cause is chained.

    X and Y are copied once (to Fortran order) when needed and shared by every run. The GIL is
    released for the whole call; Ctrl-C cancels it (KeyboardInterrupt; with a ``client``, the
    call's tasks are cancelled).

    Example:
        >>> import numpy as np, structdrop as sd
        >>> p = sd.paper_synthetic(seed=0, a=3, b=4, N=20, rank=2)
        >>> rng = np.random.default_rng(0)
        >>> U0, V0 = 0.1 * rng.standard_normal((3, 4)), 0.1 * rng.standard_normal((4, 4))
        >>> runs = sd.train_many(p.X, p.Y, U0, V0, sd.Dropout(0.5), 1e-3, 100, seed=range(3))
        >>> alone = sd.train(p.X, p.Y, U0, V0, sd.Dropout(0.5), 1e-3, 100, seed=1)
        >>> len(runs), np.array_equal(runs[1].U, alone.U)  # the same run, bit for bit
        (3, True)
    """
    if client is not None:
        from ._dask_training import check_client  # lazy: dask is an optional extra

        check_client(client)
    workers = as_threads(threads)
    delay = progress_delay(progress)
    Xf, Yf = _check_data(X, Y)
    a, b = Yf.shape[0], Xf.shape[0]

    lists: dict[str, list[Any] | None] = {
        "U0": _factor_list(U0),
        "V0": _factor_list(V0),
        "scheme": _per_run(scheme),
        "lr": _per_run(lr),
        "iterations": _per_run(iterations),
        "batch_size": _per_run(batch_size),
        "record_every": _per_run(record_every),
        "seed": _per_run(seed),
        "lr_decay": _per_run(lr_decay),
    }
    lengths = {key: len(value) for key, value in lists.items() if value is not None}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"per-run sequences must all have the same length, got lengths {lengths}")
    count = next(iter(lengths.values())) if lengths else 1
    if count < 1:
        raise ValueError(
            f"train_many needs at least one run, got empty sequences {sorted(lengths)}"
        )
    single = {
        "U0": U0,
        "V0": V0,
        "scheme": scheme,
        "lr": lr,
        "iterations": iterations,
        "batch_size": batch_size,
        "record_every": record_every,
        "seed": seed,
        "lr_decay": lr_decay,
    }

    def value(key: str, j: int) -> Any:
        values = lists[key]
        return values[j] if values is not None else single[key]

    shared_factors: tuple[np.ndarray, np.ndarray] | None = None
    if lists["U0"] is None and lists["V0"] is None:
        shared_factors = _check_factors(U0, V0, a, b)
    jobs = []
    for j in range(count):
        label = "" if count == 1 else f" (run {j})"
        if shared_factors is not None:
            U, V = shared_factors
        else:
            U, V = _check_factors(value("U0", j), value("V0", j), a, b, label)
        # SgdJob(U0, V0, scheme, lr, iterations, batch_size, record_every, seed, lr_decay), by
        # position: pybind11 matches keywords at about 0.8 us a call, a tenth of a tiny run.
        jobs.append(
            _core.SgdJob(
                U,
                V,
                _check_scheme(f"scheme{label}", value("scheme", j), U.shape[1]),
                _check_lr(f"lr{label}", value("lr", j)),
                as_int(f"iterations{label}", value("iterations", j), minimum=1),
                as_int(f"batch_size{label}", value("batch_size", j), minimum=1),
                as_int(f"record_every{label}", value("record_every", j), minimum=1),
                _check_seed(f"seed{label}", value("seed", j)),
                _check_decay(f"lr_decay{label}", value("lr_decay", j)),
            )
        )
    if client is not None:
        from ._dask_training import run_on_client

        return run_on_client(client, _run_batch, Xf, Yf, jobs, workers, delay, _label)
    printer = None if delay is None else ProgressLine(_label, delay)
    # the engine's spelling of every core is 0
    return _run(Xf, Yf, jobs, 0 if workers is None else workers, printer)
