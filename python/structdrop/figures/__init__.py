"""Reproduction of the paper's Section 5 figures (Figures 1-4) with the numbers behind them.

One module per figure (``fig1`` .. ``fig4``), each with ``NAME``, ``TITLE``, ``work(config)``
(progress units), ``compute(config, bar) -> dict`` (JSON-ready numbers),
``claims(data) -> list[Claim]`` and ``plot(data, path)``. :func:`reproduce` runs the requested
figures and writes, into the output folder, ``figN.png``, ``figN.json`` (the numbers, the claims and
the wall time; keys documented in each module's docstring) and ``summary.md`` (each claim of
Section 5 next to what was measured).

matplotlib is imported only when plotting (Agg backend) and torch only for Figure 3; a missing one
raises :class:`MissingDependency` naming the pip command.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

from .._data.atomic_write import write_text
from . import fig1, fig2, fig3, fig4
from ._common import Claim, FigureConfig
from ._plot import MissingDependency

__all__ = [
    "FIGURES",
    "Claim",
    "FigureConfig",
    "FigureOutput",
    "MissingDependency",
    "reproduce",
    "write_summary",
]

#: The figures by name, in order.
FIGURES = {module.NAME: module for module in (fig1, fig2, fig3, fig4)}


@dataclass(frozen=True)
class FigureOutput:
    """What one figure produced: its files, claims and wall time.

    Example:
        >>> from pathlib import Path
        >>> from structdrop.figures import FigureOutput
        >>> out = FigureOutput("fig1", Path("fig1.png"), Path("fig1.json"), (), 12.5)
        >>> out.png.name, out.seconds
        ('fig1.png', 12.5)
    """

    name: str
    png: Path
    json: Path
    claims: tuple[Claim, ...]
    seconds: float


def reproduce(
    names: list[str],
    config: FigureConfig,
    make_bar: Callable[[int, str], Any] | None = None,
    log: Callable[[str], None] | None = None,
    skip_without_torch: bool = False,
) -> list[FigureOutput]:
    """Compute, save and plot the figures ``names`` into ``config.out``; then write summary.md.

    Args:
        names: figure names (keys of :data:`FIGURES`).
        config: sizes, seed, overrides and the output folder (created if needed).
        make_bar: ``make_bar(total, label)`` returns a progress bar (tqdm-like: update, close).
        log: called with one line per finished figure (and per skipped one).
        skip_without_torch: leave Figure 3 out (with a log line and a note in summary.md) when
            torch is missing, instead of raising.

    Returns:
        list[FigureOutput]: one per figure made, in the order asked (summary.md is written too).

    Raises:
        MissingDependency: matplotlib (any figure) or torch (Figure 3) is not installed; checked
            before any work starts.
        ValueError: an unknown figure name.
        TrainingDiverged: a training run diverged (a step size too large for the settings).

    Example:
        >>> from structdrop.figures import FigureConfig, reproduce
        >>> config = FigureConfig(out=Path("figures"), quick=True, progress=False)
        >>> outputs = reproduce(["fig1"], config)  # doctest: +SKIP
        >>> [o.png.name for o in outputs]  # doctest: +SKIP
        ['fig1.png']
    """
    from ._plot import pyplot

    unknown = [n for n in names if n not in FIGURES]
    if unknown:
        raise ValueError(f"unknown figure(s) {unknown}; choose from {sorted(FIGURES)}")
    pyplot()  # fail early without matplotlib
    skipped: list[str] = []
    if "fig3" in names:
        try:
            fig3.require_torch(config.dataset)
        except MissingDependency as exc:
            if not skip_without_torch:
                raise
            names = [n for n in names if n != "fig3"]
            skipped.append(f"fig3 skipped: {exc}")
            if log is not None:
                log(skipped[-1])
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    outputs = []
    for name in names:
        module = FIGURES[name]
        bar = make_bar(module.work(config), name) if make_bar is not None else None
        start = time.perf_counter()
        try:
            data = module.compute(config, bar)
        finally:
            if bar is not None:
                bar.close()
        claim_list = tuple(module.claims(data))
        data["claims"] = [asdict(c) for c in claim_list]
        png = module.plot(data, out / f"{name}.png")
        data["seconds"] = time.perf_counter() - start
        json_path = out / f"{name}.json"
        write_text(json_path, json.dumps(data, indent=1, default=float) + "\n")
        outputs.append(FigureOutput(name, png, json_path, claim_list, data["seconds"]))
        if log is not None:
            log(f"{name}: {png} and {json_path.name} ({data['seconds']:.1f} s)")
    write_summary(outputs, config, out / "summary.md", skipped)
    return outputs


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def write_summary(
    outputs: list[FigureOutput], config: FigureConfig, path: Path, skipped: list[str] | None = None
) -> Path:
    """summary.md: a table per figure, each claim of Section 5 next to what was measured.

    Args:
        outputs: what :func:`reproduce` returned for the figures made.
        config: the configuration they were made with (mode, seed, step size).
        path: the file to write (whole or not at all).
        skipped: notes on figures left out (for example Figure 3 without torch).

    Returns:
        Path: ``path``.

    Raises:
        OSError: the file cannot be written.

    Example:
        >>> import tempfile
        >>> from structdrop.figures import FigureConfig, write_summary
        >>> folder = Path(tempfile.mkdtemp())
        >>> path = write_summary([], FigureConfig(out=folder), folder / "summary.md")
        >>> path.read_text().splitlines()[0]
        '# structdrop: the claims of Section 5, measured'
    """
    from .. import __version__

    mode = "quick" if config.quick else "full"
    lines = [
        "# structdrop: the claims of Section 5, measured",
        "",
        f"structdrop {__version__}, `structdrop reproduce` in {mode} mode, seed {config.seed}. "
        "Paper: Pal, Lane, Vidal, Haeffele, *On the Regularization Properties of Structured "
        "Dropout*, CVPR 2020. Where the printed paper is wrong (DropConnect identity, range of rho "
        "in Theorem 7, rank of X) the measurements use the corrected mathematics of the library; "
        "the verdict says which.",
        "",
    ]
    for output in outputs:
        module = FIGURES[output.name]
        lines += [
            f"## {output.name}: {module.TITLE}",
            "",
            f"![{output.name}]({output.png.name}) — numbers in `{output.json.name}` "
            f"({output.seconds:.1f} s)",
            "",
            "| claim of the paper | measured | verdict |",
            "|---|---|---|",
        ]
        lines += [
            f"| {_cell(c.claim)} | {_cell(c.measured)} | {_cell(c.verdict)} |"
            for c in output.claims
        ]
        lines.append("")
    lines += [
        "## Notes",
        "",
        *[f"- {note}" for note in (skipped or [])],
        "- Step size and schedule of the shallow runs are not given in the paper: here lr = "
        f"{config.shallow_lr:g} with lr / (1 + (t - 1)/3000), batch size 1, samples drawn with "
        "replacement.",
        "- Section 5.3's printed correction theta' = 1 - (1 - theta)^(1/(2k-1)) does not match its "
        "own overlapping model; the figure uses the correction stated in words (equal drop "
        "probability for every interior unit): seed probability gamma = 1 - theta^(1/r).",
        "- The synthetic X (100 x 1000) has no full column rank, so the Theorem 7 minimum is taken "
        "over X's row space (corrected Theorem 7).",
        "",
    ]
    write_text(path, "\n".join(lines))
    return path
