"""The `dkp` Typer app: one thin command per verb, each in ``dkp_tui/commands/<verb>.py``.

Each command module exposes ``register(app)``; this file only assembles them, so that commands can be developed
and tested independently and ``dkp --help`` stays fast (heavy imports happen inside the commands).
"""

from __future__ import annotations

import importlib

import typer

from dkp_tui.commands.help_text import command_help
from dkp_tui.version import __version__

COMMANDS = ("prepare", "depth", "train", "eval", "joints", "infer", "export", "export_metrics", "sweep", "watch",
            "bench", "doctor", "outliers")

app = typer.Typer(
    name="dkp",
    help=command_help(
        "Distill-DKP: self-supervised human keypoints, distilled from a depth teacher into an RGB student.",
        "Typical session on the built-in data:\n\n"
        "  dkp prepare synthetic --preset synthetic-cpu\n\n"
        "  dkp train --teacher depth --preset synthetic-cpu --run runs/teacher\n\n"
        "  dkp train --preset synthetic-cpu --teacher-run runs/teacher --run runs/student\n\n"
        "  dkp eval runs/student",
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"dkp {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """Distill-DKP keypoints in the terminal."""


for _name in COMMANDS:
    try:
        _module = importlib.import_module(f"dkp_tui.commands.{_name}")
    except ModuleNotFoundError as _err:  # a verb not built yet
        if _err.name != f"dkp_tui.commands.{_name}":
            raise
        continue
    _module.register(app)


def main() -> None:
    app(prog_name="dkp")


if __name__ == "__main__":
    main()
