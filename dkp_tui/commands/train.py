"""`dkp train`: the depth teacher (`--teacher depth`) or the RGB student (distilled with `--teacher-run`)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import typer

from dkp_tui.commands.common import console, guarded, print_json
from dkp_tui.commands.help_text import command_help
from dkp_tui.commands.launch import relaunch_torchrun, strip_flag
from dkp_tui.errors import DkpError

EXAMPLES = """
Examples:

  dkp train --teacher depth --preset synthetic-cpu --run runs/teacher

  dkp train --preset synthetic-cpu --teacher-run runs/teacher --run runs/student

  dkp train --preset synthetic-cpu --set kd.gamma=0 --run runs/student-only   # AutoLink baseline

  dkp train --resume runs/student

  dkp train --preset synthetic-cpu --tensorboard --run runs/tb   # + tensorboard --logdir runs/tb/tensorboard

  dkp train --preset h36m --teacher-run runs/h36m-teacher --nproc 4           # DDP through torchrun
"""


def _train_command(
    preset: str = typer.Option("", "--preset", "-p", help="Preset name (see presets/) or path to a TOML file."),
    set_: list[str] = typer.Option([], "--set", "-s", help="Override a config field: section.key=value (repeatable)."),
    teacher: str = typer.Option("", "--teacher", help="'depth' trains the depth teacher instead of the student."),
    teacher_run: Path | None = typer.Option(None, "--teacher-run", help="Frozen depth teacher to distil from."),
    run: Path | None = typer.Option(None, "--run", "-r", help="Run directory to create (default runs/<preset>-<role>-<time>)."),
    resume: Path | None = typer.Option(None, "--resume", help="Continue this run from its last checkpoint."),
    device: str = typer.Option("", "--device", help="auto | cpu | cuda | mps (default: the config's train.device)."),
    seed: int | None = typer.Option(None, "--seed", help="Shortcut for --set train.seed=N."),
    iterations: int | None = typer.Option(None, "--iterations", help="Shortcut for --set train.iterations=N."),
    perceptual_weights: Path | None = typer.Option(None, "--perceptual-weights",
                                                   help="Local VGG16 state dict (vgg16-397923af.pth) for offline use."),
    nproc: int = typer.Option(1, "--nproc", help="Processes (GPUs) for DDP; >1 re-launches through torchrun."),
    watch: bool = typer.Option(False, "--watch", help="Open the `dkp watch` dashboard on this run while it trains."),
    tensorboard: bool = typer.Option(False, "--tensorboard",
                                     help="Also write TensorBoard events to RUN/tensorboard (= --set train.tensorboard=true)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar (for scripts and logs)."),
    json_out: bool = typer.Option(False, "--json", help="Print the finished run's summary as JSON on stdout."),
) -> None:
    """Train the depth teacher or the (distilled) RGB student; weights, metrics and samples go to the run dir."""
    from dkp_tui.config import load_config, override

    if nproc > 1 and "WORLD_SIZE" not in os.environ:
        raise typer.Exit(relaunch_torchrun(nproc))
    if watch:
        raise typer.Exit(_train_with_dashboard(run, resume))

    overrides = list(set_)
    if seed is not None:
        overrides.append(f"train.seed={seed}")
    if iterations is not None:
        overrides.append(f"train.iterations={iterations}")
    if device:
        overrides.append(f"train.device={device}")
    if tensorboard:
        overrides.append("train.tensorboard=true")
    if perceptual_weights is not None:
        overrides.append(override("loss.perceptual_weights", perceptual_weights))
    if teacher not in ("", "depth"):
        raise DkpError(f"--teacher takes 'depth' (got {teacher!r})")

    if resume is not None:
        from dkp_tui.formats.run_dir import read_run_config, read_run_info

        info = read_run_info(resume)
        cfg = read_run_config(resume)
        if preset:
            raise DkpError("--resume continues a run with its saved config; drop --preset")
        from dkp_tui.config import apply_overrides, validate

        apply_overrides(cfg, overrides)
        validate(cfg)
        role, run_dir = info.role, resume
        teacher_path = None  # the loop continues with the run's own teacher
    else:
        cfg = load_config(preset or None, overrides)
        role = "teacher" if teacher == "depth" else "student"
        if role == "teacher" and teacher_run is not None:
            raise DkpError("--teacher depth trains a teacher; it takes no --teacher-run")
        teacher_path = teacher_run
        name = Path(preset).stem if preset else "custom"
        run_dir = run or Path("runs") / f"{name}-{role}-{time.strftime('%Y%m%d-%H%M%S')}"

    from dkp_tui.train.loop import train

    info = train(cfg, run_dir, role=role, teacher_run=teacher_path, resume=resume is not None, quiet=quiet)
    if json_out:
        print_json({"run": str(run_dir), **info.to_dict()})
    elif not quiet:
        console.print(f"[green]{role} run {info.status}[/] at step {info.step}: {run_dir}")


def _train_with_dashboard(run: Path | None, resume: Path | None) -> int:
    """Train in a child process (output to <run>/train.log) and open the dashboard on the run."""
    run_dir = resume or run
    if run_dir is None:
        raise DkpError("--watch needs --run DIR (or --resume RUN) so the dashboard knows what to show")
    args = strip_flag(sys.argv[1:], "--watch", takes_value=False)
    from dkp_tui.atomic import check_output_dir

    check_output_dir(run_dir, "--run" if resume is None else "--resume")
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    log = open(Path(run_dir).parent / f"{Path(run_dir).name}.train.log", "w")  # noqa: SIM115 - child owns it
    child = subprocess.Popen([sys.executable, "-m", "dkp_tui", *args, "--quiet"], stdout=log, stderr=log)
    from dkp_tui.watch.app import run_dashboard

    run_dashboard(Path(run_dir))
    if child.poll() is None:
        console.print(f"dashboard closed; training continues (pid {child.pid}, log {log.name}); Ctrl-C stops it")
    try:
        return child.wait()
    except KeyboardInterrupt:
        child.terminate()
        return child.wait()


def register(app: typer.Typer) -> None:
    app.command("train", help=command_help(_train_command.__doc__, EXAMPLES))(guarded(_train_command))
