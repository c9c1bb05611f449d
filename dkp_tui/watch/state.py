"""Run discovery and the metrics model the dashboard's widgets read (no widgets, no torch, no writes).

The run directory's names and the metrics record's keys come from ``dkp_tui.formats``, which loads no torch: the
dashboard must start in well under a second, so it reads the run directory's JSON files directly.
"""

from __future__ import annotations

import json
import os
import statistics
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dkp_tui.errors import DkpError
from dkp_tui.formats.job_list import JOB_LIST, JobEntry, read_job_list, resolve
from dkp_tui.formats.metrics import SERIES_KEYS
from dkp_tui.formats.run_dir import CKPT_DIR, METRICS, RUN_JSON, SAMPLES, parse_sample_name
from dkp_tui.watch.tail import JsonlTailer

SKIP_DIRS = {SAMPLES, CKPT_DIR, "__pycache__"}  # never hold runs; not descended into

STALL_FACTOR = 10.0  # running, but no line for this many usual intervals -> stalled
STALL_MIN_S = 60.0  # ... and never sooner than this (checkpoints and sample grids take a while)
STALL_NO_DATA_S = 600.0  # a run with no step lines yet is stalled after this long without any sign of life
RATE_WINDOW = 32  # recent step lines used for the rate, the ETA and the usual interval

# chart groups: name -> (metric key, legend label); `m` cycles through them
CHART_GROUPS: dict[str, tuple[tuple[str, str], ...]] = {
    "loss": (("loss", "total"), ("loss_rec", "rec"), ("loss_kd", "kd")),
    "edge weights": (("edge_w_mean", "mean"), ("edge_w_std", "std"), ("edge_w_max", "max")),
    "alpha": (("alpha", "α"),),
    "lr": (("lr", "lr"),),
    "images/s": (("images_per_s", "img/s"),),
}
SMOOTHING_LEVELS = (0.0, 0.6, 0.9, 0.98)  # EMA weights that `s` cycles through (0 = raw)


class Series:
    """Append-only (step, value) points in growable numpy arrays, with a cached incremental EMA.

    Recomputing an EMA over 20,000 points on every refresh would cost a few % of a core; extending it costs nothing.
    """

    def __init__(self) -> None:
        self._x = np.empty(256, dtype=np.float64)
        self._y = np.empty(256, dtype=np.float64)
        self._n = 0
        self._ema = np.empty(256, dtype=np.float64)
        self._ema_n = 0
        self._ema_weight = -1.0
        self._ema_state = 0.0

    def __len__(self) -> int:
        return self._n

    def append(self, x: float, y: float) -> None:
        if self._n == len(self._x):
            self._x = np.concatenate([self._x, np.empty_like(self._x)])
            self._y = np.concatenate([self._y, np.empty_like(self._y)])
        self._x[self._n] = x
        self._y[self._n] = y
        self._n += 1

    @property
    def x(self) -> np.ndarray:
        return self._x[: self._n]

    @property
    def y(self) -> np.ndarray:
        return self._y[: self._n]

    def smoothed(self, weight: float) -> np.ndarray:
        """Bias-corrected EMA (as TensorBoard draws it), so the first points are not pulled towards zero."""
        if weight <= 0.0:
            return self.y
        if weight != self._ema_weight:
            self._ema_weight, self._ema_n, self._ema_state = weight, 0, 0.0
        if len(self._ema) < self._n:
            self._ema = np.concatenate([self._ema, np.empty(len(self._x) - len(self._ema))])
        state = self._ema_state
        for i in range(self._ema_n, self._n):
            state = weight * state + (1.0 - weight) * float(self._y[i])
            self._ema[i] = state / (1.0 - weight ** (i + 1))
        self._ema_state, self._ema_n = state, self._n
        return self._ema[: self._n]


@dataclass
class RunMeta:
    """The fields of ``run.json`` the dashboard shows; a missing or corrupt file gives an 'unknown' run."""

    role: str = "?"
    status: str = "unknown"
    step: int = 0
    total_steps: int = 0
    teacher_run: str | None = None
    updated: float = 0.0
    message: str = ""
    created: float = 0.0


