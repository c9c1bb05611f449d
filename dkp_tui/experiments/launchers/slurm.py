"""`--launcher slurm`: the job list as Slurm jobs, submitted with submitit (https://github.com/facebookincubator/submitit).

Jobs that wait for nobody (the teachers, the image-only students) go first, as one job array; each distilled
student follows as its own job with ``--dependency=afterok:<its teacher's job>``, so Slurm starts it only once its
teacher finished well. A job runs ``worker.run_spec`` (train-or-resume-or-reuse, then evaluate) with the same
files as every other launcher. The launcher then follows the jobs with ``squeue`` (not ``sacct``: clusters without
accounting have none) and decides each job's outcome from submitit's result file: no result and gone from the
queue means killed, cancelled or out of time. A failed teacher's students are cancelled, not left pending forever.

A launch finds the Slurm jobs of an earlier launch of the same job list in ``jobs.json``; those still queued or
running are followed again, not submitted twice.
"""

from __future__ import annotations

import contextlib
import pickle
import shutil
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dkp_tui.errors import DkpError
from dkp_tui.experiments.jobs import Job
from dkp_tui.experiments.launchers.tracker import JobTracker, dependencies
from dkp_tui.experiments.worker import job_spec, run_spec
from dkp_tui.formats.job_list import SLURM_DIR, resolve

POLL_S = 2.0
ALIVE = {"PENDING": "queued", "CONFIGURING": "queued", "REQUEUED": "queued", "RESV_DEL_HOLD": "queued",
         "REQUEUE_HOLD": "queued", "SUSPENDED": "queued", "RUNNING": "running", "COMPLETING": "running",
         "SIGNALING": "running", "STAGE_OUT": "running"}


@dataclass
class SlurmOptions:
    partition: str = ""
    gpus_per_job: int = 0
    cpus_per_job: int = 0
    time_limit: int = 0  # minutes; 0 = no limit of dkp's
    account: str = ""
    sbatch: dict[str, str] = field(default_factory=dict)  # more sbatch options, without the leading --
    poll_s: float = POLL_S


def parse_sbatch(items: Sequence[str]) -> dict[str, str]:
    """``["qos=high", "constraint=a100"]`` (or ``--qos=high``) -> ``{"qos": "high", "constraint": "a100"}``."""
    out: dict[str, str] = {}
    for item in items:
        for part in (p.strip() for p in item.split(";")):
            if not part:
                continue
            key, sep, value = part.lstrip("-").partition("=")
            if not key or not sep:
                raise DkpError(f"--sbatch {part!r}: expected KEY=VALUE, e.g. --sbatch qos=high")
            out[key.strip().replace("-", "_")] = value.strip()
    return out


