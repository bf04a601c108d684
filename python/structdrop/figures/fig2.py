"""Figure 2: DropConnect -- stochastic vs deterministic objective, and Dropout vs DropConnect.

Setup of Figure 1 (theta = 0.5, d = 50), runs of Algorithm 1 with DropConnect (elementwise mask on
V) and with Dropout, from the same U0, V0. Top: the DropConnect stochastic loss next to its exact
deterministic objective (the corrected identity, regulariser beta sum_i ||u_i||^2 sum_j V_ji^2
||x_j||^2) and the printed paper's objective (22) (the Dropout form beta sum_i ||u_i||^2 ||X^T
v_i||^2) at the same iterates (evaluated at the chunk ends). Bottom: the deterministic objectives of
the Dropout and DropConnect runs, with the printed (22) on the DropConnect iterates, so the gap
shows. At the final DropConnect iterate a Monte Carlo over fresh masks measures the expected
loss directly.

JSON keys (fig2.json): ``figure``, ``title``, ``settings`` (a, b, N, d, theta, iterations, lr,
lr_decay, record_every, seed, mc_masks), ``iterations``, ``dropconnect`` (``stochastic``,
``deterministic``), ``dropout`` (``stochastic``, ``deterministic``, ``global_min``), ``checkpoints``
(steps), ``dropconnect_exact_at_checkpoints``, ``dropconnect_printed_at_checkpoints``, ``final``
(``exact``, ``printed``, ``fit``, ``mc_mean``, ``mc_se``, ``mc_masks``,
``gap_measured`` = (mc_mean - printed)/printed, ``gap_predicted`` = (exact - printed)/printed,
``dropout_deterministic``, ``dropconnect_deterministic``), ``stochastic_over_deterministic`` and its
``_se``, ``claims``, ``seconds``.
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

NAME = "fig2"
TITLE = "DropConnect: stochastic vs deterministic objective, and DropConnect vs Dropout"


def work(config: FigureConfig) -> int:
    return config.shallow_iterations


def monte_carlo_dropconnect(
    X: np.ndarray,
    Y: np.ndarray,
    U: np.ndarray,
    V: np.ndarray,
    theta: float,
    masks: int,
    seed: int,
    batch: int = 250,
) -> tuple[float, float]:
    """Mean and standard error of ||Y - (1/theta) U (Z o V)^T X||^2 over ``masks`` fresh masks Z.

    Written independently of the library's objectives: the loss of W = U (Z o V)^T / theta is
    ||Y||^2 - 2 <Y X^T, W> + <W X X^T, W> (moments computed once).
    """
    rng = np.random.default_rng([seed, 22])
    gram, cross, y2 = X @ X.T, Y @ X.T, float(np.sum(Y * Y))
    values = []
    for start in range(0, masks, batch):
        n = min(batch, masks - start)
        Z = rng.random((n,) + V.shape) < theta
        W = np.einsum("ad,nbd->nab", U, Z * V) / theta
        values.append(
            y2 - 2.0 * np.einsum("ab,nab->n", cross, W) + np.einsum("nab,nab->n", W @ gram, W)
        )
    loss = np.concatenate(values)
    return float(loss.mean()), float(loss.std(ddof=1) / np.sqrt(loss.size))


def compute(config: FigureConfig, bar: Any = None) -> dict[str, Any]:
    import structdrop
    from structdrop.schemes import DropConnect, Dropout

    problem, U0, V0 = paper_problem(config.seed)
    X, Y = problem.X, problem.Y
    connect = DropConnect(THETA)

    def evaluate(run: int, U: np.ndarray, V: np.ndarray) -> Any:
        if run != 0:
            return None
        return (
            connect.objective(X=X, Y=Y, U=U, V=V),
            connect.paper_approx_objective(X=X, Y=Y, U=U, V=V),
        )

    runs = train_chunked(
        X,
        Y,
        U0,
        V0,
        [connect, Dropout(THETA)],
        lr=config.shallow_lr,
        iterations=config.shallow_iterations,
        seed=config.seed,
        stream=2,
        bar=bar,
        evaluate=evaluate,
    )
    U, V = runs.final[0]
    exact, printed = (
        connect.objective(X=X, Y=Y, U=U, V=V),
        connect.paper_approx_objective(X=X, Y=Y, U=U, V=V),
    )
    fit = float(np.sum((Y - U @ (V.T @ X)) ** 2))
    masks = 1000 if config.quick else 5000
    mc_mean, mc_se = monte_carlo_dropconnect(X, Y, U, V, THETA, masks, config.seed)
    half = runs.iterations.size // 2
    ratio, se = mean_ratio(runs.stochastic[0][half:], runs.deterministic[0][half:])
    dropout_min = structdrop.dropblock_global_min(
        Y, X=X, block_size=1, beta=structdrop.beta_for_width(THETA, WIDTH, 1)
    )
    return {
        "figure": NAME,
        "title": TITLE,
        "settings": problem_settings(
            X,
            Y,
            iterations=int(runs.iterations[-1]),
            lr=config.shallow_lr,
            lr_decay=LR_DECAY,
            record_every=RECORD_EVERY,
            seed=config.seed,
            mc_masks=masks,
        ),
        "iterations": tolist(runs.iterations),
        "dropconnect": {
            "stochastic": tolist(runs.stochastic[0]),
            "deterministic": tolist(runs.deterministic[0]),
        },
        "dropout": {
            "stochastic": tolist(runs.stochastic[1]),
            "deterministic": tolist(runs.deterministic[1]),
            "global_min": dropout_min.objective,
        },
        "checkpoints": tolist(runs.checkpoints),
        "dropconnect_exact_at_checkpoints": [e[0] for e in runs.evaluations[0]],
        "dropconnect_printed_at_checkpoints": [e[1] for e in runs.evaluations[0]],
        "final": {
            "exact": exact,
            "printed": printed,
            "fit": fit,
            "mc_mean": mc_mean,
            "mc_se": mc_se,
            "mc_masks": masks,
            "gap_measured": (mc_mean - printed) / printed,
            "gap_predicted": (exact - printed) / printed,
            "dropout_deterministic": float(runs.deterministic[1][-1]),
            "dropconnect_deterministic": float(runs.deterministic[0][-1]),
        },
        "stochastic_over_deterministic": ratio,
        "stochastic_over_deterministic_se": se,
    }


def claims(data: dict[str, Any]) -> list[Claim]:
    f = data["final"]
    ratio, se = data["stochastic_over_deterministic"], data["stochastic_over_deterministic_se"]
    z_exact = (f["mc_mean"] - f["exact"]) / f["mc_se"]
    z_printed = (f["mc_mean"] - f["printed"]) / f["mc_se"]
    exact_ok = abs(z_exact) < 4 and abs(ratio - 1) <= max(4 * se, 1e-3)
    out = [
        Claim(
            NAME,
            "Stochastic DropConnect training has the deterministic objective (22) as its "
            "expectation (Fig. 2 top; Corollary 14).",
            f"at the final iterate, Monte Carlo over {f['mc_masks']} masks: E loss = "
            f"{f['mc_mean']:.6g} +- {f['mc_se']:.3g}; printed (22) = {f['printed']:.6g} "
            f"({z_printed:+.1f} standard errors away); corrected identity = {f['exact']:.6g} "
            f"({z_exact:+.1f} s.e.). Along the run: stochastic / corrected deterministic = "
            f"{ratio:.4f} +- {se:.4f}",
            (
                "fails as printed; holds for the corrected identity"
                if exact_ok and abs(z_printed) > 4
                else ("holds" if exact_ok else "fails")
            )
            if len(data["iterations"]) >= MIN_RECORDS
            else "inconclusive (too few recorded steps)",
        ),
        Claim(
            NAME,
            "DropConnect and Dropout have the same expected objective, i.e. DropConnect's "
            "regulariser is Dropout's (Theorem 13, Fig. 2 bottom).",
            "gap of the expected DropConnect loss to the Dropout form (22) at the same weights: "
            f"measured {100 * f['gap_measured']:+.2f}% (Monte Carlo), predicted by the corrected "
            f"identity {100 * f['gap_predicted']:+.2f}% (the regulariser differs by "
            f"{100 * (f['exact'] - f['printed']) / max(f['printed'] - f['fit'], 1e-300):+.1f}%); "
            "final deterministic objectives of the two runs: Dropout "
            f"{f['dropout_deterministic']:.6g}, DropConnect {f['dropconnect_deterministic']:.6g}"
            + (
                f", below Dropout's global minimum {data['dropout']['global_min']:.6g} (impossible "
                "if the objectives were equal)"
                if f["dropconnect_deterministic"] < data["dropout"]["global_min"]
                else ""
            ),
            "fails in general (equal only when X X^T is diagonal); the corrected gap is confirmed"
            if abs(z_exact) < 4 and abs(z_printed) > 4
            else "inconclusive",
        ),
    ]
    return out


def plot(data: dict[str, Any], path: Path) -> Path:
    from ._plot import (
        COLORS,
        checkpoint_line,
        finish_figure,
        finish_iterations,
        pyplot,
        training_curves,
        zoom_late,
    )

    plt = pyplot()
    it = np.asarray(data["iterations"])
    cp = np.asarray(data["checkpoints"])
    printed = data["dropconnect_printed_at_checkpoints"]
    dc, do = data["dropconnect"], data["dropout"]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7.2, 7.6))
    training_curves(
        top,
        it,
        dc,
        "DropConnect",
        "DropConnect deterministic (corrected identity)",
        COLORS["dropconnect"],
    )
    checkpoint_line(top, cp, printed, "printed objective (22) at the same iterates")
    top.set_yscale("log")
    theta = data["settings"]["theta"]
    finish_iterations(
        top, "objective", f"DropConnect, theta = {theta}: stochastic vs deterministic"
    )
    bottom.plot(
        it,
        do["deterministic"],
        color=COLORS["dropout"],
        label="Dropout deterministic (its own run)",
    )
    bottom.plot(
        it,
        dc["deterministic"],
        color=COLORS["dropconnect"],
        label="DropConnect deterministic (corrected)",
    )
    checkpoint_line(bottom, cp, printed, "DropConnect, printed (22) = Dropout form")
    bottom.axhline(
        do["global_min"],
        color=COLORS["global_min"],
        ls=":",
        lw=1.2,
        label=f"Dropout global minimum {do['global_min']:.4g}",
    )
    f = data["final"]
    curves = [(it, do["deterministic"]), (it, dc["deterministic"]), (cp, printed)]
    zoom_late(bottom, it, curves, floor=do["global_min"])
    finish_iterations(
        bottom,
        "deterministic objective (zoom, linear)",
        "Dropout vs DropConnect; at the end, E loss vs printed (22): "
        f"{100 * f['gap_predicted']:+.2f}% exact, {100 * f['gap_measured']:+.2f}% Monte Carlo",
        fontsize=9.5,
    )
    return finish_figure(fig, 2, TITLE, path)
