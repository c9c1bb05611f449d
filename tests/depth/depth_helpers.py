"""Helpers for the depth tests: a tiny random DPT (Swin-V2) model saved like a real one, and a tiny data set."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dkp_tui.formats.dataset_dir import Manifest, SplitInfo, write_manifest, write_split

MODEL_INPUT = 128  # the tiny model's processor size (the real ones use 256 or 384)
FRAME = 32  # the tiny data set's frame size


def build_tiny_dpt(directory: Path) -> Path:
    """A randomly initialised DPT with a Swin-V2 backbone (~0.4 M parameters) and its image processor, on disk."""
    import torch
    from transformers import DPTConfig, DPTForDepthEstimation, DPTImageProcessor, Swinv2Config

    torch.manual_seed(0)
    backbone = Swinv2Config(embed_dim=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 2, 2], window_size=8,
                            image_size=MODEL_INPUT, out_features=["stage1", "stage2", "stage3", "stage4"])
    config = DPTConfig(backbone_config=backbone, neck_hidden_sizes=[16, 32, 64, 128], fusion_hidden_size=16)
    DPTForDepthEstimation(config).eval().save_pretrained(directory)
    DPTImageProcessor(size={"height": MODEL_INPUT, "width": MODEL_INPUT}).save_pretrained(directory)
    return directory


def smooth_frames(n: int, size: int, seed: int) -> np.ndarray:
    """Smooth colour gradients (natural-image-like, so that resampling differences stay small)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    out = np.empty((n, size, size, 3), np.uint8)
    for i in range(n):
        a, b, c = rng.uniform(0, 6, 3)
        phase = np.arange(3) * 0.7 + c
        out[i] = (127 + 120 * np.sin(a * xx[..., None] + b * yy[..., None] + phase)).astype(np.uint8)
    return out


def write_tiny_dataset(root: Path, n_train: int = 10, n_test: int = 3) -> Path:
    """train (with names.json, nested names), fit = same_as train, test (no names.json)."""
    write_split(root, "train", smooth_frames(n_train, FRAME, 0),
                names=[f"clip{i // 4}/{i:04d}.png" for i in range(n_train)])
    write_split(root, "test", smooth_frames(n_test, FRAME, 1))
    splits = {"train": SplitInfo(n_train), "fit": SplitInfo(n_train, same_as="train"), "test": SplitInfo(n_test)}
    write_manifest(root, Manifest(kind="folder", image_size=FRAME, splits=splits))
    return root
