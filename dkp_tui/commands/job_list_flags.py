"""The launcher flags that `dkp eval --runs` and `dkp sweep` share (one definition, so both say the same)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import typer

from dkp_tui.commands.common import console

LAUNCHER = typer.Option(None, "--launcher", help="Where the job list runs: sequential (in this process, the "
                        "default), local (worker processes) or slurm (submitit). Default: launch.launcher.",
                        show_default=False)
WORKERS = typer.Option(None, "--workers", min=0, help="local: worker processes (default: one per --devices "
                       "entry, else 1); on CPU the cores are split between them.", show_default=False)
DEVICES = typer.Option(None, "--devices", help="local: CUDA device indices, one worker each, e.g. 0,1,2,3.",
                       show_default=False)
PARTITION = typer.Option(None, "--partition", help="slurm: partition (default: the cluster's).", show_default=False)
GPUS_PER_JOB = typer.Option(None, "--gpus-per-job", min=0, help="slurm: GPUs per job.", show_default=False)
CPUS_PER_JOB = typer.Option(None, "--cpus-per-job", min=0, help="slurm: CPUs per job (also its torch threads).",
                            show_default=False)
TIME_LIMIT = typer.Option(None, "--time-limit", min=0, help="slurm: minutes per job (0: the partition's limit).",
                          show_default=False)
ACCOUNT = typer.Option(None, "--account", help="slurm: account to charge.", show_default=False)
SBATCH = typer.Option([], "--sbatch", help="slurm: another sbatch option as KEY=VALUE, e.g. qos=high (repeatable).")
COLLECT = typer.Option(False, "--collect", help="Submit nothing: write the summary from the runs finished so far.")


def launch_from_flags(preset: str, overrides: Sequence[str], *, launcher: str | None, workers: int | None,
                      devices: str | None, partition: str | None, gpus_per_job: int | None,
                      cpus_per_job: int | None, time_limit: int | None, account: str | None,
                      sbatch: Sequence[str], collect: bool) -> Any:
    """LaunchOptions: the preset's (and --set's) ``[launch]`` section, the flags given on top."""
    from dkp_tui.config import load_config
    from dkp_tui.experiments.launchers import launch_options

    return launch_options(load_config(preset, list(overrides)).launch, launcher=launcher, workers=workers,
                          devices=devices, partition=partition, gpus_per_job=gpus_per_job,
                          cpus_per_job=cpus_per_job, time_limit=time_limit, account=account, sbatch=sbatch,
                          collect=collect)


def note(message: str) -> None:
    """A job list's event line (a job started, finished or failed with its log) on stderr."""
    console.print(message, highlight=False, markup=False)
