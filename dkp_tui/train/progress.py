"""The progress bar of `dkp train`: step/total, loss, images/s, ETA (on stderr; off with --quiet)."""

from __future__ import annotations

from typing import Any

from dkp_tui.progress import new_progress


class TrainProgress:
    def __init__(self, total: int, start: int, label: str, enabled: bool = True) -> None:
        self.enabled = enabled
        if not enabled:
            return
        self.progress = new_progress(fields=("loss {task.fields[loss]}", "{task.fields[ips]} img/s"))
        self.task = self.progress.add_task(label, total=total, completed=start, loss="-", ips="-")
        self.progress.start()

    def update(self, step: int, record: dict[str, Any]) -> None:
        if self.enabled:
            self.progress.update(self.task, completed=step, loss=f"{record['loss']:.4f}",
                                 ips=f"{record['images_per_s']:.1f}")

    def close(self) -> None:
        if self.enabled:
            self.progress.stop()
            self.enabled = False
