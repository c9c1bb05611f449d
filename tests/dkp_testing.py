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


def random_weights(path: Path, dataset: Path, role: str = "student", seed: int = 0, **extra: object) -> Path:
    """A model.safetensors with random weights, BN statistics and edge logits, as `dkp train` writes it, without
    training: for tests of what reads weights (export, infer, figures). Non-trivial BN statistics make a
    train-mode/eval-mode mix-up visible."""
    import torch

    from dkp_tui.config import load_config
    from dkp_tui.formats.run_dir import save_weights
    from dkp_tui.model.autolink import AutoLink

    cfg = load_config(None, tiny_overrides(dataset, **extra))
    torch.manual_seed(seed)
    model = AutoLink(cfg.model)
    state = model.state_dict()
    for name, tensor in state.items():
        if name.endswith("running_mean"):
            tensor.normal_(0.0, 0.2)
        elif name.endswith("running_var"):
            tensor.uniform_(0.5, 2.0)
        elif name == "edges.logits":
            tensor.normal_(0.0, 1.0)
    save_weights(path, state, cfg, role, 7)
    return path
