"""The learning rate at a step: a pure function of (step, config), so a resumed run continues the same curve.

``constant`` is the reference code's (AutoLink and Distill-DKP train at a fixed lr) and every preset's. ``cosine``
(with an optional linear warm-up) is for longer budgets than the CPU presets': at 2,000 iterations on the synthetic
set it made the image-only student worse, because the error is still falling at the full lr at the end
(docs/results.md).
"""

from __future__ import annotations

import math

from dkp_tui.config import LR_SCHEDULES as SCHEDULES


def lr_at(step: int, base_lr: float, total_steps: int, schedule: str = "constant", warmup_steps: int = 0,
          min_ratio: float = 0.0) -> float:
    """lr for the update that follows ``step`` finished updates (0-based), out of ``total_steps``."""
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown lr schedule {schedule!r}; one of {', '.join(SCHEDULES)}")
    if warmup_steps > 0 and step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    if schedule == "constant":
        return base_lr
    span = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    floor = base_lr * min_ratio
    return floor + (base_lr - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))
