"""``python -m structdrop``: with no arguments a short demonstration; with arguments the
command line.

``python -m structdrop solve Y.npy --block-size 5 --theta-bar 0.5`` is ``structdrop solve ...``.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    from .cli import main as cli_main

    return cli_main(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    raise SystemExit(main())
