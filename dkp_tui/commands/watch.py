"""`dkp watch`: the live training dashboard, or one snapshot of it with --once."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from dkp_tui.commands.common import guarded, print_json
from dkp_tui.commands.help_text import command_help

HELP = """Live dashboard of training runs: loss curves, edge weights, α, lr, speed, ETA, keypoint overlays, CPU/GPU.

RUN_OR_DIR is one run directory or a directory of runs (searched 3 levels deep). The dashboard only reads, so it is safe on a run that is training.

Examples:

  dkp watch runs/student

  dkp watch runs   # every run under runs/: arrow keys switch, c compares two

  dkp watch runs --once   # one text snapshot, for logs and scripts

  dkp watch runs --once --json
"""


def register(app: typer.Typer) -> None:
    @app.command("watch", help=command_help(HELP))
    @guarded
    def watch(
        path: Path = typer.Argument(
            Path("."), metavar="RUN_OR_DIR", help="A run directory or a directory of runs."
        ),
        once: bool = typer.Option(
            False, "--once", help="Print one snapshot and exit instead of the live dashboard."
        ),
        json_out: bool = typer.Option(False, "--json", help="With --once: the snapshot as JSON on stdout."),
        width: int = typer.Option(
            100, "--width", min=40, max=400, help="With --once: text width in columns."
        ),
        images: str = typer.Option(
            "auto", "--images", help="auto (real pixels on kitty/sixel/iTerm, else half-blocks) or halfcell."
        ),
    ) -> None:
        from dkp_tui.errors import DkpError

        if images not in ("auto", "halfcell"):
            raise DkpError(f"--images must be auto or halfcell, not {images!r}")
        if json_out and not once:
            raise DkpError("--json needs --once (the live dashboard is for people)")
        if once:
            from rich.console import Console

            from dkp_tui.watch.once import load_state, snapshot_dict, snapshot_renderable
            from dkp_tui.watch.sysstats import SystemSampler

            if json_out:
                print_json(snapshot_dict(path))
                return
            sampler = SystemSampler()
            state = load_state(path, time.time)
            Console(width=width).print(snapshot_renderable(state, sampler(), width))
            sampler.close()
            return
        from dkp_tui.watch.app import run_dashboard

        run_dashboard(path, image_mode=images)
