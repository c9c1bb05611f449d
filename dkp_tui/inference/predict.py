"""Load a trained detector from a run and run it, frozen, over a data-set split or a batch of frames.

Only the detector is used at test time (and the edge weights for drawing the skeleton); the decoder never runs.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from dkp_tui.config import Config
from dkp_tui.errors import DkpError
from dkp_tui.formats.run_dir import WEIGHTS, config_from_weights, load_weights
from dkp_tui.model.backbone import new_detector
from dkp_tui.model.detector import Detector


def weights_path(run: str | Path) -> Path:
    """A run directory's weights, or a ``.safetensors`` file given directly."""
    run = Path(run)
    if run.is_dir():
        return run / WEIGHTS
    if run.suffix == ".safetensors":
        return run
    raise DkpError(f"{run}: not a run directory or a .safetensors file")


def read_weights(path: str | Path) -> tuple[dict[str, torch.Tensor], Config, dict[str, str]]:
    """(tensors, the config they were trained with, the metadata) of a weights file."""
    tensors, meta = load_weights(path)
    return tensors, config_from_weights(meta, str(path)), meta


def build_detector(tensors: dict[str, torch.Tensor], cfg: Config, where: str | Path) -> Detector:
    """The detector of ``cfg``'s model holding the ``detector.*`` tensors, in eval mode without gradients.

    Built by the factory AutoLink itself uses (``model.backbone.new_detector``), so any detector a config can
    describe loads, without building the decoder it would throw away.
    """
    state = {k[len("detector."):]: v for k, v in tensors.items() if k.startswith("detector.")}
    if not state:
        raise DkpError(f"{where}: holds no detector weights (no 'detector.*' tensors)")
    detector = new_detector(cfg.model)
    missing, unexpected = detector.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise DkpError(f"{where}: weights do not fit the detector of its own config "
                       f"(missing {len(missing)}, unexpected {len(unexpected)} tensors)")
    detector.eval().requires_grad_(False)
    return detector


def load_detector(run: str | Path, device: torch.device | str = "cpu") -> tuple[Detector, Config, dict[str, str]]:
    """(detector in eval mode without gradients, the config it was trained with, the weights' metadata)."""
    path = weights_path(run)
    tensors, cfg, meta = read_weights(path)
    return build_detector(tensors, cfg, path).to(device), cfg, meta


def load_edge_weights(run: str | Path) -> np.ndarray:
    """The learned graph's K x K edge-weight matrix (upper triangle), for drawing the skeleton."""
    from dkp_tui.model.edges import EdgeGraph

    tensors, cfg, _ = read_weights(weights_path(run))
    if "edges.logits" not in tensors:
        return np.zeros((cfg.model.n_keypoints, cfg.model.n_keypoints))
    graph = EdgeGraph(cfg.model.n_keypoints, sklr=cfg.model.sklr, floor=cfg.model.edge_floor)
    graph.load_state_dict({"logits": tensors["edges.logits"]})
    with torch.no_grad():
        return graph.weight_matrix().cpu().numpy().astype(np.float64)


@torch.inference_mode()
def detect(detector: torch.nn.Module, images: torch.Tensor, device: torch.device | str) -> np.ndarray:
    """Keypoints (B x K x 2, (y, x) in [-1, 1]) of images (B x 3 x H x W in [-1, 1])."""
    out = detector(images.to(device, dtype=torch.float32))
    return out.keypoints.float().cpu().numpy()


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(B,3,H,W) in [-1,1] to (B,H,W,3) uint8: the inverse of ``uint8_to_input``."""
    return ((images.detach().float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()


@torch.inference_mode()
def detect_scored(detector: torch.nn.Module, images: torch.Tensor,
                  device: torch.device | str) -> tuple[np.ndarray, np.ndarray]:
    """Keypoints as ``detect`` gives them, and each keypoint's heatmap confidence (B x K, ``model.confidence``)."""
    from dkp_tui.model.confidence import heatmap_confidence

    out = detector(images.to(device, dtype=torch.float32))
    confidence = heatmap_confidence(out.probs.flatten(2), out.keypoints, detector.grid, detector.heatmap_size)
    return out.keypoints.float().cpu().numpy(), confidence.float().cpu().numpy()


def uint8_to_input(frames: np.ndarray) -> torch.Tensor:
    """B x H x W x 3 uint8 RGB to the detector's B x 3 x H x W input in [-1, 1]."""
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()
    return x / 127.5 - 1.0


def predict_split(detector: torch.nn.Module, dataset: str | Path, split: str, *, image_size: int,
                  kind: str = "rgb", depth_tag: str = "", batch_size: int = 64, device: torch.device | str = "cpu",
                  advance: Callable[[int], None] | None = None) -> np.ndarray:
    """Detections for every image of ``split`` in order (N x K x 2 float32); ``kind`` = rgb or depth."""
    from dkp_tui.data.loader import eval_batches
    from dkp_tui.formats.dataset_dir import read_manifest

    manifest = read_manifest(dataset)
    count = manifest.splits[split].count if split in manifest.splits else 0
    if count == 0:
        raise DkpError(f"{dataset}: split {split!r} is missing or empty")
    out: np.ndarray | None = None
    seen = 0
    for images, indices in eval_batches(dataset, split, image_size, batch_size=batch_size, kind=kind,
                                        depth_tag=depth_tag):
        kp = detect(detector, images, device)
        if out is None:
            out = np.empty((count, kp.shape[1], 2), dtype=np.float32)
        idx = np.asarray(indices.cpu() if isinstance(indices, torch.Tensor) else indices, dtype=np.int64)
        out[idx] = kp
        seen += len(idx)
        if advance is not None:
            advance(len(idx))
    if out is None or seen != count:
        raise DkpError(f"{dataset}/{split}: the loader yielded {seen} of {count} images")
    return out