def squeue(job_ids: Sequence[str]) -> dict[str, tuple[str, str]]:
    """job id -> (Slurm state, reason) of the given jobs still in the queue (array tasks one by one)."""
    if not job_ids:
        return {}
    try:
        proc = subprocess.run(["squeue", "-h", "-r", "-o", "%i|%T|%r", "-j", ",".join(job_ids)],
                              capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise DkpError(f"squeue failed ({err}); is this a Slurm login node?") from None
    if proc.returncode != 0 and "Invalid job id" not in proc.stderr:
        raise DkpError(f"squeue failed: {proc.stderr.strip() or proc.stdout.strip()}")
    states: dict[str, tuple[str, str]] = {}
    for line in proc.stdout.splitlines():
        parts = line.strip().split("|")
        if len(parts) == 3:
            states[parts[0]] = (parts[1], parts[2])
    return states


def scancel(job_ids: Sequence[str]) -> None:
    if job_ids:
        subprocess.run(["scancel", *job_ids], capture_output=True, timeout=60)


def _outcome(result_pickle: Path) -> tuple[str, str]:
    """(finished | failed, message) from submitit's result file (written by the job itself, on the shared disk)."""
    for _ in range(3):  # the file system may show the job gone before its result
        if result_pickle.exists():
            break
        time.sleep(1.0)
    else:
        return "failed", "ended without a result (killed, cancelled, out of time or out of memory)"
    try:
        with open(result_pickle, "rb") as fh:
            kind, value = pickle.load(fh)  # submitit's own file, next to the job's logs
    except Exception as err:  # noqa: BLE001 - a torn or foreign file is a failed job, never a crash here
        return "failed", f"unreadable result {result_pickle.name} ({type(err).__name__})"
    if kind == "success":
        return "finished", f"{value.get('what', '')}, {value.get('seconds', 0):.1f} s" if isinstance(value, dict) else ""
    lines = [ln for ln in str(value).strip().splitlines() if ln.strip()]
    return "failed", (lines[-1] if lines else "error")[:300]


class _Submitted:
    def __init__(self, job: Job, job_id: str, result: Path, log: Path) -> None:
        self.job, self.job_id, self.result, self.log = job, job_id, result, log


@contextlib.contextmanager
def _sbatch_errors() -> Iterator[None]:
    """sbatch refusing a job (an unknown partition or account, a bad option, no controller) is one line, not a
    traceback; jobs submitted before it are in jobs.json and the next launch follows them."""
    try:
        yield
    except (OSError, RuntimeError) as err:  # submitit's FailedJobError (sbatch's stderr) is a RuntimeError
        raise DkpError(f"--launcher slurm: sbatch failed: {' '.join(str(err).split())[:400]}") from None


def _executor(out: Path, opts: SlurmOptions) -> Any:
    if shutil.which("sbatch") is None or shutil.which("squeue") is None:
        raise DkpError("--launcher slurm: sbatch and squeue are not on PATH; run this on a Slurm login node")
    import submitit

    executor = submitit.SlurmExecutor(folder=out / SLURM_DIR / "%j")
    params: dict[str, Any] = {"job_name": "dkp", "time": opts.time_limit, "additional_parameters": dict(opts.sbatch)}
    if opts.partition:
        params["partition"] = opts.partition
    if opts.gpus_per_job:
        params["gpus_per_node"] = opts.gpus_per_job
    if opts.cpus_per_job:
        params["cpus_per_task"] = opts.cpus_per_job
    if opts.account:
        params["account"] = opts.account
    try:
        executor.update_parameters(**params)
    except ValueError as err:
        raise DkpError(f"--launcher slurm: {err}") from None
    return executor


def run_slurm(jobs: Sequence[Job], tracker: JobTracker, out: Path, opts: SlurmOptions, *, device: str,
              batch_size: int) -> None:
    """Submit what ``jobs`` (all unfinished) still need and follow them to their end; failures are recorded in
    ``tracker``, not raised. Ctrl-C stops the following, not the jobs: the same command later follows them again."""
    waits_for = dependencies(jobs)
    by_run = {str(j.run): j for j in jobs}
    active: dict[str, _Submitted] = {}  # run -> its Slurm job
    _adopt(jobs, tracker, out, active)
    adopted = len(active)
    with _sbatch_errors():
        executor = _executor(out, opts)
        first = [j for j in jobs if str(j.run) not in active and waits_for[str(j.run)] is None]
        if first:
            submitted = executor.map_array(run_spec, [job_spec(j, device, batch_size) for j in first])
            for job, sj in zip(first, submitted, strict=True):
                _record(job, sj, tracker, active)
        for job in jobs:
            if str(job.run) in active:
                continue
            teacher = active.get(waits_for[str(job.run)] or "")
            if teacher is None:  # cannot happen: every teacher of this list was submitted or adopted above
                tracker.set(job, "failed", "its teacher was not submitted")
                continue
            executor.update_parameters(dependency=f"afterok:{teacher.job_id}")
            _record(job, executor.submit(run_spec, job_spec(job, device, batch_size)), tracker, active)
        executor.update_parameters(dependency=None)
    tracker.note(f"submitted {len(active) - adopted} Slurm job(s)"
                 + (f", following {adopted} of an earlier launch" if adopted else "") + f"; logs under {out / SLURM_DIR}")
    try:
        _follow(active, tracker, by_run, waits_for, opts.poll_s)
    except KeyboardInterrupt:
        tracker.note("stopped following; the Slurm jobs go on (scancel stops them): the same command follows them "
                     "again and writes the summary once they have finished")
        raise


def _record(job: Job, sj: Any, tracker: JobTracker, active: dict[str, _Submitted]) -> None:
    item = _Submitted(job, str(sj.job_id), Path(sj.paths.result_pickle), Path(sj.paths.stderr))
    active[str(job.run)] = item
    tracker.set(job, "queued", "", job_id=item.job_id, log=item.log)


def _adopt(jobs: Sequence[Job], tracker: JobTracker, out: Path, active: dict[str, _Submitted]) -> None:
    """Jobs of an earlier launch still queued or running: followed, not submitted again."""
    previous = {str(j.run): tracker.previous_entry(j) for j in jobs}
    ids = [e.job_id for e in previous.values() if e is not None and e.job_id and e.launcher == "slurm"]
    alive = squeue(ids) if ids else {}
    for job in jobs:
        entry = previous[str(job.run)]
        if entry is None or not entry.job_id or entry.job_id not in alive:
            continue
        log = resolve(out, entry.log) or out / SLURM_DIR
        result = log.with_name(log.name.replace("_log.err", "_result.pkl"))
        active[str(job.run)] = _Submitted(job, entry.job_id, result, log)
        tracker.set(job, ALIVE.get(alive[entry.job_id][0], "queued"), "submitted by an earlier launch",
                    job_id=entry.job_id, log=log)


def _follow(active: dict[str, _Submitted], tracker: JobTracker, by_run: dict[str, Job],
            waits_for: dict[str, str | None], poll_s: float) -> None:
    students = {}
    for run, teacher in waits_for.items():
        if teacher is not None:
            students.setdefault(teacher, []).append(run)
    live = dict(active)
    while live:
        queue = squeue([s.job_id for s in live.values()])
        for run, item in list(live.items()):
            if item.job_id in queue:
                state, reason = queue[item.job_id]
                if state in ALIVE:
                    tracker.set(item.job, ALIVE[state], "" if ALIVE[state] == "running" else reason.strip("()"))
                    continue
            del live[run]
            outcome, message = _outcome(item.result)
            tracker.set(item.job, outcome, message, log=item.log)
            if outcome == "failed":  # its students would wait forever (afterok never satisfied)
                for student in students.get(run, []):
                    if student in live:
                        scancel([live[student].job_id])
                        tracker.set(by_run[student], "failed", f"its teacher {Path(run).name} failed",
                                    log=live.pop(student).log)
        if live:
            time.sleep(poll_s)
