"""The command-line page (docs/cli.md) shows every option of every subcommand, with its help.

The generated Markdown is checked against the parsers themselves: each subcommand has its
section, and each option string (and each positional argument) appears there as an ``option``
entry followed by its help text.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import numpy as np

DOCS = Path(__file__).resolve().parents[2] / "docs"
sys.path.insert(0, str(DOCS / "_ext"))

import structdrop_cli  # noqa: E402

from structdrop.cli import COMMANDS, build_parser  # noqa: E402


def sections(text: str) -> dict[str, str]:
    """The generated text split at its headings, by heading title."""
    parts = re.split(r"^## `([^`]+)`\n", text, flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2]))


def test_the_page_uses_the_generator():
    page = (DOCS / "cli.md").read_text()
    assert "```{structdrop-cli} structdrop.cli:build_parser\n```" in page


def test_every_option_of_every_subcommand_is_documented():
    parser = build_parser()
    text = sections(
        structdrop_cli.render(structdrop_cli.load_parser("structdrop.cli:build_parser"))
    )
    subcommands = structdrop_cli.subcommands(parser)
    assert sorted(subcommands) == sorted(module.NAME for module in COMMANDS)
    assert set(text) == {"structdrop"} | {f"structdrop {name}" for name in subcommands}
    for name, child in subcommands.items():
        section = text[f"structdrop {name}"]
        entries = re.findall(r"^```\{option\} (.*)\n(.*)\n```", section, flags=re.MULTILINE)
        invocations = [invocation for invocation, _ in entries]
        for action in child._actions:
            if action.help == argparse.SUPPRESS:
                continue
            names = action.option_strings or [action.metavar or action.dest]
            matching = [body for invocation, body in entries if all(n in invocation for n in names)]
            assert matching, f"structdrop {name}: {names} missing from {invocations}"
            if action.help:
                first_words = " ".join(action.help.split()[:3])
                plain = matching[0].replace("\\", "")
                assert first_words.replace("%%", "%") in plain, (names, matching[0])
        assert f"```{{program}} structdrop {name}\n```" in section
        assert child.format_usage().strip() in section


def test_new_options_appear_without_editing_the_page():
    parser = argparse.ArgumentParser(prog="tool")
    sub = parser.add_subparsers(dest="command")
    child = sub.add_parser("run", help="run it")
    child.add_argument("--level", type=int, default=3, help="how far (*not* |far|)")
    child.add_argument("--mode", choices=("a", "b"), required=True, help="which")
    text = sections(structdrop_cli.render(parser))
    run = text["tool run"]
    assert "```{option} --level LEVEL\nhow far (\\*not\\* \\|far\\|). Default: `3`.\n```" in run
    assert "```{option} --mode {a,b}\nwhich. Required. Choices: `a`, `b`.\n```" in run
    # A default the help states already is not repeated; an array default is not printed.
    child.add_argument("--n", type=int, default=5, help="count (default 5)")
    child.add_argument("--grid", default=np.arange(3), help="the grid")
    run = sections(structdrop_cli.render(parser))["tool run"]
    assert "```{option} --n N\ncount (default 5).\n```" in run
    assert "```{option} --grid GRID\nthe grid.\n```" in run
