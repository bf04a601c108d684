"""Shared set-up of the figures: configuration, claims, the paper's problem, chunked training."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .._progress import progress_delay

__all__ = ["Claim", "FigureConfig", "Runs", "paper_problem", "train_chunked", "ema"]

#: The paper's shallow-network setup (Section 5.1).
A_DIM, B_DIM, N_SAMPLES, WIDTH = 80, 100, 1000, 50
THETA = 0.5
#: Step size and decay (lr / (1 + (t - 1)/t0)) of the shallow runs; the paper does not give them.
LR, LR_DECAY = 2e-5, 3000.0
FULL_ITERATIONS, QUICK_ITERATIONS = 100_000, 20_000
RECORD_EVERY = 100


@dataclass(frozen=True)
class FigureConfig:
    """What ``structdrop reproduce`` was asked for.

    Attributes:
        out: output folder.  quick: reduced sizes.  seed: base seed of data, initialisation
            and masks.
        progress: show progress bars.  iterations / lr: overrides for the shallow figures (1, 2, 4).
        epochs, dataset, data_root, device: overrides for Figure 3 (the deep network).

    Raises:
        TypeError / ValueError: ``progress`` is not a bool or a delay in seconds >= 0.

    Example:
        >>> from pathlib import Path
        >>> from structdrop.figures import FigureConfig
        >>> config = FigureConfig(out=Path("figures"), quick=True)
        >>> config.shallow_iterations  # 20000 steps in quick mode
        20000
    """

    out: Path
    quick: bool = False
    seed: int = 0
    progress: bool | float = True
    iterations: int | None = None
    lr: float | None = None
    epochs: int | None = None
    dataset: str = "digits"
    data_root: str | None = None
    device: str | None = None

    def __post_init__(self) -> None:
        progress_delay(self.progress)  # the one meaning of progress: a bool or a delay in seconds

    @property
    def shallow_iterations(self) -> int:
        if self.iterations is not None:
            return self.iterations
        return QUICK_ITERATIONS if self.quick else FULL_ITERATIONS

    @property
    def shallow_lr(self) -> float:
        return LR if self.lr is None else self.lr


@dataclass(frozen=True)
class Claim:
    """One claim of the paper's Section 5 next to what was measured.

    Attributes:
        figure: "fig1".."fig4".  claim: the paper's statement (paraphrased, with its reference).
        measured: what this run measured (numbers).  verdict: "holds", "fails",
            "holds (corrected)"...

    Example:
        >>> from structdrop.figures import Claim
        >>> Claim("fig1", "SGD reaches the minimum", "final / minimum = 1.002", "holds").verdict
        'holds'
    """

    figure: str
    claim: str
    measured: str
    verdict: str


def paper_problem(seed: int) -> tuple[Any, np.ndarray, np.ndarray]:
    """The synthetic problem (X, Y, M of :func:`structdrop.paper_synthetic`) and the common U0, V0.

    U0 (80 x 50) and V0 (100 x 50) are i.i.d. N(0, 1) from ``default_rng([seed, 1])``; every shallow
    run of every figure starts from them (as in the paper).
    """
    import structdrop

    problem = structdrop.paper_synthetic(seed=seed)
    rng = np.random.default_rng([seed, 1])
    U0 = rng.standard_normal((A_DIM, WIDTH))
    V0 = rng.standard_normal((B_DIM, WIDTH))
    return problem, U0, V0


@dataclass
class Runs:
    """Concatenated records of several runs trained side by side in chunks.

    Attributes:
        iterations: recorded steps (shared).  stochastic / deterministic: one array per run.
        checkpoints: steps at the chunk ends (with 0).  evaluations: per run, the values returned
            by the ``evaluate`` callback at the checkpoints.  final: (U, V) per run.  seconds:
            wall time.
    """

    iterations: np.ndarray
    stochastic: list[np.ndarray]
    deterministic: list[np.ndarray]
    checkpoints: np.ndarray
    evaluations: list[list[Any]] = field(default_factory=list)
    final: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)
    seconds: float = 0.0


def _chunk_seed(seed: int, stream: int, run: int, chunk: int) -> int:
    return int(np.random.SeedSequence([seed, stream, run, chunk]).generate_state(1, np.uint64)[0])


def train_chunked(
    X: np.ndarray,
    Y: np.ndarray,
    U0: np.ndarray,
    V0: np.ndarray,
    schemes: Sequence[Any],
    *,
    lr: float | Sequence[float],
    iterations: int,
    seed: int,
    stream: int,
    lr_decay: float | None = LR_DECAY,
    record_every: int = RECORD_EVERY,
    chunks: int = 50,
    bar: Any = None,
    evaluate: Callable[[int, np.ndarray, np.ndarray], Any] | None = None,
) -> Runs:
    """Train ``len(schemes)`` runs of Algorithm 1 side by side (structdrop.train_many) in
    ``chunks`` pieces.

    Chunking only serves the progress bar and the ``evaluate(run, U, V)`` callback at the chunk
    ends. The step-size schedule lr / (1 + (t - 1)/lr_decay) runs on the global step t across chunks
    (chunk starting at step s: lr t0/(t0 + s) with decay t0 + s); chunk c of run j draws its masks
    and samples from the seed SeedSequence([seed, stream, j, c]).
    """
    import time

    import structdrop

    count = len(schemes)
    lrs = [float(v) for v in lr] if isinstance(lr, Sequence) else [float(lr)] * count
    steps_total = (
        max(1, iterations // record_every) * record_every
        if iterations >= record_every
        else iterations
    )
    record = record_every if iterations >= record_every else iterations
    n_records = steps_total // record
    pieces = [
        len(p) * record
        for p in np.array_split(np.arange(n_records), min(chunks, n_records))
        if len(p)
    ]
    U = [np.asfortranarray(U0)] * count
    V = [np.asfortranarray(V0)] * count
    iters: list[np.ndarray] = []
    stoch: list[list[np.ndarray]] = [[] for _ in range(count)]
    det: list[list[np.ndarray]] = [[] for _ in range(count)]
    evaluations: list[list[Any]] = [[] for _ in range(count)]
    checkpoints = [0]
    if evaluate is not None:
        for j in range(count):
            evaluations[j].append(evaluate(j, U[j], V[j]))
    start_time = time.perf_counter()
    start = 0
    for c, length in enumerate(pieces):
        if lr_decay is None:
            chunk_lr, decay = lrs, None
        else:
            chunk_lr = [value * lr_decay / (lr_decay + start) for value in lrs]
            decay = lr_decay + start
        results = structdrop.train_many(
            X,
            Y,
            U,
            V,
            list(schemes),
            chunk_lr,
            length,
            record_every=record,
            seed=[_chunk_seed(seed, stream, j, c) for j in range(count)],
            lr_decay=decay,
        )
        skip = 0 if c == 0 else 1  # record 0 of a chunk is the previous chunk's last iterate
        iters.append(results[0].record_iterations[skip:] + start)
        for j, res in enumerate(results):
            stoch[j].append(res.stochastic_objective[skip:])
            det[j].append(res.deterministic_objective[skip:])
            U[j], V[j] = res.U, res.V
            if evaluate is not None:
                evaluations[j].append(evaluate(j, res.U, res.V))
        start += length
        checkpoints.append(start)
        if bar is not None:
            bar.update(length)
    return Runs(
        iterations=np.concatenate(iters),
        stochastic=[np.concatenate(s) for s in stoch],
        deterministic=[np.concatenate(d) for d in det],
        checkpoints=np.asarray(checkpoints),
        evaluations=evaluations,
        final=list(zip(U, V)),
        seconds=time.perf_counter() - start_time,
    )


def ema(values: np.ndarray, weight: float = 0.9) -> np.ndarray:
    """Exponential moving average (the smoothing of the paper's Figure 4):
    s_t = w s_(t-1) + (1 - w) v_t."""
    out = np.empty(len(values))
    acc = float(values[0])
    for i, v in enumerate(values):
        acc = weight * acc + (1.0 - weight) * float(v)
        out[i] = acc
    return out


def mean_ratio(numerator: np.ndarray, denominator: np.ndarray) -> tuple[float, float]:
    """Mean of numerator/denominator and its standard error."""
    ratios = np.asarray(numerator, dtype=float) / np.asarray(denominator, dtype=float)
    return float(ratios.mean()), float(
        ratios.std(ddof=1) / np.sqrt(ratios.size)
    ) if ratios.size > 1 else 0.0


#: Fewer recorded steps than this make the stochastic-vs-deterministic comparisons inconclusive.
MIN_RECORDS = 20


def verdict_for(ok: bool, records: int, holds: str = "holds") -> str:
    """Verdict of a statistical check over ``records`` recorded steps."""
    if records < MIN_RECORDS:
        return "inconclusive (too few recorded steps)"
    return holds if ok else "fails"


def tolist(array: Any) -> Any:
    """JSON-ready copy of an array (floats, ints)."""
    return np.asarray(array).tolist()


def problem_settings(X: np.ndarray, Y: np.ndarray, **more: Any) -> dict[str, Any]:
    """The ``settings`` of a figure's JSON: the problem's sizes a, b, N, the width d and theta of
    the paper's setup, then ``more`` in the order given."""
    return {
        "a": Y.shape[0],
        "b": X.shape[0],
        "N": X.shape[1],
        "d": WIDTH,
        "theta": THETA,
        **more,
    }
