"""Distill-DKP's distillation term (spec §9.3): 1 - cos between student and frozen-teacher detector embeddings."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from dkp_tui.model.autolink import kd_embedding, kd_features
from dkp_tui.model.detector import Detector

COSINE_EPS = 1e-8


def kd_cosine_loss(student: Tensor, teacher: Tensor, reduce: str = "flatten") -> Tensor:
    """1 - mean over the batch of cos(z_S, z_T): 0 when they agree, same gradient as the paper's -cos.

    ``flatten`` takes one cosine per sample over the whole flattened embedding; ``channel`` takes one per spatial
    location over the channels, then the mean. Always fp32: bf16 dot products over 16k elements are too coarse.
    """
    if student.shape != teacher.shape:
        raise ValueError(
            f"student and teacher embeddings differ: {tuple(student.shape)} vs {tuple(teacher.shape)}"
        )
    with torch.autocast(device_type=student.device.type, enabled=False):
        s, t = student.float(), teacher.detach().float()
        if reduce == "flatten":
            cos = F.cosine_similarity(s.flatten(1), t.flatten(1), dim=1, eps=COSINE_EPS)  # (B,)
        elif reduce == "channel":
            if s.ndim < 3:
                raise ValueError("reduce='channel' needs (B, C, ...) embeddings")
            cos = F.cosine_similarity(s, t, dim=1, eps=COSINE_EPS)  # (B, H, W)
        else:
            raise ValueError(f"unknown kd reduce {reduce!r}; valid: flatten, channel")
        return 1.0 - cos.mean()


class FrozenTeacher:
    """A trained depth detector used only as a constant target: eval BN, no gradients, never updated.

    Deliberately not an nn.Module, so the student's ``.train()``, ``.parameters()`` and optimizer never reach it.
    """

    def __init__(self, detector: Detector) -> None:
        self.detector = detector
        self.detector.eval()
        self.detector.requires_grad_(False)

    def to(self, device: torch.device | str) -> FrozenTeacher:
        self.detector.to(device)
        return self

    def __call__(self, depth_image: Tensor, layer: str) -> Tensor:
        if self.detector.training:  # someone called .train() on it; BN statistics must not move
            self.detector.eval()
        with torch.inference_mode():
            embedding = kd_embedding(self.detector(depth_image, kd_features(layer)), layer)
        # an inference tensor cannot be saved for the student's backward; a clone outside the mode can
        return embedding.clone()
