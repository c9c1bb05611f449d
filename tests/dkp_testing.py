"""Helpers importable from any test module (a uniquely named module, unlike conftest.py)."""

from __future__ import annotations

from pathlib import Path


def tiny_overrides(dataset: Path, iterations: int = 4, **extra: object) -> list[str]:
    """--set overrides for a model small enough to train a few steps in about a second on CPU."""
    values = {
        "data.dataset": f'"{dataset}"',
        "model.image_size": 64,
        "model.width": 0.125,
        "model.n_keypoints": 8,
        "model.thickness": 1e-3,
        "loss.reconstruction": '"pixel"',
        "train.iterations": iterations,
        "train.batch_size": 4,
        "train.log_every": 1,
        "train.sample_every": 2,
        "train.checkpoint_every": 2,
        "train.n_samples": 4,
        "train.device": '"cpu"',
    }
    values.update({k.replace("__", "."): v for k, v in extra.items()})
    return [f"{k}={v}" for k, v in values.items()]
