"""`--launcher local --workers W`: the job list on W worker processes of this machine, each on its own device.

Each job is a fresh ``python -m dkp_tui.experiments.worker SPEC`` process (a crash or a kill takes one job, never
the launcher or the other workers), started when a worker slot is free and its teacher, if this job list trains
it, has finished; teachers go first, so their students can start as early as possible. A slot with a GPU index gets ``CUDA_VISIBLE_DEVICES`` set to it; on CPU the cores are split
between the workers (``OMP_NUM_THREADS`` and the worker's torch threads, unless ``train.threads`` is set).
Everything a job prints goes to ``<out>/logs/<run>.log`` (appended to, one header per attempt).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from dkp_tui.experiments.jobs import Job
from dkp_tui.experiments.launchers.tracker import JobTracker, dependencies, file_stem
from dkp_tui.experiments.worker import THREADS_ENV, job_spec
from dkp_tui.formats.job_list import LOGS_DIR

POLL_S = 0.2
WORKER = ("-m", "dkp_tui.experiments.worker")  # after sys.executable; then the spec file


@dataclass
class _Running:
    job: Job
    proc: subprocess.Popen
    log: Path
    handle: IO[bytes]
    slot: int
    start: float


def worker_slots(workers: int, devices: Sequence[str]) -> list[str | None]:
    """One entry per worker: the CUDA device it sees (devices dealt round-robin), or None on CPU."""
    n = workers or max(len(devices), 1)
    return [devices[i % len(devices)] if devices else None for i in range(n)]


def cpu_share(n_workers: int) -> int:
    """Cores per worker (at least 1): the cores this process may use, split evenly."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(cores // max(n_workers, 1), 1)


def _last_error(log: Path) -> str:
    """The worker's one-line error (``dkp: error: ...``), else the last non-empty line of its log."""
    try:
        lines = [ln.strip() for ln in log.read_text(encoding="utf-8", errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    errors = [ln for ln in lines if ln.startswith("dkp:")]
    return (errors or lines or [""])[-1][:300]


def run_local(jobs: Sequence[Job], tracker: JobTracker, out: Path, *, workers: int, devices: Sequence[str],
              device: str, batch_size: int) -> None:
    """Run every job of ``jobs`` (all unfinished) to its end; failures are recorded in ``tracker``, not raised."""
    slots = worker_slots(workers, devices)
    threads = cpu_share(len(slots))
    waits_for = dependencies(jobs)
    logs = out / LOGS_DIR
    logs.mkdir(parents=True, exist_ok=True)
    teachers = {t for t in waits_for.values() if t is not None}
    # teachers first (their students wait for them), otherwise in the plan's order
    pending = sorted(jobs, key=lambda j: str(j.run) not in teachers)
    running: dict[int, _Running] = {}
    done: dict[str, str] = {}  # run -> finished | failed
    try:
        while pending or running:
            for slot, item in list(running.items()):
                rc = item.proc.poll()
                if rc is None:
                    continue
                item.handle.close()
                del running[slot]
                state = "finished" if rc == 0 else "failed"
                done[str(item.job.run)] = state
                message = f"{time.monotonic() - item.start:.1f} s" if rc == 0 else \
                    f"exit {rc}: {_last_error(item.log)}"
                tracker.set(item.job, state, message, log=item.log)
            for job in list(pending):
                teacher = waits_for[str(job.run)]
                if teacher is not None and done.get(teacher) == "failed":
                    pending.remove(job)
                    done[str(job.run)] = "failed"
                    tracker.set(job, "failed", f"its teacher {Path(teacher).name} failed")
            free = [s for s in range(len(slots)) if s not in running]
            for slot in free:
                job = next((j for j in pending if waits_for[str(j.run)] is None
                            or done.get(waits_for[str(j.run)]) == "finished"), None)
                if job is None:
                    break
                pending.remove(job)
                running[slot] = _start(job, slot, slots[slot], threads, logs, out, device, batch_size)
                tracker.set(job, "running", f"worker {slot}" + (f", cuda {slots[slot]}" if slots[slot] else ""),
                            log=running[slot].log)
            if pending and not running:  # nothing can start: a teacher outside this list? cannot happen
                for job in pending:
                    tracker.set(job, "failed", "its teacher never finished")
                pending.clear()
            time.sleep(POLL_S)
    except BaseException:
        for item in running.values():  # Ctrl-C or SIGTERM: stop the workers (they record their runs as stopped)
            item.proc.terminate()
        for item in running.values():
            try:
                item.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                item.proc.kill()
                item.proc.wait()
            item.handle.close()
            tracker.set(item.job, "failed", "stopped with the launcher", log=item.log)
        raise


def _start(job: Job, slot: int, cuda: str | None, threads: int, logs: Path, out: Path, device: str,
           batch_size: int) -> _Running:
    stem = file_stem(out, job.run)
    spec_path = logs / f"{stem}.job.json"
    from dkp_tui.atomic import write_text

    write_text(spec_path, json.dumps(job_spec(job, device, batch_size), indent=2) + "\n")
    log = logs / f"{stem}.log"
    handle = open(log, "ab")  # noqa: SIM115 - open for the worker's life, closed when it ends
    handle.write(f"=== {time.strftime('%Y-%m-%d %H:%M:%S')} worker {slot}: {job.label}\n".encode())
    handle.flush()
    env = {**os.environ, THREADS_ENV: str(threads)}
    if job.cfg.train.threads <= 0:
        env["OMP_NUM_THREADS"] = str(threads)
    if cuda is not None:
        env["CUDA_VISIBLE_DEVICES"] = cuda
    proc = subprocess.Popen([sys.executable, *WORKER, str(spec_path)],
                            stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
    return _Running(job, proc, log, handle, slot, time.monotonic())
