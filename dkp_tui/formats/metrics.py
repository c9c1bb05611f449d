"""``metrics.jsonl``: one JSON object per line, appended and flushed per line so that readers can tail it.

Every line has ``"kind"`` (``KINDS``): ``"start"`` (config summary), ``"step"`` (training metrics),
``"checkpoint"``, ``"end"`` (status finished / failed with a message), and ``"time"`` (unix s). Step lines carry
``STEP_KEYS`` (loss_kd is null without a teacher) and, on CUDA, ``CUDA_STEP_KEYS``; ``SERIES_KEYS`` are the ones
that make curves. Readers must ignore keys they do not know.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any, Protocol

from dkp_tui.formats.jsonl import read_jsonl

KINDS = ("start", "step", "checkpoint", "end")
STEP_KEYS = ("step", "total_steps", "elapsed", "loss", "loss_rec", "loss_kd", "lr", "images_per_s", "alpha",
             "edge_w_mean", "edge_w_std", "edge_w_max", "cpu_percent", "rss_mb")
CUDA_STEP_KEYS = ("gpu_mem_mb",)
SERIES_KEYS = tuple(k for k in STEP_KEYS + CUDA_STEP_KEYS if k not in ("step", "total_steps", "elapsed"))


class RecordMirror(Protocol):
    """Somewhere else every record also goes (TensorBoard); closed with the writer."""

    def record(self, kind: str, record: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class MetricsWriter:
    """Appends whole lines only (one ``write`` per line) so a reader never sees a torn line unless we crash."""

    def __init__(self, path: str | Path, truncate_after_step: int | None = None,
                 mirror: RecordMirror | None = None) -> None:
        """``mirror``: also hand every record to this (a ``TensorBoardLog``), which is closed with the writer."""
        self.path = Path(path)
        self.mirror = mirror
        self.dropped = 0  # torn or undecodable lines dropped on resume
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if truncate_after_step is not None and self.path.exists():
            self._truncate_after(truncate_after_step)
        self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - kept open for the run's lifetime

    def _truncate_after(self, step: int) -> None:
        """On resume, drop lines logged after the checkpoint we resume from, so the curve has no duplicates, and
        a torn or undecodable tail left by a crash (counted in ``dropped``)."""
        from dkp_tui.atomic import write_text

        records, self.dropped = read_jsonl(self.path)
        kept = [r for r in records if not (isinstance(r.get("step"), int | float) and r["step"] > step)]
        write_text(self.path, "".join(json.dumps(r) + "\n" for r in kept))

    def write(self, kind: str, **fields: Any) -> None:
        record = {"kind": kind, "time": time.time(), **{k: _clean(v) for k, v in fields.items()}}
        self._fh.write(json.dumps(record) + "\n")
        self._fh.flush()
        if self.mirror is not None:
            self.mirror.record(kind, record)

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()
        if self.mirror is not None:
            self.mirror.close()
            self.mirror = None
