"""The resumable shard loop shared by `dkp depth` and `dkp depth --import`.

Work is planned as shards (``cache.DEFAULT_SHARD_SIZE`` images); finished shards are skipped; each shard is split
into batches that start at the shard's start, so a resumed run feeds the model exactly the batches a fresh run
would (same bytes). One prefetch thread reads (and, on CPU, preprocesses) the next batch while the current one
runs, and one batch is kept in flight so that a GPU never waits for the host to write a shard. A shard is written
(atomically) as soon as its last batch is collected: a killed run loses at most the shard it was filling.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from dkp_tui.errors import DkpError
from dkp_tui.formats import depth_cache as cache
from dkp_tui.formats.dataset_dir import Manifest, open_split


@dataclass(frozen=True)
class ShardJob:
    split: str  # the physical split
    index: int
    start: int
    stop: int


@dataclass(frozen=True)
class SplitPlan:
    split: str  # physical split (``same_as`` followed)
    count: int
    frame_hw: tuple[int, int]


class PendingBatch(Protocol):
    def result(self) -> tuple[np.ndarray, int]: ...  # uint16 (n, H, W) codes, number of constant maps


class Backend(Protocol):
    def load(self, split: str, start: int, stop: int) -> Any: ...  # prefetch thread

    def submit(self, loaded: Any, frame_hw: tuple[int, int]) -> PendingBatch: ...  # main thread


def physical_splits(dataset: str | Path, manifest: Manifest, splits: str | None) -> tuple[list[SplitPlan],
                                                                                            dict[str, str]]:
    """The requested splits (comma list; None = all) as the physical splits holding them, each once.

    Also returns the ``same_as`` aliases among the requested splits (e.g. ``{"fit": "train"}``).
    """
    names = [s.strip() for s in splits.split(",") if s.strip()] if splits else list(manifest.splits)
    unknown = [s for s in names if s not in manifest.splits]
    if unknown:
        raise DkpError(f"--splits: {dataset} has no split {', '.join(unknown)} (has {', '.join(manifest.splits)})")
    plans: dict[str, SplitPlan] = {}
    aliases: dict[str, str] = {}
    for name in names:
        physical = manifest.splits[name].same_as or name
        if physical != name:
            aliases[name] = physical
        if physical not in plans:
            images = open_split(dataset, physical, manifest).images
            plans[physical] = SplitPlan(physical, int(images.shape[0]), (int(images.shape[1]), int(images.shape[2])))
    return list(plans.values()), aliases


def rank_share(jobs: list[ShardJob], rank: int, world_size: int) -> list[ShardJob]:
    """This rank's shards under torchrun: every ``world_size``-th of the shards still to do, from the ``rank``-th.

    Dealt from the unfinished shards (not by shard number), so a resumed cache spreads what is left evenly
    whatever the number of ranks that filled the rest; every rank plans the same list before any rank writes.
    """
    return jobs[rank::world_size]


def plan_jobs(dataset: str | Path, tag: str, plans: list[SplitPlan], shard_size: int) -> tuple[list[ShardJob], int]:
    """The shards still to compute, and how many images the finished ones hold."""
    jobs, skipped = [], 0
    for plan in plans:
        done = cache.finished_shards(dataset, tag, plan.split, plan.count, shard_size, plan.frame_hw)
        for i, finished in enumerate(done):
            start, stop = i * shard_size, min((i + 1) * shard_size, plan.count)
            if finished:
                skipped += stop - start
            else:
                jobs.append(ShardJob(plan.split, i, start, stop))
    return jobs, skipped


class RateColumn(ProgressColumn):
    """images/s over the work done in this run (resumed shards do not inflate it)."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:7.1f} img/s" if speed else "    ... img/s", style="cyan")


@contextmanager
def progress_bar(label: str, total: int, quiet: bool) -> Iterator[Any]:
    """Yields ``advance(n)``; a rich bar with images/s and ETA on stderr unless ``quiet``."""
    if quiet or total == 0:
        yield lambda n: None
        return
    console = Console(stderr=True)
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), RateColumn(),
               TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task(label, total=total)
        yield lambda n: progress.advance(task, n)


def run_jobs(dataset: str | Path, tag: str, jobs: list[ShardJob], plans: list[SplitPlan], backend: Backend,
             batch_size: int, label: str, quiet: bool) -> dict[str, Any]:
    """Compute and write every job's shard; returns images computed, constant maps among them, and seconds."""
    frame_hw = {p.split: p.frame_hw for p in plans}
    batches = [(job, s, min(s + batch_size, job.stop)) for job in jobs for s in range(job.start, job.stop, batch_size)]
    parts: dict[ShardJob, list[np.ndarray]] = {}
    constants: dict[ShardJob, int] = {}
    totals = {"images": 0, "constant": 0, "seconds": 0.0}
    timer = Timer()

    with progress_bar(label, sum(j.stop - j.start for j in jobs), quiet) as advance:

        def collect(item: tuple[ShardJob, PendingBatch]) -> None:
            job, pending = item
            codes, constant = pending.result()
            parts.setdefault(job, []).append(codes)
            constants[job] = constants.get(job, 0) + constant
            totals["images"] += len(codes)
            totals["constant"] += constant
            advance(len(codes))
            if sum(len(p) for p in parts[job]) == job.stop - job.start:
                cache.write_shard(dataset, tag, job.split, job.index, np.concatenate(parts.pop(job)),
                                  constants.pop(job))

        in_flight: tuple[ShardJob, PendingBatch] | None = None
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="dkp-depth-load") as pool:
            future: Future[Any] | None = pool.submit(backend.load, *_where(batches[0])) if batches else None
            for i, (job, _, _) in enumerate(batches):
                assert future is not None
                loaded = future.result()
                future = pool.submit(backend.load, *_where(batches[i + 1])) if i + 1 < len(batches) else None
                try:
                    pending = backend.submit(loaded, frame_hw[job.split])
                except BaseException:
                    if in_flight is not None:  # keep what was already computed
                        collect(in_flight)
                    raise
                if in_flight is not None:
                    collect(in_flight)
                in_flight = (job, pending)
            if in_flight is not None:
                collect(in_flight)
    totals["seconds"] = timer.seconds
    return totals


def _where(batch: tuple[ShardJob, int, int]) -> tuple[str, int, int]:
    job, start, stop = batch
    return job.split, start, stop


class Timer:
    def __init__(self) -> None:
        self.start = time.perf_counter()

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.start


def summary(dataset: str | Path, tag: str, manifest: dict[str, Any], totals: dict[str, Any], skipped: int,
            seconds: float) -> dict[str, Any]:
    """What `--json` prints: the whole cache's counts and this run's work (images/s over the shard loop only)."""
    loop = float(totals.get("seconds", 0.0))
    return {
        "dataset": str(dataset),
        "tag": tag,
        "source": manifest.get("source"),
        "model": (manifest.get("model") or {}).get("id"),
        "splits": manifest.get("splits", {}),
        "images": manifest.get("images", 0),
        "constant_maps": manifest.get("constant_maps", 0),
        "computed": totals["images"],
        "computed_constant": totals["constant"],
        "skipped": skipped,
        "seconds": round(seconds, 3),
        "compute_seconds": round(loop, 3),
        "images_per_s": round(totals["images"] / loop, 2) if loop > 0 and totals["images"] else 0.0,
    }
