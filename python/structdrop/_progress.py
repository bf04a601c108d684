"""Progress bars on stderr for long passes over data (tqdm), or a no-op stand-in."""

from __future__ import annotations

import sys
from typing import Any, Protocol

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


def progress_delay(progress: bool | float) -> float | None:
    """The ``progress`` argument of the data passes: False (None here: no bar), True (a bar at
    once) or a number of seconds after which a bar appears (short passes stay quiet)."""
    if progress is False or progress is None:
        return None
    if progress is True:
        return 0.0
    delay = float(progress)
    if not delay >= 0.0:
        raise ValueError(
            f"progress must be True, False or a delay in seconds >= 0, got {progress!r}"
        )
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
