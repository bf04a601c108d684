"""The one home of progress display: what ``progress=`` means, and every way it is shown.

- :func:`progress_delay`: validates ``progress=`` (the same meaning in every public function).
- :func:`progress_bar`: a tqdm bar on stderr for passes over data, runs, batches, figures (or
  :class:`NoBar` when progress is off).
- :class:`ProgressLine`: one updating line on stderr for the C++ engine's step callback (called
  with the GIL held, a few times a second; tqdm is not needed).
- :func:`dask_progress`: dask's own bar around a ``dask.compute`` of a task graph.
"""

from __future__ import annotations

import contextlib
import math
import numbers
import sys
import time
from collections.abc import Iterator
from typing import Any, Protocol

import numpy as np

__all__ = [
    "NoBar",
    "ProgressBar",
    "ProgressLine",
    "dask_progress",
    "progress_bar",
    "progress_delay",
]


class ProgressBar(Protocol):
    """What the data passes use of a bar: a tqdm bar or :class:`NoBar`."""

    def update(self, n: int = 1) -> object: ...

    def close(self) -> None: ...


class NoBar:
    """Stand-in for a tqdm bar when progress is off."""

    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> NoBar:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def progress_delay(progress: object, name: str = "progress") -> float | None:
    """Validate the ``progress`` argument of a public function; return its delay in seconds.

    The one meaning of ``progress`` in every public function that takes it:

    - ``False``: no progress display.
    - ``True``: a display from the start (the default delay, 0 seconds).
    - a number >= 0: a display that appears only once the call has run that many seconds (short
      calls stay quiet); ``progress=1`` waits one second, ``progress=0`` is ``True``.

    Anything else is an error naming the argument: a TypeError for a value of another type
    (a string, None, ...), a ValueError for a negative, NaN or infinite number.

    Returns:
        None for no display, else the delay in seconds.

    Raises:
        TypeError: ``progress`` is neither a bool nor a real number.
        ValueError: ``progress`` is a negative, NaN or infinite number.

    Example:
        >>> progress_delay(True), progress_delay(2), progress_delay(False)
        (0.0, 2.0, None)
    """
    # bool first: it is an int subclass, and True is not "1 second"
    if isinstance(progress, (bool, np.bool_)):
        return 0.0 if progress else None
    if not isinstance(progress, (numbers.Real, np.integer, np.floating)):
        raise TypeError(
            f"{name} must be a bool or a delay in seconds >= 0 (a number), got {progress!r}"
        )
    delay = float(progress)
    if not (math.isfinite(delay) and delay >= 0.0):
        raise ValueError(f"{name} must be a bool or a finite delay in seconds >= 0, got {delay}")
    return delay


def progress_bar(
    total: int | None,
    desc: str,
    delay: float | None,
    unit: str = "it",
    unit_scale: bool = False,
) -> Any:
    """A tqdm bar on stderr shown after ``delay`` seconds, or :class:`NoBar` when ``delay`` is None
    (the two values :func:`progress_delay` returns).

    ``unit_scale`` prints large counts with SI prefixes (1.2M samples); leave it off for small
    counts. tqdm is imported only here, when a bar is asked for.
    """
    if delay is None:
        return NoBar()
    from tqdm import tqdm

    return tqdm(
        total=total,
        desc=desc,
        unit=unit,
        file=sys.stderr,
        leave=True,
        dynamic_ncols=True,
        unit_scale=unit_scale,
        delay=delay,
    )


class ProgressLine:
    """Prints one updating progress line to stderr: ``line(done, total)`` (steps), from ``delay``
    seconds after it was made on (a short run stays quiet); the line ends once done == total."""

    def __init__(self, label: str, delay: float = 0.0) -> None:
        self.label = label
        self.delay = delay
        self.start = time.perf_counter()
        self.closed = False

    def __call__(self, done: int, total: int) -> None:
        elapsed = time.perf_counter() - self.start
        if self.closed or elapsed < self.delay:
            return
        fraction = done / total if total else 1.0
        eta = elapsed * (1 - fraction) / fraction if fraction > 0 else float("nan")
        line = (
            f"\r{self.label}: {100 * fraction:5.1f}% "
            f"({done}/{total} steps, {elapsed:.1f} s, ETA {eta:.1f} s)"
        )
        if done >= total:
            line = f"\r{self.label}: done, {total} steps in {elapsed:.2f} s" + " " * 20 + "\n"
            self.closed = True
        sys.stderr.write(line)
        sys.stderr.flush()


@contextlib.contextmanager
def dask_progress(delay: float | None) -> Iterator[None]:
    """Dask's local progress bar (``dask.diagnostics.ProgressBar``, stderr) around the
    ``dask.compute`` calls in the block, shown after ``delay`` seconds; nothing when None. (A
    distributed cluster shows progress on its dashboard instead.)"""
    if delay is None:
        yield
        return
    from dask.diagnostics import ProgressBar as DaskBar

    with DaskBar(minimum=delay, out=sys.stderr):
        yield
