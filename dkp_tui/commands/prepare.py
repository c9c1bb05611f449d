"""`dkp prepare SOURCE ...`: one sub-command per source, each registered from its own module."""

from __future__ import annotations

import importlib

import typer

from dkp_tui.commands.help_text import command_help

SOURCES = ("synthetic", "taichi", "h36m", "deepfashion", "folder")

prepare_app = typer.Typer(
    help=command_help(
        "Turn raw downloads, your own images/videos, or the built-in generator into a dkp data set.",
        "Examples:\n\n"
        "  dkp prepare synthetic --preset synthetic-cpu\n\n"
        "  dkp prepare folder ~/videos/dance --out data/dance --fps 5",
    ),
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    for source in SOURCES:
        try:
            module = importlib.import_module(f"dkp_tui.commands.prepare_{source}")
        except ModuleNotFoundError as err:
            if err.name != f"dkp_tui.commands.prepare_{source}":
                raise
            continue
        module.register(prepare_app)
    app.add_typer(prepare_app, name="prepare")
