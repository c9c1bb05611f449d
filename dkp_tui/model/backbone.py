"""The detector for a ``model.backbone``: the one place that maps the config's name to a network."""

from __future__ import annotations

from torch import nn

from dkp_tui.config import ModelConfig
from dkp_tui.model.detector import Detector


def new_detector(cfg: ModelConfig, pretrained: bool = False) -> nn.Module:
    """A fresh detector; ``pretrained`` copies the ImageNet weights into a pretrained encoder (a new run; a run
    that is loaded or resumed gets all its weights from its own files and never needs the ImageNet file)."""
    if cfg.backbone == "efficientnet_lite0":
        from dkp_tui.model.lite0_detector import Lite0Detector

        detector = Lite0Detector(cfg.n_keypoints, image_size=cfg.image_size)
        if pretrained:
            detector.encoder.load_imagenet(cfg.backbone_weights)
        return detector
    if cfg.backbone != "autolink":
        raise ValueError(f"unknown backbone {cfg.backbone!r}")
    return Detector(cfg.n_keypoints, width=cfg.width, image_size=cfg.image_size)


def encoder_parameters(detector: nn.Module) -> list[nn.Parameter]:
    """The pretrained encoder's parameters (none for the from-scratch detector): the ones optim.backbone_lr_scale
    scales."""
    encoder = getattr(detector, "encoder", None)
    return list(encoder.parameters()) if encoder is not None else []
