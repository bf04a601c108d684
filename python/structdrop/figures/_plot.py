"""Plotting helpers: matplotlib imported lazily with the Agg backend, and a common style."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .._data.atomic_write import replacing
from .._validation import MissingDependency

__all__ = ["MissingDependency", "pyplot", "save"]


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
