"""Reconstruction losses (spec §6): L1 / squared L2 over four VGG16 slices, or plain pixel L1.

VGG16 is built once, as a single trunk (features[:23]) whose activations are read after relu1_2, relu2_2, relu3_3
and relu4_3; the reference builds a separate VGG per slice. Its weights come from torchvision's weights API (its
normal cache, or a download) or from a local file, and a machine without either gets a one-line DkpError at once.
"""

from __future__ import annotations

import socket
import urllib.error
from collections.abc import Callable, Mapping
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dkp_tui.config import RECONSTRUCTION_LOSSES, VGG_LOSSES, LossConfig
from dkp_tui.errors import DkpError
from dkp_tui.model.structure import structure_loss

VGG16_FILE = "vgg16-397923af.pth"

# torchvision's VGG16 "D" layout up to relu4_3: numbers are conv widths, "M" is a 2x2 max-pool.
_VGG16_LAYOUT: tuple[int | str, ...] = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512)
# features[0:4] -> relu1_2, [4:9] -> relu2_2, [9:16] -> relu3_3, [16:23] -> relu4_3
SLICE_ENDS = (4, 9, 16, 23)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_DOWNLOAD_SOCKET_TIMEOUT_S = 10.0
STRUCTURE_SIGMAS_64PX = (1.0, 2.0, 4.0)  # band-pass scales of the structure loss, in pixels of a 64-px frame


def vgg16_cache_path() -> Path:
    """Where torchvision's weights API keeps the file: $TORCH_HOME/hub/checkpoints (default ~/.cache/torch)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / VGG16_FILE


def _missing_weights_message(detail: str) -> str:
    return (
        f"VGG16 weights unavailable ({detail}): place {VGG16_FILE} at {vgg16_cache_path()} "
        f"or pass --perceptual-weights PATH (config key loss.perceptual_weights), or use --set loss.reconstruction=pixel"
    )


def vgg16_trunk() -> nn.Sequential:
    """features[:23] of torchvision's VGG16, with the same indices (so its state-dict keys load unchanged)."""
    layers: list[nn.Module] = []
    in_channels = 3
    for item in _VGG16_LAYOUT:
        if item == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            assert isinstance(item, int)
            layers += [nn.Conv2d(in_channels, item, kernel_size=3, padding=1), nn.ReLU(inplace=False)]
            in_channels = item
    assert len(layers) == SLICE_ENDS[-1]
    return nn.Sequential(*layers)


