"""Figure 1: DropBlock training -- stochastic vs deterministic objective, convergence to the
global minimum.

The paper's setup (Section 5.1): a, b, N, d = 80, 100, 1000, 50, theta = 0.5, block sizes r = 5 and
r = 10, Algorithm 1 from the same U0, V0. Top row: the stochastic objective (the loss with a fresh
mask) next to the exact deterministic objective of Lemma 1 at the same iterates. Bottom row: the
deterministic objective and the corrected Theorem 7 minimum for this width,
dropblock_global_min(Y, X=X, block_size=r, beta=beta_for_width(theta, d, r)).

JSON keys (fig1.json): ``figure`` ("fig1"), ``settings`` (a, b, N, d, theta, block_sizes,
iterations, lr, lr_decay, record_every, seed), ``iterations`` (recorded steps), ``runs`` (one object
per block size with ``block_size``, ``stochastic``, ``deterministic``, ``global_min``, ``rho``,
``rank``, ``beta_bar``, ``final_ratio`` (last deterministic / global_min), ``min_ratio`` (smallest
deterministic / global_min), ``stochastic_over_deterministic`` (mean ratio over the second half)
and ``stochastic_over_deterministic_se``, ``enumerated_final`` (the expected loss at the final
weights by exhaustive enumeration of all 2^(d/r) block masks) and ``enumeration_rel_error`` (its
relative difference to the last deterministic value)), ``claims``, ``seconds``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ._common import (
    LR_DECAY,
    MIN_RECORDS,
    RECORD_EVERY,
    THETA,
    WIDTH,
    Claim,
    FigureConfig,
    mean_ratio,
    paper_problem,
    problem_settings,
    tolist,
    train_chunked,
)

NAME = "fig1"
TITLE = "DropBlock: stochastic vs deterministic objective, and convergence to the global minimum"
BLOCK_SIZES = (5, 10)


def enumerate_dropblock(
    X: np.ndarray, Y: np.ndarray, U: np.ndarray, V: np.ndarray, theta: float, r: int
) -> float:
    """E ||Y - (1/theta) U diag(z) V^T X||^2 by exhaustive enumeration of all 2^k block masks.

    Independent of Lemma 1: with W_b = U_b V_b^T (block b), the loss of a mask w in {0,1}^k is
    ||Y||^2 - (2/theta) sum_b w_b <Y X^T, W_b> + (1/theta^2) sum_bc w_b w_c <W_b X X^T, W_c>,
    weighted by theta^|w| (1 - theta)^(k - |w|).
    """
    k = U.shape[1] // r
    gram, cross = X @ X.T, Y @ X.T
    blocks = [U[:, i * r : (i + 1) * r] @ V[:, i * r : (i + 1) * r].T for i in range(k)]
    linear = np.array([np.sum(cross * W) for W in blocks])
    quad = np.array([[np.sum((Wb @ gram) * Wc) for Wc in blocks] for Wb in blocks])
    masks = ((np.arange(2**k)[:, None] >> np.arange(k)) & 1).astype(float)
    losses = (
        np.sum(Y * Y)
        - 2.0 / theta * masks @ linear
        + np.einsum("mb,bc,mc->m", masks, quad, masks) / theta**2
    )
    kept = masks.sum(axis=1)
    weights = theta**kept * (1.0 - theta) ** (k - kept)
    return float(weights @ losses)


def work(config: FigureConfig) -> int:
    """Progress-bar units (training steps) of this figure."""
    return config.shallow_iterations


def compute(config: FigureConfig, bar: Any = None) -> dict[str, Any]:
    import structdrop
    from structdrop.schemes import DropBlock

    problem, U0, V0 = paper_problem(config.seed)
    X, Y = problem.X, problem.Y
    schemes = [DropBlock(r, theta=THETA) for r in BLOCK_SIZES]
    runs = train_chunked(
        X,
        Y,
        U0,
        V0,
        schemes,
        lr=config.shallow_lr,
        iterations=config.shallow_iterations,
        seed=config.seed,
        stream=1,
        bar=bar,
    )
    half = runs.iterations.size // 2
    out_runs = []
    for j, r in enumerate(BLOCK_SIZES):
        beta_bar = structdrop.beta_for_width(THETA, WIDTH, r)
        gm = structdrop.dropblock_global_min(Y, X=X, block_size=r, beta=beta_bar)
        det, sto = runs.deterministic[j], runs.stochastic[j]
        ratio, se = mean_ratio(sto[half:], det[half:])
        U, V = runs.final[j]
        enumerated = enumerate_dropblock(X, Y, U, V, THETA, r)
        out_runs.append(
            {
                "block_size": r,
                "stochastic": tolist(sto),
                "deterministic": tolist(det),
                "global_min": gm.objective,
                "rho": gm.rho,
                "rank": gm.rank,
                "beta_bar": beta_bar,
                "final_ratio": float(det[-1] / gm.objective),
                "min_ratio": float(det.min() / gm.objective),
                "stochastic_over_deterministic": ratio,
                "stochastic_over_deterministic_se": se,
                "enumerated_final": enumerated,
                "enumeration_rel_error": abs(enumerated - float(det[-1])) / enumerated,
            }
        )
    return {
        "figure": NAME,
        "title": TITLE,
        "settings": problem_settings(
            X,
            Y,
            block_sizes=list(BLOCK_SIZES),
            iterations=int(runs.iterations[-1]),
            lr=config.shallow_lr,
            lr_decay=LR_DECAY,
            record_every=RECORD_EVERY,
            seed=config.seed,
        ),
        "iterations": tolist(runs.iterations),
        "runs": out_runs,
    }


def claims(data: dict[str, Any]) -> list[Claim]:
    out = []
    for run in data["runs"]:
        r = run["block_size"]
        ratio, se = run["stochastic_over_deterministic"], run["stochastic_over_deterministic_se"]
        ok = abs(ratio - 1.0) <= max(4 * se, 1e-3)
        out.append(
            Claim(
                NAME,
                f"Stochastic DropBlock training (theta = 0.5, r = {r}) has the deterministic "
                "objective (5) of Lemma 1 as its expectation (Fig. 1 top).",
                f"exhaustive enumeration of all {2 ** (data['settings']['d'] // r)} block masks at "
                f"the final weights: E loss = {run['enumerated_final']:.10g}, Lemma 1 = "
                f"{run['deterministic'][-1]:.10g} (relative difference "
                f"{run['enumeration_rel_error']:.1e}); along the run, mean stochastic / "
                f"deterministic loss over the second half = {ratio:.4f} +- {se:.4f} (standard "
                "error)",
                "holds"
                if run["enumeration_rel_error"] < 1e-9
                and (ok or len(data["iterations"]) < MIN_RECORDS)
                else "fails",
            )
        )
        final, low = run["final_ratio"], run["min_ratio"]
        out.append(
            Claim(
                NAME,
                f"DropBlock training (r = {r}) converges to the global minimum of Theorem 7 "
                "(Fig. 1 bottom).",
                f"corrected Theorem 7 minimum (row space of X, beta_bar = {run['beta_bar']:.3g}, "
                f"rho = {run['rho']}, rank {run['rank']}) = {run['global_min']:.6g}; final "
                f"deterministic objective / minimum = {final:.4f} after "
                f"{data['settings']['iterations']} steps; never below it "
                f"(smallest ratio {low:.4f})",
                ("holds" if final < 1.05 else "approached")
                if low >= 1.0 - 1e-9
                else "fails (below the bound)",
            )
        )
    return out


def plot(data: dict[str, Any], path: Path) -> Path:
    from ._plot import COLORS, finish_figure, finish_iterations, pyplot, training_curves, zoom_late

    plt = pyplot()
    runs = data["runs"]
    it = np.asarray(data["iterations"])
    fig, axes = plt.subplots(2, len(runs), figsize=(5.2 * len(runs), 7.0), squeeze=False)
    for j, run in enumerate(runs):
        r = run["block_size"]
        top, bottom = axes[0, j], axes[1, j]
        training_curves(
            top, it, run, "DropBlock", "DropBlock deterministic (Lemma 1)", COLORS["deterministic"]
        )
        top.set_yscale("log")
        theta = data["settings"]["theta"]
        finish_iterations(
            top, "objective", f"r = {r}, theta = {theta}: stochastic vs deterministic"
        )
        bottom.plot(
            it, run["deterministic"], color=COLORS["deterministic"], label="DropBlock deterministic"
        )
        gm = run["global_min"]
        bottom.axhline(
            gm,
            color=COLORS["global_min"],
            ls="--",
            label=f"global minimum (corrected Thm 7) {gm:.4g}",
        )
        zoom_late(bottom, it, [(it, run["deterministic"])], floor=gm, below=0.1)
        finish_iterations(
            bottom,
            "deterministic objective (zoom, linear)",
            f"r = {r}: final / minimum = {run['final_ratio']:.4f}",
        )
    return finish_figure(fig, 1, TITLE, path)
