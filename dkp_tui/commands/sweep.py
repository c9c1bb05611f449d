"""`dkp sweep`: train and evaluate the γ × KD-layer grid (the paper's Fig. 3); resumable."""

from __future__ import annotations

from pathlib import Path

import typer

from dkp_tui.commands import job_list_flags as flags
from dkp_tui.commands.common import console, guarded, print_json
from dkp_tui.commands.help_text import command_help

EXAMPLES = """
Examples:

  dkp sweep --preset synthetic-cpu --gamma 0.1,0.2,0.4,1.0 --kd-layer output,mid,early --set model.backbone=autolink

  dkp sweep --preset synthetic-cpu --gamma 0,0.1,0.4 --seeds 0,1,2 --out runs/sweep-cpu --json

  dkp sweep --preset h36m --gamma 0.1,0.4,1.0 --kd-layer output --teacher-run runs/h36m-teacher

  dkp sweep --preset h36m --gamma 0.1,0.2,0.4,1.0 --seeds 0,1,2 --launcher local --devices 0,1,2,3

  dkp sweep --preset h36m --gamma 0.1,0.2,0.4,1.0 --seeds 0,1,2 --launcher slurm --partition gpu --gpus-per-job 1 --time-limit 300 --sbatch qos=normal

  dkp sweep --preset h36m --gamma 0.1,0.2,0.4,1.0 --seeds 0,1,2 --collect   # table and plot of what finished
"""


def _sweep_command(
    preset: str = typer.Option(..., "--preset", "-p", help="Preset name or TOML path."),
    gamma: str = typer.Option("0.1,0.2,0.4,1.0", "--gamma", help="Comma-separated γ values (0 = image-only)."),
    kd_layer: str = typer.Option("", "--kd-layer", help="Comma-separated KD layers (default: output,mid,early; "
                                 "output,output_prob for a student on an ImageNet backbone, which has no hidden "
                                 "layers in common with its teacher)."),
    seeds: str = typer.Option("0", "--seeds", help="Comma-separated seeds, e.g. 0,1,2."),
    teacher_run: Path | None = typer.Option(None, "--teacher-run",
                                            help="Use this finished teacher for every point (else one per seed)."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Where the runs live (default runs/sweep-PRESET)."),
    set_: list[str] = typer.Option([], "--set", "-s", help="Override a config field: section.key=value."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda | mps."),
    batch_size: int = typer.Option(64, "--batch-size", min=1, help="Images per detector batch in evaluation."),
    launcher: str | None = flags.LAUNCHER,
    workers: int | None = flags.WORKERS,
    devices: str | None = flags.DEVICES,
    partition: str | None = flags.PARTITION,
    gpus_per_job: int | None = flags.GPUS_PER_JOB,
    cpus_per_job: int | None = flags.CPUS_PER_JOB,
    time_limit: int | None = flags.TIME_LIMIT,
    account: str | None = flags.ACCOUNT,
    sbatch: list[str] = flags.SBATCH,
    collect: bool = flags.COLLECT,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    json_out: bool = typer.Option(False, "--json", help="Print the grid as JSON on stdout."),
) -> None:
    """Train and score the γ × KD-layer grid (the paper's Fig. 3); resumable.

    Trains a distilled student for every (γ, KD layer) point, evaluates each, and prints the table with a
    terminal chart; the plot is written to OUT/sweep.png. Finished runs are reused. --launcher local or slurm
    trains the grid in parallel (see `dkp eval --help`); the table is written once every point has finished."""
    from dkp_tui.commands.eval import log_warnings_to_stderr
    from dkp_tui.experiments.sweep import (
        default_layers,
        parse_floats,
        parse_ints,
        parse_layers,
        run_sweep,
        table,
        terminal_chart,
    )

    gammas = parse_floats(gamma, "--gamma")
    layers = parse_layers(kd_layer or default_layers(preset, set_))
    seed_list = parse_ints(seeds, "--seeds")
    overrides = list(set_)
    if device != "auto":
        overrides.append(f'train.device="{device}"')
    out_dir = out or Path("runs") / f"sweep-{Path(preset).stem}"
    launch = flags.launch_from_flags(
        preset, overrides, launcher=launcher, workers=workers, devices=devices, partition=partition,
        gpus_per_job=gpus_per_job, cpus_per_job=cpus_per_job, time_limit=time_limit, account=account,
        sbatch=sbatch, collect=collect)
    with log_warnings_to_stderr():
        summary = run_sweep(preset, gammas, layers, seed_list, out_dir, overrides, teacher_run=teacher_run,
                            device=device, batch_size=batch_size, progress=not quiet, launch=launch,
                            note=flags.note)
    if json_out:
        print_json({"out": str(out_dir), **summary})
        return
    console.print(table(summary))
    console.print(terminal_chart(summary), highlight=False, markup=False)
    best = summary.get("best")
    if best:
        console.print(f"best: {best['layer']} at γ = {best['gamma']:g} ({best['mean']:.4g}); plot: {summary['plot']}")


def register(app: typer.Typer) -> None:
    app.command("sweep", help=command_help(_sweep_command.__doc__, EXAMPLES))(guarded(_sweep_command))
