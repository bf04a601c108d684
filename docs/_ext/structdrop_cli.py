"""Sphinx extension: the command-line reference generated from the argparse parsers.

docs/cli.md holds one marker block::

    ```{structdrop-cli} structdrop.cli:build_parser
    ```

which becomes, for the top-level parser and every subcommand, its usage line, description, every
option (``program``/``option`` entries, so ``{option}`` references work) with its help, default and
choices, and the examples of its epilog. Nothing is copied by hand: a new option or subcommand
appears at the next build. ``tests/docs/test_docs_cli.py`` checks that every option string of every
subcommand is in the generated text.
"""

from __future__ import annotations

import argparse
import importlib
from typing import Any

from _markers import escape_markdown, replace_markers

MARKER = "structdrop-cli"


def load_parser(spec: str) -> argparse.ArgumentParser:
    """The parser made by ``module:function`` (the function takes no argument)."""
    module_name, _, function = spec.partition(":")
    if not module_name or not function:
        raise ValueError(f"expected 'module:function', got {spec!r}")
    return getattr(importlib.import_module(module_name), function)()


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The subcommand parsers of ``parser`` by name, in the order ``--help`` lists them."""
    found: dict[str, argparse.ArgumentParser] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            found.update(action.choices)
    return found


def _fenced(text: str, language: str = "text") -> str:
    fence = "````" if "```" in text else "```"
    return f"{fence}{language}\n{text.rstrip()}\n{fence}\n"


def _option(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    formatter = parser._get_formatter()
    if action.option_strings:
        invocation = formatter._format_action_invocation(action)
    else:  # a positional argument by its name (argparse shows its choices instead)
        invocation = action.metavar or action.dest
    facts = []
    if action.help:
        text = formatter._expand_help(action).strip()
        facts.append(escape_markdown(text if text.endswith((".", "!", "?")) else text + "."))
    if action.option_strings and action.required:
        facts.append("Required.")
    if action.choices is not None and not isinstance(action, argparse._SubParsersAction):
        facts.append("Choices: " + ", ".join(f"`{choice}`" for choice in action.choices) + ".")
    takes_value = action.nargs != 0 and action.option_strings
    default = action.default
    # Shown when the help does not state it already; only plain values (a parsed range's array
    # of 91 numbers says less than the help's "default 0.05:0.95:91").
    plain = isinstance(default, (str, int, float)) and default != argparse.SUPPRESS
    stated = "default" in (action.help or "").lower()
    if takes_value and not action.required and plain and not stated:
        facts.append(f"Default: `{str(default).replace('`', chr(39))}`.")
    body = " ".join(facts) if facts else ""
    return f"```{{option}} {invocation}\n{body}\n```\n"


def _section(title: str, parser: argparse.ArgumentParser, level: int, summary: str | None) -> str:
    parts = [f"{'#' * level} `{title}`\n"]
    if summary:
        parts.append(escape_markdown(summary[:1].upper() + summary[1:]) + ".\n")
    parts.append(_fenced(parser.format_usage().strip()))
    if parser.description:
        parts.append(_fenced(parser.description))
    actions = [
        action
        for action in parser._actions
        if action.help != argparse.SUPPRESS and not isinstance(action, argparse._SubParsersAction)
    ]
    if actions:
        parts.append(f"```{{program}} {title}\n```\n")
        parts.extend(_option(parser, action) for action in actions)
    if parser.epilog:
        parts.append(_fenced(parser.epilog))
    return "\n".join(parts)


def render(parser: argparse.ArgumentParser, level: int = 2) -> str:
    """Markdown reference of ``parser`` and of each of its subcommands (one heading each)."""
    prog = parser.prog
    parts = [_section(prog, parser, level, None)]
    helps: dict[str, Any] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help for choice in action._choices_actions}
    for name, child in subcommands(parser).items():
        parts.append(_section(f"{prog} {name}", child, level, helps.get(name)))
    return "\n".join(parts)


def _on_source_read(app, docname: str, source: list[str]) -> None:
    if f"{{{MARKER}}}" in source[0]:
        source[0] = replace_markers(
            source[0], MARKER, lambda marker: render(load_parser(marker.argument))
        )


def setup(app) -> dict[str, Any]:
    app.connect("source-read", _on_source_read)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
