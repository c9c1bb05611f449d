"""`dkp doctor`: one command that says what in this environment is off for the config in hand, and how to fix it."""

from __future__ import annotations

from pathlib import Path

import typer

from dkp_tui.commands.common import guarded, print_json
from dkp_tui.commands.help_text import command_help

EXAMPLES = """
Examples:

  dkp doctor                                  # the default config

  dkp doctor --preset synthetic-cpu --json    # machine-readable; exit 1 when something it needs is missing

  dkp doctor --preset h36m --set train.device=cuda --runs /scratch/runs
"""


def _doctor_command(
    preset: str = typer.Option("", "--preset", "-p", help="Preset name or TOML path whose needs are checked."),
    set_: list[str] = typer.Option([], "--set", "-s", help="Override a config field: section.key=value (repeatable)."),
    runs: Path = typer.Option(Path("runs"), "--runs", help="Where runs will be written (must be writable)."),
    json_out: bool = typer.Option(False, "--json", help="The findings as JSON on stdout."),
) -> None:
    """Check Python, torch, CUDA/MPS devices, threads, the optional extras, where each weight file is looked up and
    whether it is there, and the data and run folders.

    A finding the config needs (the VGG16 weights for a VGG loss, the device it names, a writable run folder, MiDaS
    when its data set has no depth cache yet, ...) that is not there makes the exit code 1, and the report gives the
    one-line fix. Exit 0 means the config can run here; a bad --preset or --set is exit 2.
    """
    from dkp_tui.config import load_config
    from dkp_tui.doctor import diagnose

    cfg = load_config(preset or None, list(set_))
    findings = diagnose(cfg, runs)
    blocking = [f for f in findings if f.blocking]
    if json_out:
        print_json({"ok": not blocking, "preset": preset or None, "findings": [f.to_dict() for f in findings]})
    else:
        _print_report(findings)
    if blocking:
        raise typer.Exit(1)


def _print_report(findings: list) -> None:
    from rich.console import Console
    from rich.markup import escape

    out = Console(highlight=False, soft_wrap=True)  # long paths stay whole, for copying
    section = ""
    for f in findings:
        if f.section != section:
            section = f.section
            out.print(f"[bold]{section}[/]")
        mark = "[green]ok[/]  " if f.ok else ("[red]FAIL[/]" if f.needed else "[dim]--[/]  ")
        out.print(f"  {mark} {escape(f.name)}: {escape(f.detail)}")
        if f.blocking:
            out.print(f"        [red]fix:[/] {escape(f.fix)}")
    blocking = [f for f in findings if f.blocking]
    out.print(f"[red]{len(blocking)} thing(s) this config needs cannot work here[/]" if blocking
              else "[green]this config can run here[/]")


def register(app: typer.Typer) -> None:
    app.command("doctor", help=command_help(_doctor_command.__doc__, EXAMPLES))(guarded(_doctor_command))
