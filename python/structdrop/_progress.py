"""Progress bars on stderr for long passes over data (tqdm), or a no-op stand-in."""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["NoBar", "progress_bar"]


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


def progress_bar(total: int | None, desc: str, enabled: bool, unit: str = "it", delay: float = 0.0) -> Any:
    """A tqdm bar on stderr (shown only after ``delay`` seconds), or :class:`NoBar` when disabled."""
    if not enabled:
        return NoBar()
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, leave=True, dynamic_ncols=True,
                unit_scale=True, delay=delay)
