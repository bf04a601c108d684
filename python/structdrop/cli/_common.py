"""Shared pieces of the command line: errors, the argument parser, progress bars."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Mapping
from typing import NoReturn, TypeVar

from .._data.atomic_write import file_identity
from .._progress import progress_bar
from .._validation import MissingDependency

__all__ = [
    "CliError",
    "MissingDependency",
    "add_deprecated_alias",
    "add_strength_options",
    "deprecated_flag",
    "nonnegative_float",
    "warn_deprecated_flag",
    "Parser",
    "progress_bar",
    "positive_int",
    "probability",
    "refuse_outputs_onto_inputs",
]


T = TypeVar("T", int, float)


class CliError(Exception):
    """A user error: printed as one line, exit code 2."""


class Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors are one line (plus a hint), exit code 2."""

    def error(self, message: str) -> NoReturn:  # noqa: D401 - argparse API
        sys.stderr.write(f"{self.prog}: error: {message} (see '{self.prog} --help')\n")
        raise SystemExit(2)


def warn_deprecated_flag(old: str, new: str) -> None:
    """One line on stderr: ``old`` still works in this release, ``new`` is its 1.0 spelling."""
    sys.stderr.write(
        f"structdrop: {old} is deprecated and will be removed after structdrop 1.0; write {new}\n"
    )


def deprecated_flag(new: str) -> type[argparse.Action]:
    """An argparse action for an old option name: stores the value under the new option's
    destination and says so on stderr (the command goes on)."""

    class Deprecated(argparse.Action):
        def __call__(
            self,
            parser: argparse.ArgumentParser,
            namespace: argparse.Namespace,
            values: object,
            option_string: str | None = None,
        ) -> None:
            warn_deprecated_flag(str(option_string), new)
            setattr(namespace, self.dest, values)

    return Deprecated


def add_deprecated_alias(
    container: argparse._ActionsContainer,
    old: str,
    dest: str,
    kind: Callable[[str], object],
    new: str,
) -> None:
    """``old``, the option's name before 1.0: hidden from --help, stores into ``dest``."""
    container.add_argument(
        old, dest=dest, type=kind, action=deprecated_flag(new), help=argparse.SUPPRESS
    )


def add_strength_options(
    container: argparse._ActionsContainer,
    names: tuple[str, str],
    kinds: tuple[Callable[[str], object], Callable[[str], object]],
    helps: tuple[str, str],
    old: str | None = None,
) -> None:
    """The two spellings of a strength, ``names`` = (--THETA-BAR option, --BETA option), added to
    ``container`` (a mutually exclusive group), and ``old``, the first one's name before 1.0."""
    dests = [name.lstrip("-").replace("-", "_") for name in names]
    for name, dest, kind, text in zip(names, dests, kinds, helps):
        container.add_argument(
            name, dest=dest, type=kind, default=None, metavar=dest.upper(), help=text
        )
    if old is not None:
        add_deprecated_alias(container, old, dests[0], kinds[0], names[0])


def _argument_type(
    convert: Callable[[str], T], accept: Callable[[T], bool], expected: str, doc: str
) -> Callable[[str], T]:
    """An argparse type: ``convert`` the text, then refuse a value ``accept`` rejects, both with
    one line "expected <expected>, got ..."."""

    def parse(text: str) -> T:
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if not accept(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text}")
        return value

    parse.__doc__ = doc
    return parse


positive_int = _argument_type(int, lambda v: v >= 1, "a positive integer", "an integer >= 1")
nonnegative_int = _argument_type(int, lambda v: v >= 0, "a non-negative integer", "an integer >= 0")
nonnegative_float = _argument_type(
    float, lambda v: 0 <= v < math.inf, "a finite number >= 0", "a finite float >= 0"
)
positive_float = _argument_type(
    float, lambda v: 0 < v < math.inf, "a positive finite number", "a finite float > 0"
)
probability = _argument_type(
    float, lambda v: 0.0 < v <= 1.0, "a probability in (0, 1]", "a retain probability in (0, 1]"
)


def refuse_outputs_onto_inputs(
    inputs: Mapping[str, str | None], outputs: Mapping[str, str | None]
) -> None:
    """Raise :class:`CliError` when an output names an input file or another output.

    Paths are compared as files, not as strings: the same path spelt another way, a symbolic
    link to the file and a hard link of it all count (see ``file_identity``). Entries that are
    None (options not given) are skipped. Called before anything is read, so that a refused
    command has touched nothing.

    Raises:
        CliError: with both options and paths named.

    Example:
        >>> refuse_outputs_onto_inputs({"Y": "Y.npy"}, {"--out": "C.npy"})  # distinct: no error
    """
    seen = {file_identity(path): (name, path) for name, path in inputs.items() if path is not None}
    for name, path in outputs.items():
        if path is None:
            continue
        key = file_identity(path)
        if key in seen:
            other, other_path = seen[key]
            kind = "an input" if other in inputs else "another output"
            raise CliError(
                f"{name} '{path}' is the same file as {other} '{other_path}' ({kind}); "
                "choose another output path"
            )
        seen[key] = (name, path)
