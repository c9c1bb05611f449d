"""`dkp bench`: training images/s, peak memory, rasteriser, loader and depth-cache speed on this machine."""

from __future__ import annotations

import typer

from dkp_tui.commands.common import console, guarded, print_json
from dkp_tui.commands.help_text import command_help

EXAMPLES = """
Examples:

  dkp bench --preset synthetic-cpu                    # about a minute on 2 CPU cores

  dkp bench --preset synthetic-cpu --json > bench.json

  dkp bench --preset h36m --device cuda               # the paper's step: 128 px, K = 16, VGG16 at 224, batch 64

  dkp bench --preset h36m --device cuda --set train.compile=true

  dkp bench --preset h36m --device cpu --batch 8 --steps 2 --no-dense
"""


def _bench_command(
    preset: str = typer.Option("synthetic-cpu", "--preset", "-p", help="Preset name or TOML path to measure."),
    device: str = typer.Option("", "--device", help="auto | cpu | cuda | mps (default: the preset's train.device)."),
    steps: int = typer.Option(0, "--steps", min=0, help="Timed training steps per role (0: about 4 s each)."),
    batch: int | None = typer.Option(None, "--batch", min=1, help="Override train.batch_size (global batch)."),
    set_: list[str] = typer.Option([], "--set", "-s", help="Override a config field: section.key=value."),
    teacher_only: bool = typer.Option(False, "--teacher-only", help="Time only the teacher step."),
    dense: bool = typer.Option(True, "--dense/--no-dense",
                               help="Also time the dense reference rasteriser (slow at K = 32 on CPU)."),
    json_out: bool = typer.Option(False, "--json", help="Print every figure as JSON on stdout."),
    quick: bool = typer.Option(False, "--quick", help="Smoke run: every field, rough figures, a few seconds."),
) -> None:
    """Measure this machine: training images/s (teacher and student steps) and peak memory, the edge-map
    rasteriser (fast vs dense) for K = 10/16/32, data-loader and depth-cache images/s.

    It builds a small synthetic data set in a temporary directory and uses random VGG16 weights: no data needed.
    """
    from dkp_tui.experiments.bench import render_tables, run_bench

    roles = ("teacher",) if teacher_only else ("teacher", "student")
    if json_out:
        result = run_bench(preset, device, steps, batch, list(set_), roles=roles, dense=dense, quick=quick)
        print_json(result)
        return
    with console.status("dkp bench") as status:
        result = run_bench(preset, device, steps, batch, list(set_), roles=roles, dense=dense, quick=quick,
                           progress=lambda msg: status.update(f"dkp bench: {msg}"))
    console.print(render_tables(result))


def register(app: typer.Typer) -> None:
    app.command("bench", help=command_help(_bench_command.__doc__, EXAMPLES))(
        guarded(_bench_command))
