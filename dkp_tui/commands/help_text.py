"""Command help as paragraphs: docstrings are wrapped for the source file, the terminal wraps them again.

Typer (rich mode) keeps every single line break inside a paragraph, so a docstring wrapped at 110 columns comes out
at 80 columns as a full line followed by a stub, cutting sentences in half. ``command_help`` joins each prose
paragraph into one line and lets the terminal wrap it; example blocks (indented lines) keep one command per line,
with a trailing ``# comment`` moved onto its own line above the command, and a command too long for 80 columns
continued on the next line at an option (a shell ``\\`` continuation, so it still pastes and runs).
"""

from __future__ import annotations

import inspect
import re
import textwrap

WIDTH = 80  # the narrowest terminal the examples are laid out for
_MARGIN = 4  # rich's left pad, the continuation's " \\" and a spare column
_COMMENT = re.compile(r"^(?P<indent>\s+)(?P<command>\S.*?)\s{2,}#\s*(?P<comment>.+)$")


def _continued(indent: str, command: str) -> list[str]:
    """A command longer than the width, broken before its options into ``\\``-continued lines."""
    words = re.split(r" (?=--?\w)", command)
    lines, current = [], words[0]
    for word in words[1:]:
        if len(indent) + len(current) + 1 + len(word) > WIDTH - _MARGIN:
            lines.append(current + " \\")
            current = "    " + word
        else:
            current += " " + word
    return [indent + line for line in [*lines, current]]


def _example_lines(line: str) -> list[str]:
    """``  dkp infer x --overlay out/   # a note`` -> the note above the command, both at the block's indent."""
    match = _COMMENT.match(line)
    if match is None:
        indent = line[: len(line) - len(line.lstrip())]
        return _continued(indent, line.strip())
    indent = match["indent"]
    return [f"{indent}# {match['comment'].strip()}", *_continued(indent, match["command"].rstrip())]


def paragraphs(text: str) -> str:
    """Prose paragraphs joined into single lines; indented blocks (examples) kept line by line."""
    out = []
    for block in textwrap.dedent(text).split("\n\n"):
        lines = [line for line in block.splitlines() if line.strip()]
        if not lines:
            continue
        if all(line.startswith((" ", "\t")) for line in lines):
            out.append("\n".join(part for line in lines for part in _example_lines(line)))
        else:
            out.append(" ".join(line.strip() for line in lines))
    return "\n\n".join(out)


def command_help(doc: str | None, examples: str = "") -> str:
    """A command's help from its docstring and its examples block, ready for ``app.command(help=...)``.

    Typer dedents everything after the first paragraph as one block (``inspect.cleandoc``, which skips the block's
    first line when measuring the indent): when that block opens with "Examples:" and only indented commands follow,
    the commands lose their indent. An empty line at the block's start (three line breaks after the first paragraph)
    makes the heading count, and the empty line itself is trimmed away by the same dedent.
    """
    # a docstring's first line carries no indent (cleandoc); an examples string is indented as a whole (dedent)
    text = paragraphs(inspect.cleandoc(doc or "") + "\n\n" + textwrap.dedent(examples).strip("\n"))
    first, _, rest = text.partition("\n\n")
    return f"{first}\n\n\n{rest}" if rest else first
