"""The ``structdrop`` command line (also ``python -m structdrop``).

Subcommands are small modules in this package, each with ``NAME``, ``HELP``, ``DESCRIPTION``,
``EPILOG``, ``add_arguments(parser)`` and ``run(args) -> int``; they are registered in one place,
:data:`COMMANDS` below. With no arguments the command runs the demonstration.

Errors a user can cause (bad arguments, unreadable files, invalid values) print one line to stderr
and exit with code 2; set ``STRUCTDROP_DEBUG=1`` to see the traceback instead.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from . import demo, reproduce, solve, sweep
from ._common import CliError, MissingDependency, Parser

__all__ = ["COMMANDS", "build_parser", "main"]

#: The subcommands, in the order ``--help`` lists them. Add a module here to add a subcommand.
COMMANDS = (solve, sweep, reproduce, demo)


def build_parser() -> argparse.ArgumentParser:
    """The parser of the ``structdrop`` command, with one subparser per module of :data:`COMMANDS`.

    Returns:
        argparse.ArgumentParser: its errors print one line and exit with code 2; a parsed
        command carries the function that runs it (``args._run``).

    Raises:
        Nothing: building the parser reads no file and no option.

    Example:
        >>> from structdrop.cli import build_parser
        >>> args = build_parser().parse_args(["solve", "Y.npy", "-r", "2", "--theta", "0.5"])
        >>> args.command, args.Y
        ('solve', 'Y.npy')
    """
    from .. import __version__

    parser = Parser(
        prog="structdrop",
        description=(
            "Exact mathematics of structured dropout (Pal, Lane, Vidal, Haeffele, CVPR 2020, "
            "corrected): closed-form global minima and the paper's figures. With no arguments: a "
            "short demonstration."
        ),
        epilog="Run 'structdrop COMMAND --help' for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"structdrop {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for module in COMMANDS:
        child = sub.add_parser(
            module.NAME,
            help=module.HELP,
            description=module.DESCRIPTION,
            epilog=module.EPILOG or None,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(child)
        child.set_defaults(_run=module.run)
    return parser


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``; none: the demonstration).

    Args:
        argv: the arguments after ``structdrop``, as a list of strings.

    Returns:
        int: the exit code: 0 on success, 2 for a user error (printed as one line on stderr: bad
        arguments, unreadable files, invalid values, a missing optional dependency), 130 when
        interrupted.

    Raises:
        Exception: only with ``STRUCTDROP_DEBUG=1``, which re-raises a user error with its
            traceback instead of printing one line; errors that are not the user's (bugs)
            propagate.

    Example:
        >>> from structdrop.cli import main
        >>> main(["solve", "no-such-file.npy", "-r", "2", "--theta", "0.5"])  # one line on stderr
        2
    """
    args_list = list(sys.argv[1:] if argv is None else argv)
    if not args_list:
        args_list = ["demo"]
    parser = build_parser()
    try:
        args = parser.parse_args(args_list)
    except SystemExit as exc:  # --help, --version and argument errors
        return int(exc.code or 0) if not isinstance(exc.code, str) else 2
    if getattr(args, "_run", None) is None:
        parser.print_help()
        return 2
    prog = f"structdrop {args.command}"
    debug = os.environ.get("STRUCTDROP_DEBUG", "") not in ("", "0")
    try:
        return int(args._run(args))
    except KeyboardInterrupt:
        sys.stderr.write(f"{prog}: interrupted\n")
        return 130
    except (CliError, MissingDependency, ValueError, TypeError, OSError) as exc:
        if debug:
            raise
        sys.stderr.write(f"{prog}: error: {_one_line(exc)}\n")
        return 2
