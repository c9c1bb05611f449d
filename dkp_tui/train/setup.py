"""Choosing the precision, building the model and optimizer, seeding, and loading the frozen teacher: the decisions
the loop (and `dkp bench`) rely on."""

from __future__ import annotations

import random
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from dkp_tui.config import OUTPUT_KD_LAYERS, Config
from dkp_tui.errors import DkpError

if TYPE_CHECKING:
    from dkp_tui.model.detector import Detector


def pick_precision(requested: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype, or None for fp32. Autocast only on CUDA: bf16 on CPU is ~50x slower here."""
    if device.type != "cuda":
        if requested in ("bf16", "fp16"):
            raise DkpError(f"train.precision={requested} needs CUDA; on {device.type} dkp trains in fp32 "
                           "(CPU autocast is ~50x slower on these machines)")
        return None
    if requested == "fp32":
        return None
    if requested == "fp16":
        return torch.float16
    if requested == "bf16" or torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float16


def autocast(device: torch.device, dtype: torch.dtype | None) -> AbstractContextManager[object]:
    if dtype is None:
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def channels_last(device: torch.device, width: float, requested: str = "auto") -> bool:
    """NHWC pays on CUDA always, and on CPU for the full-width model (oneDNN: 1.22x per step, docs/performance.md).
    At CPU-preset widths (8-128 channels, 64 px) it depends on the CPU: 0.93x on an AVX-512 Xeon, where the layout
    conversions cost more than they save, but 1.2-1.6x on an AVX2-only EPYC, whose NCHW kernels are the slow ones."""
    if requested != "auto":
        return requested == "channels_last"
    if device.type == "cuda":
        return True
    return device.type == "cpu" and (width >= 1.0 or torch.backends.cpu.get_cpu_capability() == "AVX2")


def vgg_batched(device: torch.device) -> bool:
    """One VGG pass over cat([recon, target]) is fastest on GPUs; on CPU the target's pass under no_grad saves
    its backward (~220 GFLOP of ~1,900 per full-size step) and ~560 MB of activations."""
    return device.type == "cuda"


_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number (malloc.h)


def pin_mmap_threshold(nbytes: int = 128 * 1024) -> bool:
    """Serve every allocation above ``nbytes`` with its own mmap, returned to the OS when freed.

    glibc raises its mmap threshold (up to 32 MB) each time a large block is freed, after which freed activations
    stay in the heap and count in the process's RSS: pinning it cut `train.low_memory`'s peak RSS from 2,356 to
    1,971 MB at full size on CPU (docs/performance.md). False where the C library is not glibc.
    """
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, nbytes))


def build_model(cfg: Config, device: torch.device, pretrained: bool = False) -> tuple[nn.Module, nn.Module, bool]:
    """AutoLink and its reconstruction loss on ``device``, in the memory layout and mode this device trains best
    in; the bool says whether inputs must be made channels-last. Shared by `dkp train` and `dkp bench`.
    ``pretrained``: a new run's pretrained encoder starts from its ImageNet weights."""
    from dkp_tui.model.autolink import AutoLink
    from dkp_tui.model.perceptual import build_reconstruction_loss

    if cfg.train.low_memory:
        pin_mmap_threshold()
    model = AutoLink(cfg.model, pretrained=pretrained).to(device)
    model.decoder.checkpoint_full_res = cfg.train.low_memory
    rec_loss = build_reconstruction_loss(cfg.loss, batched=vgg_batched(device),
                                         low_memory=cfg.train.low_memory).to(device)
    nhwc = channels_last(device, cfg.model.width, cfg.train.memory_format)
    if nhwc:
        model = model.to(memory_format=torch.channels_last)
        rec_loss = rec_loss.to(memory_format=torch.channels_last)
    return model, rec_loss, nhwc


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def build_optimizer(cfg: Config, model: nn.Module, device: torch.device) -> torch.optim.Optimizer:
    """The optimizer of ``cfg.optim`` over the model's parameter groups (fused kernels on CUDA)."""
    opt_cls = torch.optim.AdamW if cfg.optim.name == "adamw" else torch.optim.Adam
    return opt_cls(param_groups(model, cfg.optim.backbone_lr_scale), lr=cfg.optim.lr, betas=(cfg.optim.beta1, cfg.optim.beta2),
                   eps=cfg.optim.eps, weight_decay=cfg.optim.weight_decay,
                   **({"fused": True} if device.type == "cuda" else {}))


def load_teacher_detector(teacher_run: Path, cfg: Config, device: torch.device) -> Detector:
    """The teacher's detector, checked against the student's config (same K and image size; at a hidden KD layer
    also the same backbone and width). Its backbone is the teacher's own, which may differ from the student's."""
    from dkp_tui.formats.run_dir import WEIGHTS
    from dkp_tui.inference.predict import build_detector, read_weights

    weights = Path(teacher_run) / WEIGHTS if Path(teacher_run).is_dir() else Path(teacher_run)
    tensors, tcfg, meta = read_weights(weights)
    if meta.get("role") != "teacher":
        raise DkpError(f"{teacher_run}: role is {meta.get('role')!r}, not a depth teacher "
                       "(train one with `dkp train --teacher depth`)")
    if tcfg.model.n_keypoints != cfg.model.n_keypoints:
        raise DkpError(f"--teacher-run {teacher_run}: teacher has K={tcfg.model.n_keypoints} keypoints, the student "
                       f"K={cfg.model.n_keypoints}; they must match")
    if tcfg.model.image_size != cfg.model.image_size:
        raise DkpError(f"--teacher-run {teacher_run}: teacher image size {tcfg.model.image_size} differs from the "
                       f"student's {cfg.model.image_size}; they must match")
    hidden = cfg.kd.layer not in OUTPUT_KD_LAYERS
    if hidden and tcfg.model.backbone != cfg.model.backbone:
        raise DkpError(f"--teacher-run {teacher_run}: kd.layer={cfg.kd.layer} compares hidden features, but the "
                       f"teacher's backbone is {tcfg.model.backbone} and the student's {cfg.model.backbone}; "
                       f"distil at {' or '.join(OUTPUT_KD_LAYERS)}, which any two backbones share")
    if hidden and tcfg.model.width != cfg.model.width:
        raise DkpError(f"--teacher-run {teacher_run}: kd.layer={cfg.kd.layer} compares hidden features, so teacher "
                       f"width {tcfg.model.width} must equal the student's {cfg.model.width}")
    return build_detector(tensors, tcfg, weights).to(device)


def param_groups(model: nn.Module, backbone_lr_scale: float) -> list[dict]:
    """The optimizer's groups: everything at the base lr first (the lr the metrics log), then a pretrained
    encoder at ``backbone_lr_scale`` x it; a scale of 0 freezes the encoder (no gradients, not in the optimizer).
    The from-scratch detector has no such encoder and gets one group, as before."""
    from dkp_tui.model.backbone import encoder_parameters

    encoder = encoder_parameters(model.detector)
    if backbone_lr_scale == 0:
        for p in encoder:
            p.requires_grad_(False)
    ids = {id(p) for p in encoder}
    groups: list[dict] = [{"params": [p for p in model.parameters() if id(p) not in ids], "lr_scale": 1.0}]
    if encoder and backbone_lr_scale > 0:
        groups.append({"params": encoder, "lr_scale": backbone_lr_scale})
    return groups
