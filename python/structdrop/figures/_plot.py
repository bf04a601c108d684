"""Plotting helpers: matplotlib imported lazily with the Agg backend, and a common style."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._data.atomic_write import replacing
from .._validation import MissingDependency

__all__ = [
    "COLORS",
    "MissingDependency",
    "checkpoint_line",
    "finish_figure",
    "finish_iterations",
    "iteration_axis",
    "pyplot",
    "save",
    "training_curves",
    "zoom_late",
]


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend (no display needed); MissingDependency when absent."""
    try:
        import matplotlib
    except ImportError:
        raise MissingDependency(
            "the figures need matplotlib: pip install 'structdrop[plot]'"
        ) from None
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams.update(
        {
            "figure.dpi": 100,
            "savefig.dpi": 110,
            "font.size": 10,
            "axes.titlesize": 10.5,
            "axes.labelsize": 10,
            "legend.fontsize": 8.5,
            "legend.framealpha": 0.85,
            "axes.grid": True,
            "grid.alpha": 0.3,
            "lines.linewidth": 1.4,
        }
    )
    return plt


def save(fig: Any, path: Path) -> Path:
    """Save ``fig`` as a PNG at ``path`` (whole or not at all) and close it."""
    with replacing(path) as partial:
        fig.savefig(partial, format="png", bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


def iteration_axis(ax: Any) -> None:
    """Label an iterations x axis (linear, thousands as 'k')."""
    ax.set_xlabel("iteration")
    ax.ticklabel_format(axis="x", style="sci", scilimits=(0, 3))


def finish_iterations(ax: Any, ylabel: str, title: str, **title_options: Any) -> None:
    """Label a panel drawn against the iterations, with its legend in the upper right."""
    ax.set_ylabel(ylabel)
    ax.set_title(title, **title_options)
    ax.legend(loc="upper right")
    iteration_axis(ax)


def finish_figure(fig: Any, number: int, title: str, path: Path) -> Path:
    """Title "Figure N: ...", tight layout, saved as a PNG at ``path``."""
    fig.suptitle(f"Figure {number}: {title}", fontsize=11)
    fig.tight_layout()
    return save(fig, path)


def training_curves(
    ax: Any, it: Any, run: dict[str, Any], name: str, deterministic_label: str, color: str
) -> None:
    """A run's stochastic objective (light) and its exact deterministic objective (dark)."""
    ax.plot(it, run["stochastic"], color=COLORS["stochastic"], lw=0.8, label=f"{name} stochastic")
    ax.plot(it, run["deterministic"], color=color, label=deterministic_label)


def checkpoint_line(ax: Any, checkpoints: Any, values: Any, label: str) -> None:
    """The objective the paper prints, evaluated at the checkpoints: dashed, with dots."""
    ax.plot(checkpoints, values, color=COLORS["paper"], ls="--", marker=".", ms=3, label=label)


def zoom_late(
    ax: Any,
    it: Any,
    curves: Sequence[tuple[Any, Any]],
    *,
    floor: float | None = None,
    below: float = 0.05,
    above: float = 0.05,
) -> None:
    """Zoom a linear panel on the end of training.

    x from 8% to 102% of the last iteration; y over the values of ``curves`` ((x, values) pairs)
    recorded after 10% of it (down to ``floor``, a reference line, when given), widened by
    ``below`` and ``above`` times that range.
    """
    last = float(np.asarray(it)[-1])
    values = np.concatenate(
        [np.asarray(v, dtype=float)[np.asarray(x) >= 0.1 * last] for x, v in curves]
    )
    low = values.min() if floor is None else min(floor, values.min())
    high = values.max()
    ax.set_ylim(low - below * (high - low), high + above * (high - low))
    ax.set_xlim(last * 0.08, last * 1.02)


COLORS = {
    "stochastic": "#9ecae1",
    "deterministic": "#08519c",
    "global_min": "#d62728",
    "dropout": "#2ca02c",
    "dropconnect": "#08519c",
    "paper": "#ff7f0e",
    "dropblock": "#2ca02c",
    "overlap_corrected": "#1f77b4",
    "overlap_same": "#ff7f0e",
}