def _read_state_dict(path: Path) -> Mapping[str, Tensor]:
    if path.is_dir():
        raise DkpError(f"--perceptual-weights {path}: is a directory; give the weights file ({VGG16_FILE})")
    if not path.is_file():
        raise DkpError(f"--perceptual-weights: file not found: {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except DkpError:
        raise
    except Exception as err:  # noqa: BLE001 - any unreadable file is the user's to fix
        raise DkpError(
            f"--perceptual-weights: cannot read {path} as a VGG16 state dict ({type(err).__name__})"
        ) from None
    if not isinstance(state, Mapping):
        raise DkpError(f"--perceptual-weights: {path} does not hold a state dict")
    return state


def _trunk_state(state: Mapping[str, Tensor], source: str) -> dict[str, Tensor]:
    """Keep the features.N.* entries (a full VGG16 state dict) or bare N.* entries (a features-only one)."""
    with torch.device("meta"):  # only the key names are needed
        trunk_keys = set(vgg16_trunk().state_dict().keys())
    picked: dict[str, Tensor] = {}
    for key, value in state.items():
        bare = key[len("features.") :] if key.startswith("features.") else key
        if bare in trunk_keys:
            picked[bare] = value
    missing = sorted(trunk_keys - set(picked), key=lambda k: (int(k.split(".")[0]), k))
    if missing:
        raise DkpError(f"{source} is not a VGG16 state dict: missing {', '.join(missing[:4])}")
    return picked


def load_vgg16_features(weights_path: str | None = None) -> nn.Module:
    """VGG16 features[:23], frozen and in eval mode, from ``weights_path`` or torchvision's cache/download."""
    if weights_path:
        source = f"--perceptual-weights {weights_path}"
        state = _read_state_dict(Path(weights_path).expanduser())
    else:
        source = str(vgg16_cache_path())
        previous = socket.getdefaulttimeout()
        socket.setdefaulttimeout(_DOWNLOAD_SOCKET_TIMEOUT_S)  # a blackholed network fails instead of hanging
        try:
            from torchvision.models import VGG16_Weights

            # its file name is VGG16_FILE, cached under vgg16_cache_path()
            url = VGG16_Weights.IMAGENET1K_V1.url
            state = torch.hub.load_state_dict_from_url(
                url, progress=False, map_location="cpu", weights_only=True
            )
        except (urllib.error.URLError, OSError, TimeoutError) as err:
            raise DkpError(
                _missing_weights_message(f"offline or download failed: {type(err).__name__}")
            ) from None
        except Exception as err:  # noqa: BLE001 - a corrupt cached file
            raise DkpError(
                _missing_weights_message(f"cannot read cached file: {type(err).__name__}")
            ) from None
        finally:
            socket.setdefaulttimeout(previous)
    trunk = vgg16_trunk()
    try:
        trunk.load_state_dict(_trunk_state(state, source))
    except RuntimeError as err:
        first = str(err).strip().splitlines()[-1].strip() if str(err).strip() else "shape mismatch"
        raise DkpError(f"{source} does not match VGG16: {first}") from None
    trunk.requires_grad_(False)
    return trunk.eval()


def _pixel_l1(recon: Tensor, target: Tensor) -> Tensor:
    return (recon.float() - target.float()).abs().mean()


def _micro_batched_loss(loss: ReconstructionLoss, recon: Tensor, target: Tensor) -> Tensor:
    return _MicroBatchedLoss.apply(recon, target, loss, loss.micro_batch)


# _micro_batched_loss under torch.compiler.disable (a gradient taken inside a forward: run eagerly under
# train.compile), built by the first low-memory loss rather than at import: disable imports torch._dynamo, about 3 s
# that every process importing this module would pay (each job of a job list is a process of its own)
_eager_micro_batched: Callable[[ReconstructionLoss, Tensor, Tensor], Tensor] | None = None


class ReconstructionLoss(nn.Module):
    """L_p between the reconstruction and the unmasked input, both images in [-1, 1].

    kind: ``vgg16`` (sum over the 4 slices of mean |diff|, the reference), ``vgg16-l2`` (mean squared diff, the
    paper's eq. 3 with a per-element mean), ``pixel`` (mean |diff|, no VGG needed; for CPU presets).
    With ``batched`` the trunk runs once on cat([recon, target]) (one large batch, the fastest on GPUs); without
    it the target runs first under no_grad, which keeps fewer activations alive (lower peak memory on CPU).
    Target features never carry gradient either way. ``micro_batch`` > 0 (``train.low_memory``) takes the loss and
    its gradient with respect to ``recon`` a few images at a time during the forward pass, so that only one micro-
    batch's VGG activations are ever alive: same value and gradient, no recomputation, a fraction of the memory.
    """

    def __init__(
        self, kind: str, weights_path: str | None = None, size: int = 224, batched: bool = True,
        micro_batch: int = 0, pixel_weight: float = 0.0, structure_scale: float = 1.0,
    ) -> None:
        super().__init__()
        if kind not in RECONSTRUCTION_LOSSES:
            raise DkpError(f"unknown reconstruction loss {kind!r}; valid: {', '.join(RECONSTRUCTION_LOSSES)}")
        self.kind = kind
        self.size = size
        self.batched = batched
        self.micro_batch = micro_batch
        self.pixel_weight = pixel_weight
        self.structure_scale = structure_scale
        self.vgg: nn.Module | None = load_vgg16_features(weights_path) if kind in VGG_LOSSES else None
        global _eager_micro_batched
        if micro_batch and _eager_micro_batched is None:
            _eager_micro_batched = torch.compiler.disable(_micro_batched_loss)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def train(self, mode: bool = True) -> ReconstructionLoss:
        super().train(mode)
        if self.vgg is not None:
            self.vgg.eval()  # frozen network: BN-free, but keep eval semantics whatever the caller does
        return self

    def _prepare(self, x: Tensor) -> Tensor:
        x = ((x + 1.0) * 0.5 - self.mean.to(x.dtype)) / self.std.to(x.dtype)  # [-1, 1] -> ImageNet normalised
        if x.shape[-2:] != (self.size, self.size):
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
        return x

    def _slices(self, x: Tensor) -> list[Tensor]:
        assert self.vgg is not None
        out: list[Tensor] = []
        start = 0
        for end in SLICE_ENDS:
            x = self.vgg[start:end](x)
            out.append(x)
            start = end
        return out

    def _distance(self, a: Tensor, b: Tensor) -> Tensor:
        diff = a.float() - b.float()
        return diff.square().mean() if self.kind == "vgg16-l2" else diff.abs().mean()

    def forward(self, recon: Tensor, target: Tensor) -> Tensor:
        if target.shape[-2:] != recon.shape[-2:]:
            target = F.interpolate(target, size=recon.shape[-2:], mode="bilinear", align_corners=False)
        if self.kind == "structure":
            sigmas = tuple(s * self.structure_scale * recon.shape[-1] / 64 for s in STRUCTURE_SIGMAS_64PX)
            loss = structure_loss(recon, target, sigmas)
            return loss + self.pixel_weight * _pixel_l1(recon, target) if self.pixel_weight else loss
        if self.vgg is None:
            return _pixel_l1(recon, target)
        if self.micro_batch and torch.is_grad_enabled() and recon.requires_grad:
            assert _eager_micro_batched is not None  # built by __init__
            return _eager_micro_batched(self, recon, target.detach())
        return self._feature_loss(recon, target)

    def _feature_loss(self, recon: Tensor, target: Tensor) -> Tensor:
        if self.batched:
            feats = self._slices(self._prepare(torch.cat([recon, target.detach()], dim=0)))
            n = recon.shape[0]
            pairs = [(f[:n], f[n:].detach()) for f in feats]
        else:
            with torch.no_grad():
                target_feats = self._slices(self._prepare(target))
            pairs = list(zip(self._slices(self._prepare(recon)), target_feats, strict=True))
        total = self._distance(*pairs[0])
        for a, b in pairs[1:]:
            total = total + self._distance(a, b)
        return total


class _MicroBatchedLoss(torch.autograd.Function):
    """The feature loss of a whole batch, and its gradient with respect to ``recon``, computed micro-batch by
    micro-batch in the forward pass; the backward only scales the stored gradient (B x 3 x S x S, small).

    Each micro-batch's share is its per-element mean times its fraction of the batch, so the sum equals the loss of
    the whole batch. The VGG is frozen, so the gradient with respect to ``recon`` is all the backward needs.
    """

    @staticmethod
    def forward(ctx, recon: Tensor, target: Tensor, loss_fn: ReconstructionLoss,  # type: ignore[override]
                micro_batch: int) -> Tensor:
        n = recon.shape[0]
        total = torch.zeros((), dtype=torch.float32, device=recon.device)
        grads: list[Tensor] = []
        for start in range(0, n, micro_batch):
            part_in = recon[start:start + micro_batch].detach().requires_grad_(True)
            with torch.enable_grad():
                part = loss_fn._feature_loss(part_in, target[start:start + micro_batch]) * (part_in.shape[0] / n)
            (grad,) = torch.autograd.grad(part, part_in)
            total += part.detach()
            grads.append(grad)
        ctx.save_for_backward(torch.cat(grads))
        return total

    @staticmethod
    def backward(ctx, grad_output: Tensor) -> tuple[Tensor, None, None, None]:  # type: ignore[override]
        (grad,) = ctx.saved_tensors
        return grad * grad_output.to(grad.dtype), None, None, None


LOW_MEMORY_MICRO_BATCH = 1  # images per VGG pass under train.low_memory (docs/performance.md)


def build_reconstruction_loss(cfg: LossConfig, batched: bool = True, low_memory: bool = False) -> ReconstructionLoss:
    """``batched=False`` trades one large VGG batch for a lower activation peak (see ReconstructionLoss)."""
    return ReconstructionLoss(
        cfg.reconstruction, cfg.perceptual_weights or None, cfg.perceptual_size, batched,
        micro_batch=LOW_MEMORY_MICRO_BATCH if low_memory else 0, pixel_weight=cfg.pixel_weight,
        structure_scale=cfg.structure_scale,
    )
