"""`dkp eval`: score one run with its data set's protocol, or train-and-score N seeds (the paper's Table 2)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer

from dkp_tui.commands import job_list_flags as flags
from dkp_tui.commands.common import console, guarded, print_json
from dkp_tui.commands.help_text import command_help
from dkp_tui.errors import DkpError

EXAMPLES = """
Examples:

  dkp eval runs/student                                   # the data set's own protocol, rich table on stderr

  dkp eval runs/student --data data/h36m --json           # JSON on stdout (also appended to runs/student/eval.json)

  dkp eval runs/h36m-student --fixed-swap-table           # H36M with the (21, 29) swap pair instead of the typo

  dkp eval --runs 3 --compare --preset synthetic-cpu      # Table 2: image-only / depth teacher / distilled

  dkp eval --runs 10 --preset h36m --out runs/eval-h36m   # a stopped job continues where it stopped

  dkp eval --runs 10 --compare --preset h36m --launcher local --devices 0,1,2,3,4,5,6,7   # one job per GPU

  dkp eval --runs 10 --compare --preset h36m --launcher slurm --partition gpu --gpus-per-job 1 --cpus-per-job 8 --time-limit 300   # teachers as a job array, each student after its teacher (afterok)

  dkp eval --runs 10 --compare --preset h36m --collect   # the summary from the runs finished so far

  dkp eval runs/student --data data/dance --pck 0.05       # your labelled footage (prepare folder --labels)

  dkp eval runs/student --data data/dance --shots 5,10,20,50,100,all --json   # + runs/student/shots.png
"""


@contextmanager
def log_warnings_to_stderr() -> Iterator[None]:
    """Evaluation warnings (regression fallbacks, unfinished runs) as one line each on stderr."""
    logger = logging.getLogger("dkp.eval")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("dkp: warning: %(message)s"))
    logger.addHandler(handler)
    old = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old)


def single_table(record: dict[str, Any]) -> Any:
    from rich.table import Table

    from dkp_tui.eval.protocols import skill_formula

    arrow = "↑" if record.get("higher_is_better") else "↓"
    t = Table(title=f"dkp eval {record['run']}", title_justify="left", show_header=False)
    t.add_column("", style="bold")
    t.add_column("")
    t.add_row(f"{record['label']} {arrow}", f"[bold]{record['value']:.4f}[/]")
    reference = record.get("mean_pose") or {}
    if reference.get("value") is not None:
        t.add_row("constant mean pose of the fit split (no model)", f"{reference['value']:.4f}")
    if record.get("skill") is not None:
        t.add_row(f"keypoint skill ({skill_formula(bool(record.get('higher_is_better')))}) ↑",
                  f"{record['skill']:+.3f}")
    extras = record.get("extras") or {}
    if "on_figure" in extras:
        chance = reference.get("figure_area")
        t.add_row("keypoints on the figure", f"{extras['on_figure'] * 100:.1f} %"
                  + ("" if chance is None else f" (random points: {chance * 100:.1f} %)"))
    if record.get("protocol") == "folder":
        _folder_rows(t, record)
    if "taichi_l2" in extras:
        t.add_row("taichi_l2 (sum of per-joint L2; not the paper's number)", f"{extras['taichi_l2']:.2f}")
    t.add_row("protocol", f"{record['protocol']} "
              + ", ".join(f"{k}={v}" for k, v in (record.get("options") or {}).items() if k != "swap_pairs"))
    t.add_row("input", f"{record['input']}" + (f" (depth cache {record['depth_tag']})" if record.get("depth_tag") else ""))
    t.add_row("run", f"{record['role']}, step {record['step']} ({record['status']})")
    t.add_row("data", f"{record['dataset']} (manifest {record['manifest_hash']}), fit {record['n_fit']}, "
              f"test {record['n_test']}")
    for key in ("n_fit_kept", "fit_swaps", "test_swaps"):
        if key in extras:
            t.add_row(key.replace("_", " "), str(extras[key]))
    if record.get("fallbacks"):
        t.add_row("[yellow]regression fallbacks[/]", f"{len(record['fallbacks'])}: {record['fallbacks'][0]}"
                  + (" ..." if len(record["fallbacks"]) > 1 else ""))
    return t


def _folder_rows(t: Any, record: dict[str, Any]) -> None:
    """The folder protocol's other two scores, each beside the mean pose and its skill."""
    extras, ref = record.get("extras") or {}, (record.get("mean_pose") or {}).get("extras") or {}
    skills = record.get("skills") or {}
    pck = (record.get("options") or {}).get("pck", 0.1)
    for key, label, unit in (("px_error", "mean joint error, pixels of the original frame ↓", ""),
                             ("pck", f"PCK @ {pck:g} of the frame size ↑", " %")):
        if extras.get(key) is None:
            continue
        sk = skills.get(key)
        t.add_row(label, f"[bold]{extras[key]:.2f}{unit}[/] (mean pose {ref.get(key, float('nan')):.2f}{unit}"
                  + ("" if sk is None else f", skill {sk:+.3f}") + ")")


