"""Figure 4: overlapping ("original") DropBlock vs the non-overlapping DropBlock of the analysis.

Setup of Figure 1 (theta = 0.5, d = 50, block size r = 5). Three runs of Algorithm 1 from the same
U0, V0: DropBlock (non-overlapping blocks, keep theta), overlapping DropBlock with the paper's theta
correction (seeds fire with gamma = 1 - theta^(1/r), so that every interior unit is dropped with the
DropBlock probability 1 - theta -- the correction Section 5.3 states in words), and overlapping
DropBlock with the same theta (seeds fire with the DropBlock block-drop probability 1 - theta: a
much higher dropping rate). Each unit is rescaled by its exact keep probability.
Top: the training (stochastic) curves, smoothed by an exponential moving average as in the paper.
Bottom: the corrected run's stochastic loss next to its exact deterministic objective (Lemma 10 with
the exact characteristic matrix C-bar of overlapping DropBlock) and the paper's approximation
(Lemma 1 with the non-overlapping DropBlock at theta, evaluated at the same iterates).
The same-theta run diverges at the common step size; it runs with a 40 times smaller one (and the
step where the common one diverges is recorded).

JSON keys (fig4.json): ``figure``, ``title``, ``settings`` (a, b, N, d, theta, block_size,
gamma_corrected, gamma_same_theta, iterations, lr, lr_same_theta, lr_decay, record_every, seed),
``iterations``, ``runs`` (``dropblock``, ``overlapping_corrected``, ``overlapping_same_theta``: each
``stochastic``, ``deterministic``, ``mean_keep`` (mean keep probability over the d units),
``interior_keep``), ``checkpoints``, ``corrected_exact_at_checkpoints``,
``corrected_approx_at_checkpoints``, ``same_theta_diverged_at`` (step, or null), ``final``
(``dropblock``, ``overlapping_corrected``, ``overlapping_same_theta``: last deterministic
objectives; ``corrected_exact``, ``corrected_approx``, ``approx_gap`` = (approx - exact)/exact),
``stochastic_over_deterministic`` (corrected run, second half) and its ``_se``,
``claims``, ``seconds``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ._common import (
    LR_DECAY,
    RECORD_EVERY,
    THETA,
    WIDTH,
    Claim,
    FigureConfig,
    ema,
    mean_ratio,
    paper_problem,
    problem_settings,
    tolist,
    train_chunked,
    verdict_for,
)

NAME = "fig4"
TITLE = "Overlapping (original) DropBlock vs non-overlapping DropBlock"
BLOCK = 5
SAME_THETA_LR_FACTOR = 40.0


def work(config: FigureConfig) -> int:
    return 2 * config.shallow_iterations


def keep_probabilities(d: int, block: int, gamma: float) -> np.ndarray:
    """Exact keep probability (1 - gamma)^|W(i)| of each unit of overlapping DropBlock (W(i):
    covering seeds)."""
    units = np.arange(d)
    covering = np.minimum(units, d - block) - np.maximum(units - block + 1, 0) + 1
    return (1.0 - gamma) ** covering


def compute(config: FigureConfig, bar: Any = None) -> dict[str, Any]:
    import structdrop
    from structdrop.schemes import DropBlock, OverlappingDropBlock

    problem, U0, V0 = paper_problem(config.seed)
    X, Y = problem.X, problem.Y
    block_scheme = DropBlock(BLOCK, theta=THETA)
    corrected = OverlappingDropBlock(BLOCK, theta=THETA)
    same = OverlappingDropBlock(BLOCK, gamma=1.0 - THETA)
    lr = config.shallow_lr
    iterations = config.shallow_iterations

    def evaluate(run: int, U: np.ndarray, V: np.ndarray) -> Any:
        if run != 1:
            return None
        return block_scheme.objective(X=X, Y=Y, U=U, V=V)

    runs = train_chunked(
        X,
        Y,
        U0,
        V0,
        [block_scheme, corrected],
        lr=lr,
        iterations=iterations,
        seed=config.seed,
        stream=4,
        bar=bar,
        evaluate=evaluate,
    )
    diverged_at = None
    try:  # the same-theta run at the common step size: record where it diverges
        structdrop.train(
            X,
            Y,
            U0,
            V0,
            same,
            lr,
            min(iterations, 2000),
            record_every=RECORD_EVERY,
            seed=config.seed,
            lr_decay=LR_DECAY,
        )
    except structdrop.TrainingDiverged as exc:
        diverged_at = int(exc.step)
    lr_same = lr / SAME_THETA_LR_FACTOR
    same_runs = train_chunked(
        X, Y, U0, V0, [same], lr=lr_same, iterations=iterations, seed=config.seed, stream=5, bar=bar
    )
    half = runs.iterations.size // 2
    ratio, se = mean_ratio(runs.stochastic[1][half:], runs.deterministic[1][half:])
    # the exact (Lemma 10) objective of the corrected run is recorded by the engine at every record
    exact_cp = [
        float(v) for v in runs.deterministic[1][np.searchsorted(runs.iterations, runs.checkpoints)]
    ]
    approx_cp = [float(v) for v in runs.evaluations[1]]

    def describe(
        stochastic: np.ndarray, deterministic: np.ndarray, gamma: float | None
    ) -> dict[str, Any]:
        keep = np.full(WIDTH, THETA) if gamma is None else keep_probabilities(WIDTH, BLOCK, gamma)
        return {
            "stochastic": tolist(stochastic),
            "deterministic": tolist(deterministic),
            "mean_keep": float(keep.mean()),
            "interior_keep": float(keep[WIDTH // 2]),
        }

    final = {
        "dropblock": float(runs.deterministic[0][-1]),
        "overlapping_corrected": float(runs.deterministic[1][-1]),
        "overlapping_same_theta": float(same_runs.deterministic[0][-1]),
        "corrected_exact": float(exact_cp[-1]),
        "corrected_approx": float(approx_cp[-1]),
    }
    final["approx_gap"] = (final["corrected_approx"] - final["corrected_exact"]) / final[
        "corrected_exact"
    ]
    return {
        "figure": NAME,
        "title": TITLE,
        "settings": problem_settings(
            X,
            Y,
            block_size=BLOCK,
            gamma_corrected=corrected.gamma,
            gamma_same_theta=same.gamma,
            iterations=int(runs.iterations[-1]),
            lr=lr,
            lr_same_theta=lr_same,
            lr_decay=LR_DECAY,
            record_every=RECORD_EVERY,
            seed=config.seed,
        ),
        "iterations": tolist(runs.iterations),
        "runs": {
            "dropblock": describe(runs.stochastic[0], runs.deterministic[0], None),
            "overlapping_corrected": describe(
                runs.stochastic[1], runs.deterministic[1], corrected.gamma
            ),
            "overlapping_same_theta": describe(
                same_runs.stochastic[0], same_runs.deterministic[0], same.gamma
            ),
        },
        "checkpoints": tolist(runs.checkpoints),
        "corrected_exact_at_checkpoints": exact_cp,
        "corrected_approx_at_checkpoints": approx_cp,
        "same_theta_diverged_at": diverged_at,
        "final": final,
        "stochastic_over_deterministic": ratio,
        "stochastic_over_deterministic_se": se,
    }


def claims(data: dict[str, Any]) -> list[Claim]:
    s, f, runs = data["settings"], data["final"], data["runs"]
    same = runs["overlapping_same_theta"]
    div = data["same_theta_diverged_at"]
    diverged = (
        f"training at the common step size diverges at step {div}; " if div is not None else ""
    )
    ratio_same = f["overlapping_same_theta"] / f["dropblock"]
    ratio_corr = f["overlapping_corrected"] / f["dropblock"]
    ratio, se = data["stochastic_over_deterministic"], data["stochastic_over_deterministic_se"]
    return [
        Claim(
            NAME,
            "Overlapping DropBlock with the same theta as DropBlock has a higher effective "
            "dropping rate (Section 5.3).",
            f"seeds firing with 1 - theta = {s['gamma_same_theta']:.3g} keep an interior unit with "
            f"probability {same['interior_keep']:.3g} (mean over units {same['mean_keep']:.3g}) "
            f"instead of {s['theta']}; {diverged}with a {SAME_THETA_LR_FACTOR:g}x smaller step its "
            f"final objective is {f['overlapping_same_theta']:.4g} = "
            f"{ratio_same:.2f} x DropBlock's",
            "holds",
        ),
        Claim(
            NAME,
            "With the theta correction, overlapping DropBlock behaves largely like DropBlock: the "
            "curves are very close in log scale at iteration 1e5 (Fig. 4).",
            f"seed probability gamma = 1 - theta^(1/r) = {s['gamma_corrected']:.4f} (interior keep "
            f"{s['theta']}, mean keep {runs['overlapping_corrected']['mean_keep']:.3f}: edge units "
            f"are kept more); final deterministic objective {f['overlapping_corrected']:.4g} vs "
            f"DropBlock {f['dropblock']:.4g} (ratio {ratio_corr:.3f}, log10 difference "
            f"{np.log10(ratio_corr):+.3f}) after {s['iterations']} steps",
            "approximately (close in log scale)" if abs(np.log10(ratio_corr)) < 0.1 else "fails",
        ),
        Claim(
            NAME,
            "The deterministic objective of overlapping DropBlock is the DropBlock one (Lemma 1) "
            "up to the theta correction (the approximation behind Section 5.3).",
            "at the corrected run's final iterate: exact objective with the exact characteristic "
            f"matrix (Lemma 10) {f['corrected_exact']:.6g}, Lemma 1 approximation "
            f"{f['corrected_approx']:.6g} ({100 * f['approx_gap']:+.2f}%); stochastic / exact "
            f"deterministic along the run {ratio:.4f} +- {se:.4f}",
            verdict_for(
                abs(ratio - 1) <= max(4 * se, 1e-3),
                len(data["iterations"]),
                "approximation only; the exact C-bar objective matches training",
            ),
        ),
    ]


def moving_average(x: np.ndarray, y: np.ndarray, half: int) -> tuple[np.ndarray, np.ndarray]:
    """Centred moving average of ``y`` over 2 half + 1 records (no lag; the ends are dropped)."""
    window = 2 * half + 1
    if len(y) < window:
        return x, y
    sums = np.cumsum(np.concatenate([[0.0], y]))
    return x[half : len(x) - half], (sums[window:] - sums[:-window]) / window


def plot(data: dict[str, Any], path: Path) -> Path:
    from ._plot import COLORS, checkpoint_line, finish_figure, finish_iterations, pyplot, zoom_late

    plt = pyplot()
    it = np.asarray(data["iterations"])
    cp = np.asarray(data["checkpoints"])
    runs, s = data["runs"], data["settings"]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7.2, 7.6))
    labels = {
        "dropblock": (f"DropBlock (non-overlapping), theta = {s['theta']}", COLORS["dropblock"]),
        "overlapping_corrected": (
            f"DropBlockOriginal, corrected (gamma = {s['gamma_corrected']:.3f})",
            COLORS["overlap_corrected"],
        ),
        "overlapping_same_theta": (
            f"DropBlockOriginal, same theta (gamma = {s['gamma_same_theta']:.2f}, "
            f"lr / {SAME_THETA_LR_FACTOR:g})",
            COLORS["overlap_same"],
        ),
    }
    for key, (label, color) in labels.items():
        top.plot(it, runs[key]["stochastic"], color=color, lw=0.5, alpha=0.25)
        log_values = np.log(np.asarray(runs[key]["stochastic"]))
        memory = max(5.0, len(it) / 100.0)  # about 1% of the axis (at least 5 records)
        top.plot(it, np.exp(ema(log_values, 1.0 - 1.0 / memory)), color=color, label=label)
    top.set_yscale("log")
    finish_iterations(
        top,
        "training objective (EMA of the log)",
        f"Figure 4 (paper): training curves, block size r = {s['block_size']}",
    )
    corr = runs["overlapping_corrected"]
    centers, averaged = moving_average(it, np.asarray(corr["stochastic"]), max(1, len(it) // 50))
    bottom.plot(
        centers,
        averaged,
        color="#6baed6",
        lw=1.0,
        label="DropBlockOriginal corrected, stochastic (moving average)",
    )
    bottom.plot(
        it,
        corr["deterministic"],
        color=COLORS["deterministic"],
        label="exact deterministic (Lemma 10, exact C-bar)",
    )
    approx = data["corrected_approx_at_checkpoints"]
    checkpoint_line(bottom, cp, approx, "approximation: DropBlock Lemma 1 at the same iterates")
    bottom.plot(
        it,
        runs["dropblock"]["deterministic"],
        color=COLORS["dropblock"],
        lw=1.0,
        ls=":",
        label="DropBlock run, deterministic",
    )
    curves = [(it, corr["deterministic"]), (cp, approx), (it, runs["dropblock"]["deterministic"])]
    zoom_late(bottom, it, curves, below=0.15, above=0.6)
    finish_iterations(
        bottom,
        "objective (zoom, linear)",
        f"exact vs approximate objective of the corrected run (final gap "
        f"{100 * data['final']['approx_gap']:+.1f}%)",
    )
    return finish_figure(fig, 4, TITLE, path)
