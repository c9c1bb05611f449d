"""Shared fixtures: a tiny synthetic data set (built once per session) and a tiny, fast training config."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never touch the network


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 64-px cluttered synthetic set: 48 train, 24 fit, 24 test images with exact depth."""
    from dkp_tui.data.synthetic import generate_dataset

    root = tmp_path_factory.mktemp("data") / "synthetic"
    generate_dataset(root, size=64, n_train=48, n_fit=24, n_test=24, background="cluttered", seed=0, progress=False)
    return root


def _tiny_overrides(dataset: Path, iterations: int = 4, **extra: object) -> list[str]:
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


@pytest.fixture(scope="session")
def tiny_overrides():
    """``tiny_overrides(dataset, iterations=4, kd__gamma=0.5)`` -> list of ``section.key=value`` strings."""
    return _tiny_overrides
