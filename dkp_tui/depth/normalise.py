"""The maths between a depth model's raw output and the stored uint16 map (pure functions, batched, any device).

Both `dkp depth` and `dkp depth --import` go through these, so a cache means the same whatever filled it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# A map whose range is below this fraction of its magnitude is constant: bicubic resampling of a truly constant map
# leaves float noise around 1e-7 relative, and any real depth map spans far more.
CONSTANT_RTOL = 1e-6

NORMALISATION = "per-image min-max to [0, 1]; a constant map becomes 0 (counted as constant_maps)"
POLARITY = "inverse depth, near = 1"
ENCODING = "uint16 round(d * 65535)"
OUTPUT_INTERPOLATION = "bicubic, align_corners=False, no antialias (as MiDaS run.py)"


def resize_maps(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(B, h, w) float -> (B, H, W): bicubic like MiDaS's own post-processing; unchanged when already that size."""
    if tuple(maps.shape[-2:]) == tuple(size):
        return maps
    return F.interpolate(maps[:, None], size=size, mode="bicubic", align_corners=False)[:, 0]


def minmax_normalise(maps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-image min-max of (B, H, W) floats to [0, 1], larger input -> larger output.

    Returns (d, constant, finite), the last two (B,) bools: a constant map becomes all zeros; a map with NaN or inf
    is flagged (its values are meaningless) so that the caller can refuse it after the one device sync it makes anyway.
    """
    flat = maps.flatten(1)
    finite = torch.isfinite(flat).all(dim=1)
    lo = flat.amin(dim=1)
    hi = flat.amax(dim=1)
    span = hi - lo
    constant = span <= CONSTANT_RTOL * torch.maximum(hi.abs(), lo.abs())
    scale = torch.where(constant, torch.ones_like(span), span)
    d = (maps - lo[:, None, None]) / scale[:, None, None]
    d = torch.where(constant[:, None, None], torch.zeros_like(d), d)
    return d, constant, finite


def encode_unit(d: torch.Tensor) -> torch.Tensor:
    """[0, 1] floats to the stored code as int32 (same float32 arithmetic as ``cache.encode_depth``)."""
    return torch.round(d.clamp(0.0, 1.0) * 65535.0).to(torch.int32)


def invert_depth(depth: torch.Tensor) -> torch.Tensor:
    """Metric/sensor depth (far = large) to inverse depth; zeros and negatives (no reading) become 0, i.e. farthest."""
    valid = depth > 0
    return torch.where(valid, 1.0 / torch.where(valid, depth, torch.ones_like(depth)), torch.zeros_like(depth))
