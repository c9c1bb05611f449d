"""Where a job list (`dkp eval --runs`, `dkp sweep`) runs: in this process one job after another (``sequential``,
the default), on W worker processes of this machine (``local``) or as Slurm jobs (``slurm``).

Every launcher does the same work per job (``jobs.ensure_trained`` then ``jobs.evaluate_job``, which saves the
record in the run's ``eval.json``). The sequential launcher summarises the records its jobs returned; the others,
and ``--collect``, read each run's saved record back (``records``: the same record, reused), so the summary is the
same computation on the same numbers whichever launcher trained the runs. The job list's
folder is locked for the launch (a second launch of it is refused at once, saying who holds it); each run keeps
its own lock too, so two different job lists sharing a run cannot both train it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dkp_tui.config import LAUNCHERS, LaunchConfig
from dkp_tui.errors import DkpError
from dkp_tui.experiments import jobs as job_steps
from dkp_tui.experiments.jobs import Job, TrainFn, run_jobs, run_state
from dkp_tui.experiments.launchers.slurm import SlurmOptions, parse_sbatch
from dkp_tui.experiments.launchers.tracker import JobTracker

NoteFn = Callable[[str], None]


@dataclass
class LaunchOptions:
    launcher: str = "sequential"
    workers: int = 0
    devices: list[str] = field(default_factory=list)
    slurm: SlurmOptions = field(default_factory=SlurmOptions)
    collect: bool = False  # only write the summary from the finished runs


def parse_devices(text: str) -> list[str]:
    devices = [d.strip() for d in text.split(",") if d.strip()]
    bad = [d for d in devices if not d.isdigit()]
    if bad:
        raise DkpError(f"--devices: expected comma-separated CUDA device indices like 0,1,2,3, got {text!r}")
    return devices


def launch_options(cfg: LaunchConfig, *, launcher: str | None = None, workers: int | None = None,
                   devices: str | None = None, partition: str | None = None, gpus_per_job: int | None = None,
                   cpus_per_job: int | None = None, time_limit: int | None = None, account: str | None = None,
                   sbatch: Sequence[str] = (), collect: bool = False) -> LaunchOptions:
    """The config's ``[launch]`` section with the command's flags (those given) on top; bad values refused."""
    name = launcher if launcher is not None else cfg.launcher
    if name not in LAUNCHERS:
        raise DkpError(f"--launcher must be one of {', '.join(LAUNCHERS)}, not {name!r}")
    n_workers = workers if workers is not None else cfg.workers
    if n_workers < 0:
        raise DkpError("--workers must be >= 0")
    device_list = parse_devices(devices if devices is not None else cfg.devices)
    slurm = SlurmOptions(
        partition=partition if partition is not None else cfg.partition,
        gpus_per_job=gpus_per_job if gpus_per_job is not None else cfg.gpus_per_job,
        cpus_per_job=cpus_per_job if cpus_per_job is not None else cfg.cpus_per_job,
        time_limit=time_limit if time_limit is not None else cfg.time_limit,
        account=account if account is not None else cfg.account,
        sbatch={**parse_sbatch([cfg.sbatch]), **parse_sbatch(sbatch)},
    )
    if min(slurm.gpus_per_job, slurm.cpus_per_job, slurm.time_limit) < 0:
        raise DkpError("--gpus-per-job, --cpus-per-job and --time-limit must be >= 0")
    given = {"workers": workers, "devices": devices}
    if name != "local" and any(v not in (None, "", 0) for v in given.values()):
        raise DkpError("--workers and --devices go with --launcher local")
    slurm_given = (partition, gpus_per_job, cpus_per_job, time_limit, account)
    if name != "slurm" and (any(v not in (None, "", 0) for v in slurm_given) or sbatch):
        raise DkpError("--partition, --gpus-per-job, --cpus-per-job, --time-limit, --account and --sbatch go with "
                       "--launcher slurm")
    return LaunchOptions(name, n_workers, device_list, slurm, collect)


@contextlib.contextmanager
def job_list_lock(out: Path) -> Iterator[None]:
    """One launch per job list at a time: the folder's writer lock (``dkp_tui.locks``), held while it launches and
    waits. Nothing is cleaned up under it: Slurm jobs of an earlier launch may be writing in there."""
    from dkp_tui.locks import writer_lock

    with writer_lock(out, f"job list {out}", clean=False):
        yield


def execute(jobs: Sequence[Job], out: Path, opts: LaunchOptions, *, device: str = "auto", batch_size: int = 64,
            progress: bool = True, train_fn: TrainFn | None = None, note: NoteFn | None = None
            ) -> tuple[list[Job], list[dict[str, Any]]]:
    """Run (or, with ``opts.collect``, only read) the job list; the jobs that have scores and their records.

    Every job must finish for a launch to return: otherwise a DkpError (exit 1) names the failed jobs (each with
    its log, printed through ``note`` as it failed) and how to go on. ``--collect`` returns the finished runs only.
    """
    say = note or (lambda message: None)
    if opts.collect:
        done = [j for j in jobs if run_state(j) == "finished"]
        if not done:
            raise DkpError(f"--collect: no finished run in {out} yet (dkp watch {out} shows where they are)")
        missing = len(jobs) - len(done)
        if missing:
            say(f"--collect: {missing} of {len(jobs)} runs not finished; the summary covers the other {len(done)}")
        return done, records(done, device, batch_size)
    with job_list_lock(out), _nothing_left_on_refusal(out, jobs):
        tracker = JobTracker(out, jobs, opts.launcher, say if opts.launcher != "sequential" else None)
        if opts.launcher == "sequential":
            return list(jobs), run_jobs(jobs, device=device, batch_size=batch_size, progress=progress,
                                        train_fn=train_fn, on_state=lambda job, s, m: tracker.set(job, s, m))
        todo = []
        for job in jobs:  # every config checked before anything starts; finished runs are not launched again
            if run_state(job) == "finished":
                tracker.set(job, "finished", "reused")
            else:
                todo.append(job)
        if todo and opts.launcher == "local":
            from dkp_tui.experiments.launchers.local import run_local

            run_local(todo, tracker, out, workers=opts.workers, devices=opts.devices, device=device,
                      batch_size=batch_size)
        elif todo:
            from dkp_tui.experiments.launchers.slurm import run_slurm

            run_slurm(todo, tracker, out, opts.slurm, device=device, batch_size=batch_size)
        failed = tracker.failed()
        if failed:
            raise DkpError(f"{len(failed)} of {len(jobs)} jobs failed ({', '.join(e.label for e in failed[:4])}"
                           f"{', ...' if len(failed) > 4 else ''}; their logs are listed above and in "
                           f"{out / 'jobs.json'}); the same command again reuses the finished runs, resumes the "
                           "others from their checkpoints and writes the summary", exit_code=1)
        return list(jobs), records(jobs, device, batch_size)


@contextlib.contextmanager
def _nothing_left_on_refusal(out: Path, jobs: Sequence[Job]) -> Iterator[None]:
    """A launch refused before it wrote anything else (a missing data set: the first training refuses before its
    run exists) takes its new ``jobs.json`` back, so bad input leaves nothing behind. Anything else written (a run,
    a worker's log, a Slurm job's folder) stays, and so does the job list that points at it."""
    from dkp_tui.formats.job_list import JOB_LIST, LOGS_DIR, SLURM_DIR
    from dkp_tui.formats.run_dir import is_run_dir

    had = (out / JOB_LIST).exists() or (out / LOGS_DIR).exists() or (out / SLURM_DIR).exists()
    runs_before = {str(j.run) for j in jobs if is_run_dir(j.run)}
    try:
        yield
    except DkpError:
        wrote = (out / LOGS_DIR).exists() or (out / SLURM_DIR).exists() or any(
            is_run_dir(j.run) for j in jobs if str(j.run) not in runs_before)
        if not had and not wrote:
            with contextlib.suppress(OSError):
                (out / JOB_LIST).unlink()
        raise


def records(jobs: Sequence[Job], device: str, batch_size: int) -> list[dict[str, Any]]:
    """Each finished run's evaluation record: the one its job saved (reused), computed here only if missing;
    through ``jobs.evaluate_job``, the one evaluation step of every launcher."""
    return [job_steps.evaluate_job(job, device, batch_size) for job in jobs]
