"""`dkp export-metrics`: an existing run's metrics.jsonl (and sample overlays) as TensorBoard event files."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from dkp_tui.commands.common import console, guarded, print_json
from dkp_tui.commands.help_text import command_help
from dkp_tui.errors import DkpError

EXAMPLES = """
Examples:

  dkp export-metrics runs/demo/student --tensorboard tb/         # tb/student/

  dkp export-metrics runs/demo/teacher runs/demo/student --tensorboard tb/ && tensorboard --logdir tb/
"""


def run_names(runs: list[Path]) -> list[str]:
    """One sub-directory per run, named by the path below the runs' common parent (teacher, student; or
    a/student, b/student when only the parents differ)."""
    resolved = [r.resolve() for r in runs]
    if len(resolved) == 1:
        return [resolved[0].name]
    common = Path(os.path.commonpath([str(r.parent) for r in resolved]))
    names = [str(r.relative_to(common)) for r in resolved]
    if len(set(names)) != len(names):
        raise DkpError("the same run is given twice")
    return names


def _export_metrics_command(
    runs: list[Path] = typer.Argument(..., help="Run directories (each with a metrics.jsonl)."),
    tensorboard: Path = typer.Option(..., "--tensorboard", help="Log directory to write (one sub-folder per run)."),
    json_out: bool = typer.Option(False, "--json", help="Print what was converted as JSON on stdout."),
) -> None:
    """Convert runs' metrics.jsonl and samples/ overlays into TensorBoard event files.

    The same tags as a run trained with --set train.tensorboard=true: every loss term, lr, images/s, edge-weight
    statistics and the keypoint overlays, at the steps of metrics.jsonl. Needs the `tensorboard` extra.
    """
    from dkp_tui.train.tensorboard import convert_run

    results = [convert_run(run, tensorboard / name) for run, name in zip(runs, run_names(runs), strict=True)]
    if json_out:
        print_json(results)
        return
    for r in results:
        console.print(f"{r['run']}: {r['steps']} steps, {r['images']} images → {r['out']}")
    console.print(f"view with: tensorboard --logdir {tensorboard}")


def register(app: typer.Typer) -> None:
    app.command("export-metrics", help=command_help(_export_metrics_command.__doc__, EXAMPLES))(
        guarded(_export_metrics_command))