def repeat_figures(summary: dict[str, Any], out_dir: Path, compare: bool) -> dict[str, str]:
    """table.png and seeds.png for --runs N, and compare.png (the three models' keypoints) with --compare."""
    from dkp_tui.eval.figures import write_figures

    return write_figures(summary, out_dir, compare)


def _eval_command(
    run: Path | None = typer.Argument(None, help="Run directory (or .safetensors) to evaluate.", show_default=False),
    data: Path | None = typer.Option(None, "--data", "-d", help="Labelled data set (default: the run's data.dataset)."),
    set_: list[str] = typer.Option([], "--set", "-s", help="Override a config field, e.g. eval.protocol=h36m."),
    fixed_swap_table: bool = typer.Option(False, "--fixed-swap-table",
                                          help="H36M: use the (21, 29) pair instead of the reference's (21, 28)."),
    runs: int = typer.Option(0, "--runs", "-n", min=0, help="Train (or reuse) N seeds 0..N-1 and report mean ± std."),
    preset: str = typer.Option("", "--preset", "-p", help="With --runs: the preset to train."),
    compare: bool = typer.Option(False, "--compare", help="With --runs: also the image-only student (Table 2)."),
    out: Path | None = typer.Option(None, "--out", "-o", help="With --runs: where the runs live (runs/eval-PRESET)."),
    one_teacher: bool = typer.Option(False, "--one-teacher",
                                     help="With --runs: one teacher (seed 0) shared by every seed's student."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda | mps."),
    batch_size: int = typer.Option(64, "--batch-size", min=1, help="Images per detector batch."),
    pck: float | None = typer.Option(None, "--pck", help="folder protocol: PCK threshold, a fraction of the frame "
                                     "size (default 0.1).", show_default=False),
    shots: str = typer.Option("", "--shots", help="e.g. 5,10,20,50,100,all: fit the joints regression on that "
                              "many random fit frames (several seeded draws each); table, JSON and RUN/shots.png."),
    draws: int = typer.Option(10, "--draws", help="With --shots: random draws per shot count."),
    shots_seed: int = typer.Option(0, "--shots-seed", help="With --shots: seed of the draws."),
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
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON on stdout."),
) -> None:
    """Score a run with its data set's protocol, or train and score N seeds (the paper's Table 2).

    Freezes the detector, runs it on the fit and test splits, fits the protocol's linear regression and reports
    the score (Taichi MAE, H36M L2 ×100, DeepFashion PCK, synthetic L2 ×100 + keypoints on the figure), beside
    what the constant mean pose of the fit split scores and the keypoint skill (0 = no better than that pose).

    With --runs N it trains N seeds of teacher + distilled student (and, with --compare, the image-only student)
    and prints the paper's Table 2 layout. Finished runs with the same config are reused. Figures go next to
    summary.json: table.png (mean ± std bars), seeds.png (score per seed) and, with --compare, compare.png
    (every model's keypoints and learned skeleton on the same test images).

    --launcher local or slurm runs the jobs in parallel (worker processes with a device each, or Slurm jobs);
    the summary is written once every job has finished, and is the same as the sequential run's. The same
    command again submits only what is missing or failed; `dkp watch OUT` shows every job, queued ones too.
    """
    overrides = list(set_)
    if fixed_swap_table:
        overrides.append("eval.h36m_swap_table=fixed")
    if pck is not None:
        overrides.append(f"eval.pck={pck!r}")
    with log_warnings_to_stderr():
        if runs:
            if run is not None:
                raise DkpError("give either a RUN to evaluate or --runs N --preset P, not both")
            if not preset:
                raise DkpError("--runs needs --preset (the config the seeds are trained with)")
            if shots:
                raise DkpError("--shots goes with one RUN (dkp eval RUN --data DS --shots ...), not with --runs")
            if data is not None:
                from dkp_tui.config import override

                overrides.append(override("data.dataset", data))
            if device != "auto":
                overrides.append(f'train.device="{device}"')
            from dkp_tui.experiments.repeats import run_repeats, table

            launch = flags.launch_from_flags(
                preset, overrides, launcher=launcher, workers=workers, devices=devices, partition=partition,
                gpus_per_job=gpus_per_job, cpus_per_job=cpus_per_job, time_limit=time_limit, account=account,
                sbatch=sbatch, collect=collect)
            out_dir = out or Path("runs") / f"eval-{Path(preset).stem}"
            summary = run_repeats(preset, runs, compare, out_dir, overrides, one_teacher=one_teacher, device=device,
                                  batch_size=batch_size, progress=not quiet, launch=launch, note=flags.note)
            figures = repeat_figures(summary, out_dir, compare)
            if json_out:
                print_json({"out": str(out_dir), **summary, "figures": figures})
            else:
                console.print(table(summary))
                console.print(f"runs and summary.json in {out_dir}"
                              + (f"; figures: {', '.join(Path(p).name for p in figures.values())}" if figures else ""))
            return
        if run is None:
            raise DkpError("give a RUN directory to evaluate, or --runs N --preset P")
        if preset or compare or one_teacher or out is not None:
            raise DkpError("--preset, --compare, --one-teacher and --out go with --runs N")
        if collect or launcher is not None or workers is not None or devices is not None or sbatch:
            raise DkpError("--launcher, --workers, --devices, --sbatch and --collect go with --runs N")
        from dkp_tui.eval.evaluate import EvalRequest, evaluate_run

        req = EvalRequest(run, data, overrides, device, batch_size)
        if shots:
            _shots(req, shots, draws, shots_seed, json_out)
            return
        if quiet or not console.is_terminal:  # a bar in a log or a pipe only adds noise
            record = evaluate_run(req)
        else:
            from dkp_tui.progress import new_progress

            with new_progress(console=console, elapsed=False, transient=True) as bar:
                task = bar.add_task("detecting", total=None)
                record = evaluate_run(req, progress=lambda stage, done, total: bar.update(
                    task, description=f"detecting ({stage})", completed=done, total=total))
        if json_out:
            print_json(record)
        else:
            console.print(single_table(record))


def _shots(req: Any, shots: str, draws: int, seed: int, json_out: bool) -> None:
    from dkp_tui.eval.joints import parse_shots
    from dkp_tui.eval.shots import run_shots, table

    counts = parse_shots(shots)
    with console.status("detecting and fitting", spinner="dots") if console.is_terminal else _nothing():
        result = run_shots(req, counts, draws, seed)
    if json_out:
        print_json(result)
    else:
        console.print(table(result))
        console.print(f"figure: {result['figure']}")


@contextmanager
def _nothing() -> Iterator[None]:
    yield


def register(app: typer.Typer) -> None:
    app.command("eval", help=command_help(_eval_command.__doc__, EXAMPLES))(guarded(_eval_command))
