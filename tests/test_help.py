"""Every command's --help at 80 columns reads as paragraphs: lines break only where the terminal must wrap."""

from __future__ import annotations

import pytest
import typer.main
from typer.testing import CliRunner

from dkp_tui.cli import app
from dkp_tui.commands.help_text import command_help, paragraphs

WIDTH = 80


def _commands() -> dict[str, object]:
    """Every command and group of the app by its argv prefix: "", "prepare", "prepare synthetic", ..."""
    found: dict[str, object] = {}

    def walk(cmd: object, prefix: list[str]) -> None:
        found[" ".join(prefix)] = cmd
        for name, sub in getattr(cmd, "commands", {}).items():  # a group (typer's own click)
            walk(sub, [*prefix, name])

    walk(typer.main.get_command(app), [])
    return found


def _command_paths() -> list[list[str]]:
    return [name.split() for name in _commands()]


def _description(text: str) -> list[str]:
    """The help's prose and examples: the lines between the usage line and the first option box."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith("Usage:")) + 1
    end = next((i for i, line in enumerate(lines) if line.lstrip().startswith("╭")), len(lines))
    return [line.rstrip() for line in lines[start:end]]


def test_every_command_is_walked():
    names = set(_commands())
    assert {"infer", "prepare synthetic", "prepare folder", "joints fit", "watch"} <= names


@pytest.mark.parametrize("path", _command_paths(), ids=lambda p: "-".join(p))
def test_help_wraps_only_at_the_terminal_edge(path: list[str]):
    result = CliRunner().invoke(
        app, [*path, "--help"], env={"COLUMNS": str(WIDTH), "TERMINAL_WIDTH": str(WIDTH)}
    )
    assert result.exit_code == 0, result.output
    body = _description(result.output)
    assert any(line.strip() for line in body), f"dkp {' '.join(path)} --help has no description"
    examples = [
        line.strip()
        for line in (_commands()[" ".join(path)].help or "").splitlines()
        if line.startswith(" ") and line.strip().startswith("dkp ")
    ]
    for example in examples:  # example commands stand out from the prose (rich pads every line by one column)
        shown = next(line for line in body if line.strip() == example)
        assert shown.startswith("   "), f"example not indented in `dkp {' '.join(path)} --help`: {shown!r}"
    for line, following in zip(body, body[1:], strict=False):
        assert len(line) <= WIDTH, line
        text, nxt = line.strip(), following.strip()
        if (
            not text
            or not nxt
            or text.startswith(("#", "dkp "))
            or text.endswith("\\")
            or nxt.startswith("#")
        ):
            continue  # paragraph ends, example commands and their notes
        # a prose line followed by more of the same paragraph must be full: the next word would not have fitted
        assert len(line) + 1 + len(nxt.split()[0]) > WIDTH - 2, (
            f"line cut short in `dkp {' '.join(path)} --help`:\n{line}\n{following}"
        )


def test_paragraphs_join_prose_and_keep_examples():
    doc = """First sentence runs
    onto a second line.

    Second paragraph,
    also wrapped.
    """
    examples = """
Examples:

  dkp infer runs/student photo.jpg

  dkp infer runs/student clip.mp4 --overlay out/   # a note
"""
    assert command_help(doc, examples) == (
        "First sentence runs onto a second line.\n\n\nSecond paragraph, also wrapped.\n\nExamples:\n\n"
        "  dkp infer runs/student photo.jpg\n\n  # a note\n  dkp infer runs/student clip.mp4 --overlay out/"
    )


def test_long_examples_continue_at_an_option():
    command = "dkp prepare synthetic --n-train 500 --n-fit 200 --n-test 100 --out /tmp/tiny --json --quiet"
    lines = paragraphs(f"Examples:\n\n  {command}").splitlines()[2:]
    assert len(lines) == 2 and lines[0].endswith(" \\") and lines[1].startswith("      --")
    assert all(len(line) <= WIDTH - 4 for line in lines)
    assert " ".join(line.rstrip("\\") for line in lines).split() == command.split()
