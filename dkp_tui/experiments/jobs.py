"""Train-or-reuse and evaluate-or-reuse of single runs, with one progress display over a whole job list.

Shared by `dkp eval --runs` and `dkp sweep`. A finished run with the same resolved config is reused, an unfinished
one is resumed from its checkpoint, so a stopped job list continues where it stopped.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dkp_tui.config import Config, LaunchConfig, for_role, load_config
from dkp_tui.errors import DkpError
from dkp_tui.formats.jsonl import parse_line
from dkp_tui.formats.run_dir import METRICS, is_finished, is_run_dir, read_run_config, read_run_info

# fields that change neither the weights nor the scores (logging cadence, device choice); ignored on reuse
IGNORED_ON_REUSE = ("train.device", "train.threads", "train.log_every", "train.sample_every", "train.n_samples",
                    "train.tensorboard", "eval.pck")

TrainFn = Callable[..., Any]


@dataclass
class Job:
    """One run to train (or reuse) and evaluate."""

    run: Path
    cfg: Config
    role: str  # teacher | student
    teacher_run: Path | None = None
    seed: int = 0
    label: str = ""

    def __post_init__(self) -> None:
        self.cfg = for_role(self.cfg, self.role)  # what the run trains with and saves (a teacher's own backbone)


def seed_config(preset: str, overrides: Sequence[str], seed: int, extra: Sequence[str] = ()) -> Config:
    """The preset + --set overrides, with this seed (and the variant's own changes) applied last.

    The ``launch`` section goes back to its defaults: where a job list runs never changes a run, so a run's
    config (and the weights file that carries it) is the same byte for byte under every launcher."""
    cfg = load_config(preset, [*overrides, *extra, f"train.seed={seed}"])
    cfg.launch = LaunchConfig()
    return cfg


def config_differences(a: Config, b: Config) -> list[str]:
    da, db = a.to_dict(), b.to_dict()
    out = []
    for section, values in da.items():
        if section == "launch":  # never part of a run (seed_config)
            continue
        for key, value in values.items():
            name = f"{section}.{key}"
            if name not in IGNORED_ON_REUSE and db.get(section, {}).get(key) != value:
                out.append(f"{name}: {db.get(section, {}).get(key)!r} (saved) vs {value!r} (wanted)")
    return out


def run_state(job: Job) -> str:
    """new | finished | partial, after checking that an existing run was made with the same config."""
    if not is_run_dir(job.run):
        return "new"
    info = read_run_info(job.run)
    if info.role != job.role:
        raise DkpError(f"{job.run} holds a {info.role} run where a {job.role} run belongs; choose another --out")
    diffs = config_differences(job.cfg, read_run_config(job.run))
    if diffs:
        raise DkpError(f"{job.run} was trained with a different config ({'; '.join(diffs[:3])}"
                       f"{'; ...' if len(diffs) > 3 else ''}); use another --out or remove that run")
    if is_finished(info, job.cfg.train.iterations):
        return "finished"
    return "partial"


def ensure_trained(job: Job, train_fn: TrainFn | None = None) -> str:
    """Train, resume or reuse ``job.run``; returns what happened: reused | trained | resumed."""
    state = run_state(job)
    if state == "finished":
        return "reused"
    if train_fn is None:
        from dkp_tui.train.loop import train as train_fn
    train_fn(job.cfg, job.run, role=job.role, teacher_run=job.teacher_run, resume=state == "partial", quiet=True)
    return "resumed" if state == "partial" else "trained"


def evaluate_job(job: Job, device: str, batch_size: int = 64,
                 progress: Callable[[str, int, int], None] | None = None) -> dict[str, Any]:
    from dkp_tui.eval.evaluate import EvalRequest, evaluate_run

    # the data set the job was planned on, not the one recorded in the weights: a run reused from elsewhere
    # (a depth teacher shared by the clean and the cluttered set) is scored where the table says it is
    # and with the threshold asked for now (eval.pck does not change training, so a reused run may hold another)
    return evaluate_run(EvalRequest(job.run, Path(job.cfg.data.dataset), [f"eval.pck={job.cfg.eval.pck!r}"],
                                    device=device, batch_size=batch_size), reuse=True, progress=progress)


def stats(values: Sequence[float]) -> dict[str, float | int | None]:
    """Mean, sample std (ddof = 1), min and max of the finite values (None where undefined)."""
    vals = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    n = len(vals)
    if n == 0:
        return {"n": 0, "mean": None, "std": None, "min": None, "max": None}
    mean = sum(vals) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in vals) / (n - 1)) if n > 1 else None
    return {"n": n, "mean": mean, "std": std, "min": min(vals), "max": max(vals)}


def mean_pose_of(records: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The mean-pose reference shared by a job list's records (one data set, one protocol), if they carry it."""
    return next((r["mean_pose"] for r in records if isinstance(r.get("mean_pose"), dict)), None)


def skills(values: Sequence[float | None], reference: dict[str, Any] | None, higher_is_better: bool
           ) -> list[float | None]:
    """Each value's keypoint skill against the mean pose (``protocols.skill``); Nones without a reference."""
    from dkp_tui.eval.protocols import skill

    ref = (reference or {}).get("value")
    return [skill(v, ref, higher_is_better) for v in values]


def fmt_mean_std(s: dict[str, Any], digits: int = 2) -> str:
    if s.get("mean") is None:
        return "–"
    if s.get("std") is None:
        return f"{s['mean']:.{digits}f}"
    return f"{s['mean']:.{digits}f} ± {s['std']:.{digits}f}"


# -- progress ----------------------------------------------------------------------------------------------------


def _fmt_eta(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "ETA -:--:--"
    m, sec = divmod(int(seconds + 0.5), 60)
    h, m = divmod(m, 60)
    return f"ETA {h}:{m:02d}:{sec:02d}"


class JobProgress:
    """Overall progress in training steps across all jobs, plus the current stage.

    The overall ETA is the remaining steps over the step rate measured on the runs trained in this invocation
    (reused runs count as done, without time), so it is meaningful even though updates arrive only every
    ``train.log_every`` steps. Inner training runs quietly; a watcher thread follows the current run's
    ``metrics.jsonl`` so the bars move during long runs. Disabled, every method is a no-op.
    """

    def __init__(self, total_steps: int, enabled: bool = True) -> None:
        self.enabled = enabled
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._base = 0  # steps of finished (trained or reused) jobs
        self._total = max(total_steps, 1)
        self._trained = 0  # steps trained in this invocation, for the rate
        self._train_time = 0.0
        self._stage_start = 0.0
        self._stage_first = 0
        if not enabled:
            return
        from dkp_tui.progress import new_progress

        self.progress = new_progress(fields=("{task.fields[eta]}",), eta=False)
        self.overall = self.progress.add_task("all runs (steps)", total=self._total, eta=_fmt_eta(None))
        self.stage = self.progress.add_task("", total=1, eta="")
        self.progress.start()

    def _eta(self, done_overall: int, live_steps: int, live_time: float) -> float | None:
        steps, secs = self._trained + live_steps, self._train_time + live_time
        if steps <= 0 or secs <= 0:
            return None
        return (self._total - done_overall) * secs / steps

    def start_training(self, job: Job, what: str) -> None:
        self._stage_start = time.perf_counter()
        self._stage_first = (_last_step(job.run / METRICS) or 0) if what == "resuming" else 0
        if not self.enabled:
            return
        total = job.cfg.train.iterations
        self.progress.update(self.stage, description=f"{job.label}: {what}", total=total,
                             completed=self._stage_first, eta="")
        self._stop.clear()
        self._thread = threading.Thread(target=self._follow, args=(job.run / METRICS, total), daemon=True)
        self._thread.start()

    def _follow(self, path: Path, total: int) -> None:
        while not self._stop.wait(0.5):
            step = _last_step(path)
            if step is None:
                continue
            step = min(step, total)
            live = max(step - self._stage_first, 0)
            elapsed = time.perf_counter() - self._stage_start
            stage_eta = (total - step) * elapsed / live if live > 0 else None
            done = self._base + step
            self.progress.update(self.stage, completed=step, eta=_fmt_eta(stage_eta))
            self.progress.update(self.overall, completed=done, eta=_fmt_eta(self._eta(done, live, elapsed)))

    def stop_following(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def finish_training(self, job: Job, trained: bool) -> None:
        self.stop_following()
        if trained:
            self._trained += max(job.cfg.train.iterations - self._stage_first, 0)
            self._train_time += time.perf_counter() - self._stage_start
        self._base += job.cfg.train.iterations
        if self.enabled:
            self.progress.update(self.overall, completed=self._base, eta=_fmt_eta(self._eta(self._base, 0, 0.0)))

    def eval_callback(self, job: Job) -> Callable[[str, int, int], None] | None:
        if not self.enabled:
            return None
        self.progress.update(self.stage, description=f"{job.label}: evaluating", total=1, completed=0, eta="")

        def update(stage: str, done: int, total: int) -> None:
            self.progress.update(self.stage, description=f"{job.label}: evaluating ({stage})", total=total,
                                 completed=done)

        return update

    def note(self, message: str) -> None:
        if self.enabled:
            self.progress.console.print(message)

    def close(self, finished: bool = True) -> None:
        self.stop_following()
        if self.enabled:
            if finished:
                self.progress.update(self.stage, description="done", total=1, completed=1, eta="")
            self.progress.update(self.overall, eta="")
            self.progress.stop()


def _last_step(path: Path) -> int | None:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, 2)
            size = fh.tell()
            fh.seek(max(0, size - 4096))
            lines = fh.read().split(b"\n")
    except OSError:
        return None
    for line in reversed(lines):
        record = parse_line(line)  # the metrics readers' rule (dkp_tui.formats.jsonl): torn or undecodable lines skipped
        if record is not None and isinstance(record.get("step"), int):
            return int(record["step"])
    return None


StateFn = Callable[[Job, str, str], None]  # (job, queued | running | finished | failed, message)


def run_jobs(jobs: Sequence[Job], *, device: str = "auto", batch_size: int = 64, progress: bool = True,
             train_fn: TrainFn | None = None, on_state: StateFn | None = None) -> list[dict[str, Any]]:
    """Train-or-reuse then evaluate-or-reuse every job in order, in this process; one eval record per job.

    ``on_state`` hears each job start and end (the job list's state file for `dkp watch`); the first failure
    stops the list, as it always has in this sequential launcher."""
    records: list[dict[str, Any]] = []
    bar = JobProgress(sum(j.cfg.train.iterations for j in jobs), enabled=progress)
    finished = False
    report = on_state or (lambda job, state, message: None)
    try:
        for job in jobs:
            state = run_state(job)
            report(job, "running", "")
            if state != "finished":
                bar.start_training(job, "resuming" if state == "partial" else "training")
            try:
                what = ensure_trained(job, train_fn)
            except BaseException as err:
                bar.stop_following()
                report(job, "failed", f"{type(err).__name__}: {err}")
                raise
            bar.finish_training(job, trained=state != "finished")
            if what != "reused":
                bar.note(f"{job.label}: {what} → {job.run}")
            try:
                record = evaluate_job(job, device, batch_size, bar.eval_callback(job))
            except BaseException as err:
                report(job, "failed", f"{type(err).__name__}: {err}")
                raise
            report(job, "finished", "")
            records.append(record)
            bar.note(f"{job.label}: {record.get('metric')} = {record.get('value'):.4g}")
        finished = True
    finally:
        bar.close(finished)
    return records
