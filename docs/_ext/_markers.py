"""Shared by the local extensions: find ```{name} ...``` marker blocks in a Markdown page.

The local extensions generate Markdown (API entries, the command-line reference, benchmark
tables) and splice it into the page at ``source-read``, in place of a fenced marker block::

    ```{structdrop-api} structdrop
    train
    train_many
    ```

Generating the page's source (rather than nodes inside a directive) lets the generated text use
headings and MyST's own parsing, and lets the tests call the generators without a Sphinx build.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Marker:
    """One marker block: its directive name, argument, ``:key: value`` options and body lines."""

    name: str
    argument: str
    options: dict[str, str]
    body: list[str]
    start: int  # offsets of the whole block in the page's text
    end: int


def _pattern(name: str) -> re.Pattern[str]:
    return re.compile(
        r"^(?P<fence>`{3,})\{" + re.escape(name) + r"\}[ \t]*(?P<arg>[^\n]*)\n"
        r"(?P<body>.*?)^(?P=fence)[ \t]*$",
        re.MULTILINE | re.DOTALL,
    )


def find_markers(text: str, name: str) -> Iterator[Marker]:
    """The marker blocks ```{name} ...``` of ``text``, in order."""
    for match in _pattern(name).finditer(text):
        options: dict[str, str] = {}
        body: list[str] = []
        for line in match.group("body").splitlines():
            option = re.match(r"^:([\w-]+):\s*(.*)$", line.strip())
            if option and not body:
                options[option.group(1)] = option.group(2).strip()
            elif line.strip():
                body.append(line.strip())
        yield Marker(
            name=name,
            argument=match.group("arg").strip(),
            options=options,
            body=body,
            start=match.start(),
            end=match.end(),
        )


def replace_markers(text: str, name: str, render) -> str:
    """``text`` with every ```{name}``` block replaced by ``render(marker)`` (a string)."""
    pieces = []
    position = 0
    for marker in find_markers(text, name):
        pieces.append(text[position : marker.start])
        pieces.append(render(marker))
        position = marker.end
    pieces.append(text[position:])
    return "".join(pieces)


_MARKDOWN_SPECIALS = re.compile(r"([\\`*_{}\[\]<>#|$~!])")


def escape_markdown(text: str) -> str:
    """``text`` with Markdown's (and MyST math's) special characters backslash-escaped."""
    return _MARKDOWN_SPECIALS.sub(r"\\\1", text)
