"""The launching process's view of a job list: which job waits for which, and each job's state in ``jobs.json``
(``dkp_tui.formats.job_list``), rewritten on every change so that `dkp watch OUT` sees queued jobs too."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

from dkp_tui.experiments.jobs import Job
from dkp_tui.formats.job_list import JobEntry, JobList, read_job_list, relative, write_job_list

NoteFn = Callable[[str], None]


def dependencies(jobs: Sequence[Job]) -> dict[str, str | None]:
    """run -> the run it must wait for: its teacher, when the teacher is trained by this same job list."""
    runs = {str(j.run) for j in jobs}
    return {str(j.run): str(j.teacher_run) if j.teacher_run is not None and str(j.teacher_run) in runs else None
            for j in jobs}


def file_stem(out: Path, run: Path) -> str:
    """A file name for a run's job files: its path under the job list's folder, with '-' for '/'."""
    return (relative(out, run) or run.name).replace("/", "-")


class JobTracker:
    """States of every job of one launch, written through to ``<out>/jobs.json``."""

    def __init__(self, out: Path, jobs: Sequence[Job], launcher: str, note: NoteFn | None = None) -> None:
        self.out = Path(out)
        self.previous = read_job_list(self.out)  # what an earlier launch left (the Slurm launcher adopts its jobs)
        self.launcher = launcher
        self.note = note or (lambda message: None)
        self.jobs = list(jobs)
        self.job_list = JobList(launcher, [JobEntry(relative(self.out, j.run) or str(j.run), j.label, j.role,
                                                    relative(self.out, j.teacher_run), launcher=launcher,
                                                    updated=time.time()) for j in self.jobs])
        self._by_run = {str(j.run): e for j, e in zip(self.jobs, self.job_list.jobs, strict=True)}
        write_job_list(self.out, self.job_list)

    def entry(self, job: Job) -> JobEntry:
        return self._by_run[str(job.run)]

    def previous_entry(self, job: Job) -> JobEntry | None:
        return self.previous.entry(relative(self.out, job.run) or str(job.run)) if self.previous else None

    def set(self, job: Job, state: str, message: str = "", *, job_id: str | None = None,
            log: str | Path | None = None) -> None:
        entry = self.entry(job)
        changed = entry.state != state
        entry.state, entry.message, entry.updated = state, " ".join(message.split()), time.time()
        if job_id is not None:
            entry.job_id = job_id
        if log is not None:
            entry.log = relative(self.out, log)
        write_job_list(self.out, self.job_list)
        if changed and state == "failed":
            where = f"; log: {log or entry.log}" if (log or entry.log) else ""
            self.note(f"{job.label}: failed ({entry.message or 'no message'}){where}")
        elif changed and state in ("running", "finished"):
            self.note(f"{job.label}: {state}" + (f" ({entry.message})" if entry.message else ""))

    def failed(self) -> list[JobEntry]:
        return [e for e in self.job_list.jobs if e.state == "failed"]

    def state(self, job: Job) -> str:
        return self.entry(job).state
