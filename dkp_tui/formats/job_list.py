"""The job-list state file: ``<out>/jobs.json``, what `dkp eval --runs` and `dkp sweep` planned and where each job is.

A run directory appears only when its training starts, so a job queued on Slurm (or waiting for its teacher) has
no run yet; this file is how `dkp watch OUT` shows it. Written only by the launching process (one writer, held by
the job list's lock), atomically, after every change; read without a lock by the dashboard and by the next launch
(which adopts Slurm jobs still queued or running instead of submitting them twice).

```
{"format_version": 1, "launcher": "slurm", "updated": 1765152000.0,
 "jobs": [{"run": "seed0/teacher", "label": "seed 0 teacher", "role": "teacher", "teacher_run": null,
           "state": "queued", "launcher": "slurm", "job_id": "123_0", "log": "slurm/123_0/123_0_0_log.err",
           "message": "", "updated": 1765152000.0}, ...]}
```

``run`` (and ``teacher_run`` inside the job list) and ``log`` are relative to the job list's folder when inside it,
so the folder can be moved or mounted elsewhere (a shared file system seen at another path).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dkp_tui.atomic import write_json
from dkp_tui.errors import DkpError

JOB_LIST = "jobs.json"
JOB_LIST_FORMAT = 1
LOGS_DIR = "logs"  # the local launcher's per-job logs (and job specs)
SLURM_DIR = "slurm"  # submitit's folder: sbatch scripts, logs, pickled calls and results, one folder per job
STATES = ("queued", "running", "finished", "failed")


@dataclass
class JobEntry:
    run: str
    label: str
    role: str
    teacher_run: str | None = None
    state: str = "queued"  # one of STATES
    launcher: str = "sequential"
    job_id: str | None = None  # the Slurm job id (array jobs: ARRAY_TASK), None elsewhere
    log: str | None = None
    message: str = ""  # why it failed, in one line
    updated: float = 0.0


@dataclass
class JobList:
    launcher: str
    jobs: list[JobEntry] = field(default_factory=list)
    updated: float = 0.0
    format_version: int = JOB_LIST_FORMAT

    def entry(self, run: str) -> JobEntry | None:
        return next((e for e in self.jobs if e.run == run), None)


def relative(folder: Path, path: str | Path | None) -> str | None:
    """``path`` relative to the job list's folder when inside it (POSIX), else as given."""
    if path is None:
        return None
    p = Path(path)
    try:
        return p.resolve().relative_to(Path(folder).resolve()).as_posix()
    except ValueError:
        return str(p)


def resolve(folder: Path, path: str | None) -> Path | None:
    """The path an entry's ``run``, ``teacher_run`` or ``log`` names, seen from here."""
    if path is None:
        return None
    p = Path(path)
    return p if p.is_absolute() else Path(folder) / p


def write_job_list(folder: str | Path, job_list: JobList) -> None:
    job_list.updated = time.time()
    write_json(Path(folder) / JOB_LIST, asdict(job_list))


def read_job_list(folder: str | Path) -> JobList | None:
    """The job list in ``folder``; None when there is none or it cannot be read (a reader never fails on it: the
    dashboard then shows the runs alone). A file of a newer format is refused."""
    path = Path(folder) / JOB_LIST
    try:
        import json

        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("jobs"), list):
        return None
    version = data.get("format_version")
    if isinstance(version, int) and version > JOB_LIST_FORMAT:
        raise DkpError(f"{path}: job list format {version} was written by a newer dkp; upgrade dkp")
    known = set(JobEntry.__dataclass_fields__)
    jobs = []
    for item in data["jobs"]:
        if isinstance(item, dict) and isinstance(item.get("run"), str):
            entry = JobEntry(**{k: v for k, v in item.items() if k in known and k not in ("run", "label", "role")},
                             run=item["run"], label=str(item.get("label", "")), role=str(item.get("role", "?")))
            if entry.state not in STATES:
                entry.state = "queued"
            jobs.append(entry)
    return JobList(launcher=str(data.get("launcher", "?")), jobs=jobs, updated=_number(data.get("updated")))


def _number(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0
