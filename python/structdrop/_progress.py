"""Progress bars on stderr for long passes over data (tqdm), or a no-op stand-in."""

from __future__ import annotations

import math
import numbers
import sys
from typing import Any, Protocol

import numpy as np

__all__ = ["NoBar", "ProgressBar", "progress_bar", "progress_delay"]


class ProgressBar(Protocol):
    """What the data passes use of a bar: a tqdm bar or :class:`NoBar`."""

    def update(self, n: int = 1) -> object: ...

    def close(self) -> None: ...


class NoBar:
    """Stand-in for a tqdm bar when progress is off."""

    def update(self, n: int = 1) -> None:
        pass

    def set_postfix_str(self, text: str, refresh: bool = True) -> None:
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
    enabled: bool,
    unit: str = "it",
    delay: float = 0.0,
    unit_scale: bool = True,
) -> Any:
    """A tqdm bar on stderr (shown only after ``delay`` seconds), or :class:`NoBar` when disabled.

    ``unit_scale`` prints large counts with SI prefixes (1.2M samples); turn it off for
    small counts.
    """
    if not enabled:
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
