"""``metrics.jsonl``: one JSON object per line, appended and flushed per line so that readers can tail it.

Every line has ``"kind"``: ``"start"`` (config summary), ``"step"`` (training metrics), ``"checkpoint"``,
``"end"`` (status finished / failed with a message). Step lines carry: step, time (unix s), elapsed (s), loss,
loss_rec, loss_kd (null without a teacher), lr, images_per_s, alpha, edge_w_mean, edge_w_std, edge_w_max,
cpu_percent, rss_mb and, on CUDA, gpu_mem_mb. Readers must ignore keys they do not know.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dkp_tui.jsonl import read_jsonl

if TYPE_CHECKING:
    from dkp_tui.train.tensorboard import TensorBoardLog


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class MetricsWriter:
    """Appends whole lines only (one ``write`` per line) so a reader never sees a torn line unless we crash."""

    def __init__(self, path: str | Path, truncate_after_step: int | None = None,
                 mirror: TensorBoardLog | None = None) -> None:
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
