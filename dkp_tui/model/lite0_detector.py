"""A keypoint detector on EfficientNet-Lite0's first stages: an ImageNet prior for RGB on textured scenes.

The from-scratch AutoLink detector never sees a natural image before training, and on patterned rooms the RGB
student stays near the mean pose; with ImageNet features the supervised probe's error halves (docs/results.md).
Only the encoder's stride-4 and stride-8 stages are kept (fine enough for keypoints on 64-px frames, and 0.2 M of
Lite0's 3.4 M parameters); a small FPN-style head brings both to image_size / 4, the heatmap size of the AutoLink
detector, so the output logits and the soft-argmax are the same and output-layer KD works between the two.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from dkp_tui.model.detector import DetectorOutput, init_weights, make_grid, soft_argmax

FEATURE_NAMES = ("stage1", "stage2", "head")
HEAD_CHANNELS = 64
_OUT_INDICES = (1, 2)  # timm's feature stages at strides 4 and 8 (24 and 40 channels)
_KEPT_BLOCKS = 3  # timm's blocks 0-2 produce those stages; the deeper ones are dropped


def _timm():
    try:
        import timm
    except ImportError:  # pragma: no cover - timm is a core dependency
        from dkp_tui.errors import DkpError

        raise DkpError("model.backbone=efficientnet_lite0 needs timm: pip install timm") from None
    return timm


class Lite0Encoder(nn.Module):
    """timm's efficientnet_lite0 cut after its stride-8 stage; input in [-1, 1] as every dkp image."""

    def __init__(self) -> None:
        super().__init__()
        net = _timm().create_model("efficientnet_lite0", pretrained=False, features_only=True,
                                   out_indices=_OUT_INDICES)
        net.blocks = net.blocks[:_KEPT_BLOCKS]
        self.net = net
        self.channels: tuple[int, int] = tuple(net.feature_info.channels())  # type: ignore[assignment]

    def forward(self, x: Tensor) -> list[Tensor]:  # (B, 3, S, S) -> [(B, 24, S/4, S/4), (B, 40, S/8, S/8)]
        return self.net(x)

    def load_imagenet(self, path: str = "") -> None:
        """Copy the ImageNet weights into the kept stages (the whole file is checked, see model/imagenet.py)."""
        from dkp_tui.model.imagenet import load_imagenet_state

        full = _timm().create_model("efficientnet_lite0", pretrained=False).state_dict()
        state = load_imagenet_state(full, path)
        own = self.net.state_dict()
        self.net.load_state_dict({k: state[k] for k in own}, strict=True)


class KeypointHead(nn.Module):
    """1x1 laterals to 64 channels, the stride-8 one upsampled and added, conv3x3-BN-LReLU, conv3x3 to K logits."""

    def __init__(self, in_channels: Sequence[int], n_keypoints: int, channels: int = HEAD_CHANNELS) -> None:
        super().__init__()
        self.lateral4 = nn.Conv2d(in_channels[0], channels, 1)
        self.lateral8 = nn.Conv2d(in_channels[1], channels, 1)
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.bn = nn.BatchNorm2d(channels)
        self.act = nn.LeakyReLU(0.2, inplace=True)
        self.out = nn.Conv2d(channels, n_keypoints, 3, padding=1)

    def forward(self, c4: Tensor, c8: Tensor) -> tuple[Tensor, Tensor]:
        # c4 (B, 24, S/4, S/4), c8 (B, 40, S/8, S/8) -> hidden (B, 64, S/4, S/4), logits (B, K, S/4, S/4)
        up = F.interpolate(self.lateral8(c8), size=c4.shape[-2:], mode="bilinear", align_corners=False)
        hidden = self.act(self.bn(self.conv(self.lateral4(c4) + up)))
        return hidden, self.out(hidden)


class Lite0Detector(nn.Module):
    """Same interface and output as the AutoLink Detector: keypoints, logits and probabilities at image_size / 4."""

    feature_names = FEATURE_NAMES

    def __init__(self, n_keypoints: int, image_size: int = 128) -> None:
        super().__init__()
        if image_size < 32 or image_size % 32:
            raise ValueError(f"image_size must be a positive multiple of 32, got {image_size}")
        self.n_keypoints = n_keypoints
        self.image_size = image_size
        self.encoder = Lite0Encoder()
        self.head = KeypointHead(self.encoder.channels, n_keypoints)
        init_weights(self.head)
        self.heatmap_size = image_size // 4
        self.register_buffer("grid", make_grid(self.heatmap_size, self.heatmap_size), persistent=False)

    def forward(self, x: Tensor, features: Sequence[str] = ()) -> DetectorOutput:
        unknown = set(features) - set(FEATURE_NAMES)
        if unknown:
            raise ValueError(f"unknown detector features {sorted(unknown)} for efficientnet_lite0; "
                             f"valid: {', '.join(FEATURE_NAMES)}")
        if x.shape[-2:] != (self.image_size, self.image_size):
            x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False)
        c4, c8 = self.encoder(x)
        hidden, logits = self.head(c4, c8)  # logits (B, K, S/4, S/4)
        keypoints, probs = soft_argmax(logits, self.grid)
        named = {"stage1": c4, "stage2": c8, "head": hidden}
        return DetectorOutput(keypoints=keypoints, logits=logits, probs=probs,
                              features={k: named[k] for k in features})
