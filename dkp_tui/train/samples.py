"""Keypoint overlays on a fixed set of images, written to ``samples/`` during training (what `dkp watch` shows)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from dkp_tui.config import Config
from dkp_tui.formats.dataset_dir import read_manifest
from dkp_tui.formats.run_dir import sample_name
from dkp_tui.inference.predict import to_uint8
from dkp_tui.viz import draw_keypoints, image_grid, save_png, strong_edges

if TYPE_CHECKING:
    from dkp_tui.train.tensorboard import TensorBoardLog


@dataclass
class SampleSet:
    """The same images every time, so successive PNGs show the keypoints moving, not the data changing."""

    images: torch.Tensor  # what the trained model sees: RGB (student) or depth (teacher), (N,3,S,S)
    depth: torch.Tensor | None  # the teacher's input for a distillation run
    scale: int

    @classmethod
    def build(cls, cfg: Config, role: str, distill: bool, device: torch.device) -> SampleSet:
        from dkp_tui.data.loader import eval_batches

        manifest = read_manifest(cfg.data.dataset)
        split = "test" if "test" in manifest.splits else cfg.data.split
        n = min(cfg.train.n_samples, manifest.splits[split].count)
        kind = "rgb" if role == "student" else "depth"
        images, _ = next(iter(eval_batches(cfg.data.dataset, split, cfg.model.image_size, batch_size=n, kind=kind,
                                           depth_tag=cfg.data.depth_tag)))
        depth = None
        if distill:
            depth, _ = next(iter(eval_batches(cfg.data.dataset, split, cfg.model.image_size, batch_size=n,
                                              kind="depth", depth_tag=cfg.data.depth_tag)))
            depth = depth.to(device)
        scale = max(1, 128 // cfg.model.image_size)
        return cls(images.to(device), depth, scale)

    @torch.no_grad()
    def write(self, model: torch.nn.Module, teacher: torch.nn.Module | None, out_dir: Path, step: int,
              mirror: TensorBoardLog | None = None) -> None:
        """The PNGs under ``out_dir``; ``mirror`` (a ``TensorBoardLog``) also gets them as images, with the edges'
        weight histogram."""
        detector = model.detector
        was_training = detector.training
        detector.eval()
        try:
            kps = detector(self.images).keypoints.float().cpu().numpy()
        finally:
            detector.train(was_training)
        weights = model.edges.weight_matrix().float().cpu().numpy()
        edges = strong_edges(weights)
        grid = self._save(out_dir / sample_name(step), self.images, kps, edges)
        if mirror is not None:
            mirror.image("samples/keypoints", step, grid)
            mirror.histogram("edges/weights", step, weights[np.triu_indices(weights.shape[0], 1)])
        if teacher is not None and self.depth is not None:
            tkps = teacher.detector(self.depth).keypoints.float().cpu().numpy()
            grid = self._save(out_dir / sample_name(step, teacher=True), self.depth, tkps, [])
            if mirror is not None:
                mirror.image("samples/teacher", step, grid)

    def _save(self, path: Path, images: torch.Tensor, keypoints: np.ndarray, edges: list) -> np.ndarray:
        tiles = [draw_keypoints(im, kp, edges, scale=self.scale) for im, kp in zip(to_uint8(images), keypoints, strict=True)]
        grid = image_grid(tiles, ncols=min(4, len(tiles)))
        save_png(str(path), grid)
        return grid