def read_run_meta(run: Path) -> RunMeta:
    try:
        d = json.loads((run / RUN_JSON).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return RunMeta()
    if not isinstance(d, dict):
        return RunMeta()
    return RunMeta(
        role=str(d.get("role") or "?"),
        status=str(d.get("status") or "unknown"),
        step=_int(d.get("step")),
        total_steps=_int(d.get("total_steps")),
        teacher_run=d.get("teacher_run") if isinstance(d.get("teacher_run"), str) else None,
        updated=_float(d.get("updated")) or 0.0,
        message=str(d.get("message") or ""),
        created=_float(d.get("created")) or 0.0,
    )


def _int(v: Any) -> int:
    return int(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v) else 0


def _float(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    f = float(v)
    return f if np.isfinite(f) else None


def find_runs(root: Path, max_depth: int = 3) -> list[Path]:
    """Every run directory (one holding ``run.json``) at or under ``root``, sorted; runs do not nest."""
    if (root / RUN_JSON).is_file():
        return [root]
    found: list[Path] = []

    def walk(d: Path, depth: int) -> None:
        try:
            entries = sorted(os.scandir(d), key=lambda e: e.name)
        except OSError:
            return
        for e in entries:
            if e.name.startswith(".") or e.name in SKIP_DIRS or not e.is_dir(follow_symlinks=False):
                continue
            p = Path(e.path)
            if (p / RUN_JSON).is_file():
                found.append(p)
            elif depth < max_depth:
                walk(p, depth + 1)

    walk(root, 1)
    return found


def latest_samples(run: Path) -> tuple[Path | None, Path | None, int]:
    """(newest overlay grid, the teacher's grid of the same step or None, its step); (None, None, 0) if none yet."""
    best: dict[int, dict[bool, Path]] = {}
    try:
        with os.scandir(run / SAMPLES) as it:
            for e in it:
                parsed = parse_sample_name(e.name)
                if parsed:
                    best.setdefault(parsed[0], {})[parsed[1]] = Path(e.path)
    except OSError:
        return None, None, 0
    steps = [s for s, d in best.items() if False in d]
    if not steps:
        return None, None, 0
    step = max(steps)
    return best[step][False], best[step].get(True), step


class RunModel:
    """One run: its ``run.json``, its tailed metrics as series, and what is derived from them."""

    def __init__(self, path: Path, name: str) -> None:
        self.path = path
        self.name = name
        self.tailer = JsonlTailer(path / METRICS)
        self.meta = RunMeta()
        self._meta_mtime = -1
        self.gone = False  # its folder (or run.json) was deleted: shown as "gone", not as its last status
        self._identity: tuple[int, int] | None = None  # the folder's device and inode
        self._samples_mtime = -1
        self._samples: tuple[Path | None, Path | None, int] = (None, None, 0)
        self.version = 0  # bumped whenever anything shown may have changed
        self.job: JobEntry | None = None  # its entry in the job list that planned it (jobs.json), if any
        self._clear()

    def _clear(self) -> None:
        self.series: dict[str, Series] = {k: Series() for k in SERIES_KEYS}
        self.last: dict[str, Any] = {}  # the newest step line
        self.start: dict[str, Any] = {}
        self.end: dict[str, Any] = {}
        self.last_checkpoint: int | None = None
        self.last_time: float | None = None  # "time" of the newest line of any kind
        self.recent: deque[tuple[float, float]] = deque(maxlen=RATE_WINDOW)  # (time, step) of step lines

    @property
    def corrupt(self) -> int:
        return self.tailer.corrupt

    def poll(self) -> bool:
        """Read what is new on disk; True when something changed. A run whose folder was deleted is marked gone,
        and one replaced by another run (a new folder, or a new run.json "created") starts over, on this poll."""
        changed = self._poll_identity()
        if self.gone:
            return changed
        changed |= self._poll_meta()
        batch = self.tailer.poll()
        if batch.reset:
            self._clear()
            changed = True
        for rec in batch.records:
            self._ingest(rec)
        if batch.records:
            changed = True
        if changed:
            self.version += 1
        return changed

    def _poll_identity(self) -> bool:
        try:
            st = os.stat(self.path)
            present = (self.path / RUN_JSON).is_file()
        except OSError:
            present = False
        if not present:
            if self.gone:
                return False
            self._start_over()
            self.gone, self.meta = True, RunMeta(status="gone")
            return True
        folder = (st.st_dev, st.st_ino)
        if self.gone or (self._identity is not None and self._identity != folder):
            self._start_over()  # back, or another folder under the same name: another run
            self._identity = folder
            return True
        self._identity = folder
        return False

    def _start_over(self) -> None:
        """Forget everything read: the folder is gone or now holds another run."""
        self.gone, self._identity, self._meta_mtime, self.meta = False, None, -1, RunMeta()
        self._clear()
        self.tailer = JsonlTailer(self.path / METRICS)
        self.version += 1

    def _poll_meta(self) -> bool:
        try:
            mtime = (self.path / RUN_JSON).stat().st_mtime_ns
        except OSError:
            return False
        if mtime == self._meta_mtime:
            return False
        self._meta_mtime = mtime
        previous = self.meta
        self.meta = read_run_meta(self.path)
        if previous.created and self.meta.created and previous.created != self.meta.created:
            self._start_over()  # the same folder, a new run (deleted and trained again between two polls)
            self._meta_mtime = mtime
            self.meta = read_run_meta(self.path)
        return True

    def _ingest(self, rec: dict[str, Any]) -> None:
        kind = rec.get("kind")
        t = _float(rec.get("time"))
        if t is not None:
            self.last_time = t
        if kind == "step":
            step = _float(rec.get("step"))
            if step is None:
                self.tailer.corrupt += 1  # a step line without a step cannot be placed on any curve
                return
            for key in SERIES_KEYS:
                v = _float(rec.get(key))
                if v is not None:
                    self.series[key].append(step, v)
            self.last = rec
            if t is not None:
                self.recent.append((t, step))
        elif kind == "start":
            self.start = rec
        elif kind == "end":
            self.end = rec
        elif kind == "checkpoint":
            self.last_checkpoint = _int(rec.get("step"))

    # -- derived -------------------------------------------------------------------------------------
    @property
    def role(self) -> str:
        role = self.meta.role if self.meta.role != "?" else str(self.start.get("role") or "?")
        return self.job.role if role == "?" and self.job is not None else role

    @property
    def distilled(self) -> bool:
        return bool(self.meta.teacher_run or self.start.get("teacher_run")) or len(self.series["loss_kd"]) > 0

    @property
    def step(self) -> int:
        steps = [_int(self.last.get("step")), _int(self.end.get("step")), self.meta.step]
        return max(steps)

    @property
    def total(self) -> int:
        for v in (self.last.get("total_steps"), self.start.get("total_steps"), self.meta.total_steps):
            if _int(v) > 0:
                return _int(v)
        return 0

    def last_value(self, key: str) -> float | None:
        return _float(self.last.get(key))

    def usual_interval(self) -> float | None:
        """Median seconds between step lines lately (robust to a slow checkpoint now and then)."""
        times = [t for t, _ in self.recent]
        diffs = [b - a for a, b in zip(times, times[1:], strict=False) if b >= a]
        return statistics.median(diffs) if diffs else None

    def steps_per_s(self) -> float | None:
        if len(self.recent) < 2:
            return None
        (t0, s0), (t1, s1) = self.recent[0], self.recent[-1]
        return (s1 - s0) / (t1 - t0) if t1 > t0 and s1 > s0 else None

    def status(self, now: float) -> str:
        """running / finished / failed / stalled / gone, or queued: an end line or run.json decide, else the
        metrics' timestamps; a deleted run is gone whatever it said last. A job list's run that has no folder yet
        shows its job's state (queued, on Slurm or behind its teacher), a job that failed shows failed (also
        when only its evaluation failed), and a stopped run that the job list queued or started again shows that
        until the run's own files say more."""
        job = self.job.state if self.job is not None else None
        if self.gone:
            return job or "gone"
        if job == "failed":
            return "failed"
        own = self._own_status(now)
        return job if job in ("queued", "running") and own in ("failed", "stalled", "unknown") else own

    def _own_status(self, now: float) -> str:
        end = str(self.end.get("status") or "")
        if end in ("finished", "failed"):
            return end
        if self.meta.status in ("finished", "failed"):
            return self.meta.status
        if self.meta.status == "unknown" and self.last_time is None:
            return "unknown"
        last = max(self.last_time or 0.0, self.meta.updated)
        interval = self.usual_interval()
        limit = max(STALL_FACTOR * interval, STALL_MIN_S) if interval else STALL_NO_DATA_S
        return "stalled" if last > 0 and now - last > limit else "running"

    def eta(self, now: float) -> float | None:
        """Seconds left at the recent rate, counted from the last line (so a paused writer's ETA does not shrink)."""
        rate = self.steps_per_s()
        if rate is None or self.total <= 0 or self.status(now) != "running":
            return None
        return max(self.total - self.step, 0) / rate

    def samples(self) -> tuple[Path | None, Path | None, int]:
        """Newest sample grid(s); re-scans the directory only when its mtime changed (a file was added)."""
        try:
            mtime = (self.path / SAMPLES).stat().st_mtime_ns
        except OSError:
            return (None, None, 0)
        if mtime != self._samples_mtime:
            self._samples_mtime = mtime
            self._samples = latest_samples(self.path)
        return self._samples


class WatchState:
    """All runs under a root, which one is shown, which one is compared, and the chart's view settings."""

    def __init__(self, root: str | os.PathLike[str], clock: Callable[[], float]) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            what = "is a file, not a directory" if self.root.exists() else "no such directory"
            raise DkpError(f"{self.root}: {what} (give a run directory or a directory of runs)")
        self.clock = clock
        self.runs: list[RunModel] = []
        self.jobs: list[JobEntry] = []  # the job list in the root (`dkp eval --runs`, `dkp sweep`), if any
        self._jobs_mtime = -1
        self.selected = 0
        self.compare: int | None = None
        self.group = "loss"
        self.smoothing = SMOOTHING_LEVELS[0]
        self.log_scale = False
        self.discover()

    def discover(self) -> bool:
        """Pick up runs that appeared (or vanished) under the root, and the job list's runs that have no folder
        yet; keeps the selection on the same run."""
        self._read_jobs()
        found = find_runs(self.root)
        planned = [p for p in (resolve(self.root, e.run) for e in self.jobs) if p is not None]
        paths = sorted(set(found) | set(planned)) if planned else found
        if [r.path for r in self.runs] == paths:
            return self._assign_jobs()
        old = {r.path: r for r in self.runs}
        current = self.current.path if self.current else None
        compared = self.runs[self.compare].path if self.compare is not None else None
        self.runs = [old.get(p) or RunModel(p, self._name(p)) for p in paths]
        index = {r.path: i for i, r in enumerate(self.runs)}
        self.selected = index.get(current, 0) if current else 0
        self.compare = index.get(compared) if compared else None
        self._assign_jobs()
        return True

    def _read_jobs(self) -> bool:
        """Re-read ``jobs.json`` when it changed; True when it did."""
        try:
            mtime = (self.root / JOB_LIST).stat().st_mtime_ns
        except OSError:
            mtime = 0
        if mtime == self._jobs_mtime:
            return False
        self._jobs_mtime = mtime
        job_list = read_job_list(self.root) if mtime else None
        self.jobs = job_list.jobs if job_list is not None else []
        return True

    def _assign_jobs(self) -> bool:
        by_path = {resolve(self.root, e.run): e for e in self.jobs}
        changed = False
        for run in self.runs:
            job = by_path.get(run.path)
            if job != run.job:
                run.job, changed = job, True
                run.version += 1
        return changed

    def _name(self, p: Path) -> str:
        if p == self.root:
            return p.resolve().name or str(p)
        return p.relative_to(self.root).as_posix()

    @property
    def current(self) -> RunModel | None:
        return self.runs[self.selected] if 0 <= self.selected < len(self.runs) else None

    @property
    def compared(self) -> RunModel | None:
        if self.compare is None or self.compare == self.selected or not 0 <= self.compare < len(self.runs):
            return None
        return self.runs[self.compare]

    def poll(self, everything: bool = True) -> bool:
        """Tail the shown and compared runs always, the others only when ``everything`` (they change less often);
        the job list's states on every poll (one small file)."""
        changed = self._assign_jobs() if self._read_jobs() else False
        for i, run in enumerate(self.runs):
            if everything or i in (self.selected, self.compare):
                changed |= run.poll()
        return changed

    def select(self, index: int) -> None:
        if self.runs:
            self.selected = max(0, min(index, len(self.runs) - 1))

    def toggle_compare(self, index: int | None = None) -> None:
        """Mark the run at ``index`` (default: the shown one) for comparison, or unmark it."""
        index = self.selected if index is None else index
        self.compare = None if self.compare == index else index

    def cycle_group(self) -> None:
        names = list(CHART_GROUPS)
        self.group = names[(names.index(self.group) + 1) % len(names)]

    def cycle_smoothing(self) -> None:
        i = SMOOTHING_LEVELS.index(self.smoothing) if self.smoothing in SMOOTHING_LEVELS else 0
        self.smoothing = SMOOTHING_LEVELS[(i + 1) % len(SMOOTHING_LEVELS)]
