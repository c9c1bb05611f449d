"""A fake training run for the dashboard tests (imported by name: unique, unlike `conftest`): run.json, metrics lines written one by one, sample PNGs.

Everything is deterministic (fixed clock, values from the step number) so that snapshots never change.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from dkp_tui.watch.sysstats import GpuStats, SysStats

T0 = 1_700_000_000.0  # the fake runs' start time; tests use a clock fixed a little after it
FIXED_STATS = SysStats(
    cpu_percent=37.0, cpu_count=2, ram_used_mb=6144.0, ram_total_mb=23552.0, gpus=(), gpu_note="no GPU"
)
GPU_STATS = SysStats(
    cpu_percent=12.0,
    cpu_count=16,
    ram_used_mb=40960.0,
    ram_total_mb=131072.0,
    gpus=(GpuStats(0, "NVIDIA H100", 87.0, 30720.0, 81559.0, 61.0),),
)


class FakeRun:
    """Writes a run directory the way `dkp train` does, but line by line under the test's control."""

    def __init__(
        self,
        root: Path,
        name: str,
        role: str = "student",
        total: int = 1000,
        distill: bool = True,
        status: str = "running",
    ) -> None:
        self.path = root / name
        self.path.mkdir(parents=True, exist_ok=True)
        self.role, self.total, self.distill = role, total, distill
        self.write_run_json(status=status, step=0)
        (self.path / "config.toml").write_text("[model]\nn_keypoints = 10\n", encoding="utf-8")

    def write_run_json(self, status: str, step: int, message: str = "") -> None:
        info = {
            "role": self.role,
            "status": status,
            "step": step,
            "total_steps": self.total,
            "seed": 0,
            "teacher_run": "runs/teacher" if self.distill else None,
            "created": T0,
            "updated": T0,
            "message": message,
            "format_version": 1,
            "dkp_version": "0.1.0",
        }
        (self.path / "run.json").write_text(json.dumps(info), encoding="utf-8")

    @property
    def metrics(self) -> Path:
        return self.path / "metrics.jsonl"

    def append_raw(self, text: str) -> None:
        with open(self.metrics, "a", encoding="utf-8") as fh:
            fh.write(text)

    def start(self) -> None:
        self.append_raw(
            json.dumps(
                {
                    "kind": "start",
                    "time": T0,
                    "step": 0,
                    "role": self.role,
                    "total_steps": self.total,
                    "device": "cpu",
                }
            )
            + "\n"
        )

    def step_record(self, step: int, seconds_per_step: float = 0.5) -> dict[str, Any]:
        scale = (
            1.0 if self.role == "student" else 0.6
        )  # so a compared teacher's curve does not hide under the student's
        rec = scale * (0.8 * math.exp(-step / 150) + 0.1 + 0.02 * math.sin(step / 3))
        kd = 0.5 * math.exp(-step / 80) + 0.05 if self.distill else None
        return {
            "kind": "step",
            "time": T0 + step * seconds_per_step,
            "step": step,
            "total_steps": self.total,
            "elapsed": step * seconds_per_step,
            "loss": rec + (kd or 0.0),
            "loss_rec": rec,
            "loss_kd": kd,
            "lr": 1e-4,
            "images_per_s": 16.0 + (step % 7) * 0.1,
            "alpha": min(1.0, step / 500),
            "edge_w_mean": 0.3 + step / 5000,
            "edge_w_std": 0.1 + step / 10000,
            "edge_w_max": 0.9,
            "cpu_percent": 180.0,
            "rss_mb": 1500.0,
            "future_key": [1, 2],
        }

    def steps(self, first: int, last: int, every: int = 10) -> None:
        self.append_raw(
            "".join(json.dumps(self.step_record(s)) + "\n" for s in range(first, last + 1, every))
        )

    def end(self, step: int, status: str = "finished") -> None:
        self.append_raw(
            json.dumps(
                {"kind": "end", "time": T0 + step * 0.5 + 1, "step": step, "status": status, "message": ""}
            )
            + "\n"
        )
        self.write_run_json(status=status, step=step)

    def sample(self, step: int, teacher: bool = False) -> None:
        """A 4×2 grid of 32 px tiles with coloured 'keypoints', as samples/step_NNNNNNN[_teacher].png."""
        grid = np.zeros((64, 128, 3), dtype=np.uint8)
        yy, xx = np.mgrid[0:64, 0:128]
        grid[..., 0] = (xx * 2) % 256
        grid[..., 1] = (yy * 4) % 256
        grid[..., 2] = 96
        for i in range(8):
            cy, cx = 16 + 32 * (i // 4), 16 + 32 * (i % 4) + (step // 100) % 8
            grid[cy - 2 : cy + 2, cx - 2 : cx + 2] = (255, 255, 0)
        if teacher:
            grid = np.repeat(grid.mean(axis=2, keepdims=True).astype(np.uint8), 3, axis=2)
        (self.path / "samples").mkdir(exist_ok=True)
        suffix = "_teacher" if teacher else ""
        Image.fromarray(grid).save(self.path / "samples" / f"step_{step:07d}{suffix}.png")


def two_runs(root: Path) -> tuple[FakeRun, FakeRun]:
    """A finished teacher and a distilled student at step 500 of 1000 with samples."""
    teacher = FakeRun(root, "teacher", role="teacher", total=500, distill=False)
    teacher.start()
    teacher.steps(10, 500)
    teacher.end(500)
    teacher.sample(500)
    student = FakeRun(root, "student", role="student", total=1000, distill=True)
    student.start()
    student.steps(10, 500)
    student.sample(500)
    student.sample(500, teacher=True)
    return teacher, student
