"""`python -m structdrop`: a demonstration on the built-in example."""

from __future__ import annotations

import sys

from .demo import run_demo


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] in ("-h", "--help"):
        print("usage: python -m structdrop\n\nRuns a short demonstration on the paper's synthetic setup.")
        return 0
    if args:
        print(f"python -m structdrop: unexpected arguments {' '.join(args)!r} (try --help)", file=sys.stderr)
        return 2
    run_demo()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
