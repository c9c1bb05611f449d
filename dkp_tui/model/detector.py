"""The AutoLink keypoint detector (spec §2): residual encoder, two upsampling blocks, K heatmaps, soft-argmax.

Shapes in comments are for the reference 128-px input; heatmaps are always image_size / 4 on a side.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

FEATURE_NAMES = ("res1", "res2", "res3", "res4", "tc1", "tc2")


def scaled(channels: int, width: float) -> int:
    """Channel count under the width multiplier; 1.0 keeps the reference exactly, and no layer drops below 8."""
    return channels if width == 1.0 else max(8, int(round(channels * width)))


def init_weights(module: nn.Module) -> None:
    """The reference init: Kaiming-normal (a = 0.2) on conv/linear weights, zero bias; BN keeps its defaults."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, a=0.2)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class ResBlock(nn.Module):
    """conv -> bilinear x0.5 -> BN -> LReLU -> conv -> BN, plus a conv -> x0.5 -> BN shortcut; sum -> LReLU.

    Downsampling is bilinear rather than strided, as in the reference code (the paper says stride 2).
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.bn_shortcut = nn.BatchNorm2d(out_channels)
        self.act = nn.LeakyReLU(0.2, inplace=True)

    @staticmethod
    def _half(x: Tensor) -> Tensor:
        return F.interpolate(x, scale_factor=0.5, mode="bilinear", align_corners=False)

    def forward(self, x: Tensor) -> Tensor:  # (B, Cin, H, W) -> (B, Cout, H/2, W/2)
        shortcut = self.bn_shortcut(self._half(self.shortcut(x)))
        y = self.act(self.bn1(self._half(self.conv1(x))))
        y = self.bn2(self.conv2(y))
        return self.act(y + shortcut)


class UpBlock(nn.Module):
    """The "TC" block: bilinear x2 -> conv3x3 -> BN -> LReLU (no transposed convolution despite the name)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.bn = nn.BatchNorm2d(out_channels)
        self.act = nn.LeakyReLU(0.2, inplace=True)

    def forward(self, x: Tensor) -> Tensor:  # (B, Cin, H, W) -> (B, Cout, 2H, 2W)
        x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
        return self.act(self.bn(self.conv(x)))


def make_grid(h: int, w: int, device: torch.device | str | None = None) -> Tensor:
    """(h*w, 2) heatmap cell centres (y, x): linspace(-1, 1) per axis, 'ij', so +-1 are the border cells' centres."""
    ys = torch.linspace(-1.0, 1.0, h, device=device)
    xs = torch.linspace(-1.0, 1.0, w, device=device)
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([yy.reshape(-1), xx.reshape(-1)], dim=-1)


def soft_argmax(logits: Tensor, grid: Tensor) -> tuple[Tensor, Tensor]:
    """Softmax over all positions (temperature 1), then the expected grid location; fp32 even under autocast.

    logits (B, K, h, w), grid (h*w, 2) -> keypoints (B, K, 2) as (y, x), probabilities (B, K, h, w).
    """
    bsz, k, h, w = logits.shape
    with torch.autocast(device_type=logits.device.type, enabled=False):
        flat = logits.float().reshape(bsz, k, h * w)  # (B, K, h*w)
        probs = torch.softmax(flat, dim=-1)
        keypoints = probs @ grid.float()  # (B, K, 2)
    return keypoints, probs.reshape(bsz, k, h, w)


@dataclass
class DetectorOutput:
    keypoints: Tensor  # (B, K, 2) (y, x) in [-1, 1], fp32
    logits: Tensor  # (B, K, h, w) before the softmax
    probs: Tensor  # (B, K, h, w) softmax maps, fp32
    features: dict[str, Tensor] = field(default_factory=dict)  # only the requested intermediate tensors


class Detector(nn.Module):
    """ResBlocks 3->64->128->256->512, UpBlocks 512->256->128, conv3x3 -> K logits at image_size / 4."""

    def __init__(self, n_keypoints: int, width: float = 1.0, image_size: int = 128) -> None:
        super().__init__()
        if image_size < 32 or image_size % 32:
            raise ValueError(f"image_size must be a positive multiple of 32, got {image_size}")
        self.n_keypoints = n_keypoints
        self.image_size = image_size
        c64, c128, c256, c512 = (scaled(c, width) for c in (64, 128, 256, 512))
        self.res1 = ResBlock(3, c64)  # 64 x 64
        self.res2 = ResBlock(c64, c128)  # 32 x 32
        self.res3 = ResBlock(c128, c256)  # 16 x 16
        self.res4 = ResBlock(c256, c512)  # 8 x 8
        self.tc1 = UpBlock(c512, c256)  # 16 x 16
        self.tc2 = UpBlock(c256, c128)  # 32 x 32
        self.out = nn.Conv2d(c128, n_keypoints, 3, padding=1)  # K x 32 x 32
        self.heatmap_size = image_size // 4
        self.register_buffer("grid", make_grid(self.heatmap_size, self.heatmap_size), persistent=False)
        init_weights(self)

    def forward(self, x: Tensor, features: Sequence[str] = ()) -> DetectorOutput:
        unknown = set(features) - set(FEATURE_NAMES)
        if unknown:
            raise ValueError(
                f"unknown detector features {sorted(unknown)}; valid: {', '.join(FEATURE_NAMES)}"
            )
        if x.shape[-2:] != (self.image_size, self.image_size):
            x = F.interpolate(
                x, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False
            )
        kept: dict[str, Tensor] = {}
        for name in FEATURE_NAMES:
            x = getattr(self, name)(x)
            if name in features:
                kept[name] = x
        logits = self.out(x)  # (B, K, S/4, S/4)
        keypoints, probs = soft_argmax(logits, self.grid)
        return DetectorOutput(keypoints=keypoints, logits=logits, probs=probs, features=kept)
