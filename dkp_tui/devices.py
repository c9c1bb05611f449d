"""Which torch device a command runs on."""

from __future__ import annotations

import torch

from dkp_tui.errors import DkpError


def pick_device(requested: str, local_rank: int = 0) -> torch.device:
    """The torch device for a ``--device`` / ``train.device`` value ("" means auto), one rule for training,
    evaluation and inference."""
    requested = requested or "auto"
    if requested == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank)
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if requested.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DkpError("--device cuda requested but CUDA is not available; use --device cpu")
        return torch.device(requested if ":" in requested else f"cuda:{local_rank}")
    if requested == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise DkpError("--device mps requested but MPS is not available; use --device cpu")
    return torch.device(requested)
