"""One job of a job list in a process of its own: the body of a local worker process and of a Slurm job.

A job travels as a plain JSON spec (the run, its full config, role, teacher, device), never as a pickled object, so
the local launcher can hand it over in a file and a Slurm job can be read by anyone. The work is exactly the
sequential launcher's: ``jobs.ensure_trained`` (train, resume from the checkpoint, or reuse) then
``jobs.evaluate_job`` (evaluate, or reuse the run's identical record), so every launcher leaves the same files.

``python -m dkp_tui.experiments.worker SPEC.json`` runs one spec; exit 0 when the run is trained and scored, 2 on
a DkpError (printed as one line, e.g. another process holds the run's lock), 128 + N on signal N, 1 otherwise.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dkp_tui.config import Config
from dkp_tui.experiments.jobs import Job, ensure_trained, evaluate_job

THREADS_ENV = "DKP_WORKER_THREADS"  # the local launcher's share of the cores for each worker


def job_spec(job: Job, device: str, batch_size: int) -> dict[str, Any]:
    return {"run": str(job.run), "config": job.cfg.to_dict(), "role": job.role,
            "teacher_run": None if job.teacher_run is None else str(job.teacher_run), "seed": job.seed,
            "label": job.label, "device": device, "batch_size": batch_size}


def job_from_spec(spec: dict[str, Any]) -> Job:
    cfg = Config.from_dict(spec["config"], source=f"job spec of {spec['run']}")
    teacher = spec.get("teacher_run")
    return Job(Path(spec["run"]), cfg, spec["role"], None if teacher is None else Path(teacher),
               int(spec.get("seed", 0)), str(spec.get("label", "")))


def worker_threads(cfg: Config) -> int:
    """Torch CPU threads of a worker: the config's train.threads when set (then the weights do not depend on the
    launcher), else the launcher's share (local: cores / workers; Slurm: the job's CPUs), else torch's default."""
    if cfg.train.threads > 0:
        return cfg.train.threads
    for name in (THREADS_ENV, "SLURM_CPUS_PER_TASK"):
        value = os.environ.get(name, "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    return 0


class Terminated(KeyboardInterrupt):
    """SIGTERM (scancel, a pre-emption, the local launcher stopping): unwinds like Ctrl-C, so the training loop
    records the run as stopped and the lock goes with the process."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"signal {signum}")
        self.signum = signum


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _raise(signum: int, frame: Any) -> None:
        raise Terminated(signum)

    previous = signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """Train-or-reuse then evaluate-or-reuse one job; what happened, its score and its weights' hash."""
    job = job_from_spec(spec)
    threads = worker_threads(job.cfg)
    if threads:
        import torch

        torch.set_num_threads(threads)
    start = time.time()
    print(f"dkp worker: {job.label} ({job.run}) on pid {os.getpid()}, {threads or 'default'} threads", flush=True)
    with _sigterm_as_interrupt():
        what = ensure_trained(job)
        print(f"dkp worker: {job.label}: {what}", flush=True)
        record = evaluate_job(job, spec.get("device", "auto"), int(spec.get("batch_size", 64)))
    print(f"dkp worker: {job.label}: {record.get('metric')} = {record.get('value')} "
          f"({time.time() - start:.1f} s)", flush=True)
    return {"run": str(job.run), "what": what, "value": record.get("value"),
            "weights_hash": record.get("weights_hash"), "seconds": time.time() - start}


def main(argv: list[str] | None = None) -> int:
    from dkp_tui.errors import DkpError

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m dkp_tui.experiments.worker SPEC.json", file=sys.stderr)
        return 2
    try:
        spec = json.loads(Path(args[0]).read_text(encoding="utf-8"))
        run_spec(spec)
    except DkpError as err:
        print(f"dkp: error: {err}", file=sys.stderr, flush=True)
        return err.exit_code
    except Terminated as err:
        print("dkp: terminated", file=sys.stderr, flush=True)
        return 128 + err.signum
    except KeyboardInterrupt:
        print("dkp: interrupted", file=sys.stderr, flush=True)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
