"""TensorBoard event files mirroring ``metrics.jsonl`` (``train.tensorboard = true``, or `dkp export-metrics`).

metrics.jsonl stays the primary record (`dkp watch` and `dkp eval` read it); this is a copy in the format
researchers already keep their other projects' curves in. Each step line becomes scalars at the same step, with
the line's own wall time, and each samples/ overlay an image: a run converted afterwards looks the same as one
logged live. Tags: ``loss/<term>`` for every loss term (``loss`` itself is ``loss/total``), then ``optim/lr``,
``speed/images_per_s``, ``edges/w_mean|w_std|w_max`` (+ an ``edges/weights`` histogram at sample steps),
``model/alpha``, ``system/*``; numeric keys this module does not know yet go to ``other/<key>`` rather than nowhere.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from dkp_tui.errors import DkpError
from dkp_tui.extras import require
from dkp_tui.formats.jsonl import read_jsonl

TB_DIR = "tensorboard"  # under the run directory
TAGS = {
    "loss": "loss/total", "lr": "optim/lr", "images_per_s": "speed/images_per_s", "alpha": "model/alpha",
    "edge_w_mean": "edges/w_mean", "edge_w_std": "edges/w_std", "edge_w_max": "edges/w_max",
    "cpu_percent": "system/cpu_percent", "rss_mb": "system/rss_mb", "gpu_mem_mb": "system/gpu_mem_mb",
}
NOT_SCALARS = {"kind", "step", "total_steps", "time", "elapsed"}
SAMPLE_PNG = re.compile(r"step_(\d{7})(_teacher)?\.png$")


def scalar_tag(key: str) -> str:
    if key in TAGS:
        return TAGS[key]
    if key.startswith("loss_"):
        return f"loss/{key[len('loss_'):]}"
    return f"other/{key}"


class TensorBoardLog:
    """One SummaryWriter; the training loop hands it what it writes to metrics.jsonl and samples/."""

    def __init__(self, log_dir: str | Path, purge_step: int | None = None) -> None:
        require("tensorboard")
        from torch.utils.tensorboard import SummaryWriter

        self.log_dir = Path(log_dir)
        # purge_step: on resume TensorBoard hides events logged after the checkpoint, as metrics.jsonl drops them
        self.writer = SummaryWriter(str(self.log_dir), purge_step=purge_step or None, flush_secs=10)

    def record(self, kind: str, fields: dict[str, Any]) -> None:
        """A metrics.jsonl line: step lines become scalars, the rest is not a curve."""
        if kind != "step" or fields.get("step") is None:
            return
        step, walltime = int(fields["step"]), fields.get("time")
        for key, value in fields.items():
            if key in NOT_SCALARS or isinstance(value, bool) or not isinstance(value, (int, float)):
                continue  # None (e.g. loss_kd without a teacher) is no point rather than a zero
            self.writer.add_scalar(scalar_tag(key), float(value), step, walltime=walltime)

    def image(self, tag: str, step: int, image: np.ndarray, walltime: float | None = None) -> None:
        """An H x W x 3 uint8 overlay grid."""
        self.writer.add_image(tag, np.ascontiguousarray(image), step, dataformats="HWC", walltime=walltime)

    def histogram(self, tag: str, step: int, values: np.ndarray) -> None:
        self.writer.add_histogram(tag, np.asarray(values, dtype=np.float64), step)

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def _read_png(path: Path) -> np.ndarray | None:
    import cv2

    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    return None if bgr is None else cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def convert_run(run: str | Path, out_dir: str | Path) -> dict[str, Any]:
    """An existing run's metrics.jsonl (and samples/ PNGs) as event files in ``out_dir``, which must not exist
    yet: everything is written to a temporary directory next to it and renamed, so a failed conversion leaves
    nothing that TensorBoard would show half of."""
    from dkp_tui.formats.run_dir import METRICS, SAMPLES

    require("tensorboard")  # before anything is created
    run, out_dir = Path(run), Path(out_dir)
    metrics = run / METRICS
    if not metrics.is_file():
        raise DkpError(f"{run}: no {METRICS}; not a dkp run directory (or it never started)")
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise DkpError(f"{out_dir} already exists and is not empty; TensorBoard would merge the two; "
                       "choose a new directory")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=out_dir.parent))
    steps = images = skipped = 0
    try:
        log = TensorBoardLog(tmp)
        try:
            records, skipped = read_jsonl(metrics)  # a torn or undecodable tail is dropped and counted
            for obj in records:
                if obj.get("kind") == "step":
                    log.record("step", obj)
                    steps += 1
            for png in sorted((run / SAMPLES).glob("step_*.png")):
                m = SAMPLE_PNG.search(png.name)
                image = _read_png(png) if m else None
                if image is None:
                    continue
                log.image("samples/teacher" if m.group(2) else "samples/keypoints", int(m.group(1)), image,
                          walltime=png.stat().st_mtime)
                images += 1
        finally:
            log.close()
        if out_dir.exists():
            out_dir.rmdir()  # empty (checked above)
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {"run": str(run), "out": str(out_dir), "steps": steps, "images": images, "skipped_lines": skipped}
