"""AutoLink: detector -> edge map -> decoder, and which detector tensor Distill-DKP distils (spec §9.4).

The same model serves as the depth teacher and the image student; only the input differs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dkp_tui.config import KD_LAYERS, ModelConfig
from dkp_tui.model.backbone import new_detector
from dkp_tui.model.decoder import Decoder, cell_mask
from dkp_tui.model.detector import DetectorOutput, init_weights
from dkp_tui.model.edges import EdgeGraph

__all__ = [
    "KD_FEATURES",
    "AutoLink",
    "AutoLinkOutput",
    "count_parameters",
    "init_weights",
    "kd_embedding",
    "kd_features",
]

# kd_layer -> the detector feature it reads (None: the output logits / probabilities, always computed).
KD_FEATURES: dict[str, str | None] = {
    "output": None,  # out-conv logits before the softmax, K x h x w
    "output_prob": None,  # softmax maps, K x h x w
    "mid": "tc1",  # first TC block, 256 x 16 x 16
    "mid2": "tc2",  # second TC block, 128 x 32 x 32
    "early": "res1",  # first ResBlock, 64 x 64 x 64
    "res2": "res2",
    "res3": "res3",
    "res4": "res4",
}
assert set(KD_FEATURES) == set(KD_LAYERS)


def _check_layer(layer: str) -> None:
    if layer not in KD_FEATURES:
        raise ValueError(f"unknown kd layer {layer!r}; valid: {', '.join(KD_FEATURES)}")


def kd_features(layer: str) -> tuple[str, ...]:
    """Detector feature names to request so that :func:`kd_embedding` can read ``layer``."""
    _check_layer(layer)
    name = KD_FEATURES[layer]
    return () if name is None else (name,)


def kd_embedding(det: DetectorOutput, layer: str) -> Tensor:
    """The tensor that is distilled at ``layer`` (4-D, per sample)."""
    _check_layer(layer)
    if layer == "output":
        return det.logits
    if layer == "output_prob":
        return det.probs
    name = KD_FEATURES[layer]
    if name not in det.features:
        raise ValueError(
            f"kd layer {layer!r} needs detector feature {name!r}; pass features=kd_features(layer)"
        )
    return det.features[name]


def count_parameters(module: nn.Module) -> int:
    """Trainable parameters (BN running statistics and buffers such as the grid are not parameters)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


@dataclass
class AutoLinkOutput:
    recon: Tensor  # (B, 3, S, S) reconstructed image, no activation
    det: DetectorOutput
    edge_map: Tensor  # (B, 1, S, S) fp32


class AutoLink(nn.Module):
    """The detector sees the whole image; the decoder sees alpha * masked image and the edge map only."""

    def __init__(self, cfg: ModelConfig, pretrained: bool = False) -> None:
        super().__init__()
        self.cfg = cfg
        self.image_size = cfg.image_size
        self.thickness = float(cfg.thickness)
        self.detector = new_detector(cfg, pretrained)  # pretrained: ImageNet weights into its encoder
        self.edges = EdgeGraph(cfg.n_keypoints, sklr=cfg.sklr, floor=cfg.edge_floor)
        self.decoder = Decoder(width=cfg.width)
        self.alpha = nn.Parameter(torch.tensor(1.0))

    def make_mask(
        self,
        batch: int,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
    ) -> Tensor:
        """A fresh (B, 1, S, S) cell mask with this model's grid and keep probability."""
        return cell_mask(batch, self.cfg.mask_cells, self.cfg.mask_keep, self.image_size, generator, device)

    def forward(self, image: Tensor, mask: Tensor, features: Sequence[str] = ()) -> AutoLinkOutput:
        # image (B, 3, H, W) in [-1, 1]; mask (B, 1, S, S) in {0, 1}
        det = self.detector(image, features)
        size = self.image_size
        if image.shape[-2:] != (size, size):
            image = F.interpolate(image, size=(size, size), mode="bilinear", align_corners=False)
        if mask.shape[-2:] != (size, size):
            mask = F.interpolate(mask.float(), size=(size, size), mode="nearest")
        edge_map = self.edges(det.keypoints, self.thickness, size)  # (B, 1, S, S)
        masked = self.alpha * image * mask.to(image.dtype)  # (B, 3, S, S)
        recon = self.decoder(masked, edge_map)
        return AutoLinkOutput(recon=recon, det=det, edge_map=edge_map)
