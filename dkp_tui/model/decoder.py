"""The AutoLink decoder (spec §5): a U-Net from (alpha * masked image, edge map) back to the image; and the mask.

Shapes in comments are for the reference 128-px input and width 1.0.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from torch import Tensor, nn

from dkp_tui.model.detector import init_weights, scaled


def cell_mask(
    batch: int,
    cells: int,
    keep: float,
    size: int,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """(B, 1, S, S) float {0, 1}: a cells x cells grid, each cell kept when U(0, 1) > 1 - keep, per sample.

    Bernoulli per cell as in the reference (not an exact fraction), nearest-upsampled so cells are sharp squares.
    The draw happens on the generator's device so that a CPU generator gives the same mask for any target device.
    """
    if size % cells:
        raise ValueError(f"size {size} is not divisible by cells {cells}")
    draw_device = generator.device if generator is not None else device
    u = torch.rand((batch, 1, cells, cells), generator=generator, device=draw_device)  # (B, 1, c, c)
    kept = (u > 1.0 - keep).float()
    mask = F.interpolate(kept, size=(size, size), mode="nearest")  # (B, 1, S, S)
    return mask if device is None else mask.to(device)


class DownBlock(nn.Module):
    """conv -> BN -> LReLU -> conv -> BN -> bilinear x0.5 -> LReLU."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.act = nn.LeakyReLU(0.2, inplace=True)

    def forward(self, x: Tensor) -> Tensor:  # (B, Cin, H, W) -> (B, Cout, H/2, W/2)
        x = self.act(self.bn1(self.conv1(x)))
        x = self.bn2(self.conv2(x))
        x = F.interpolate(x, scale_factor=0.5, mode="bilinear", align_corners=False)
        return self.act(x)


class UpBlock(nn.Module):
    """bilinear x2 -> conv -> BN -> LReLU -> conv -> BN -> LReLU."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.act = nn.LeakyReLU(0.2, inplace=True)

    def forward(self, x: Tensor) -> Tensor:  # (B, Cin, H, W) -> (B, Cout, 2H, 2W)
        x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
        x = self.act(self.bn1(self.conv1(x)))
        return self.act(self.bn2(self.conv2(x)))


@contextlib.contextmanager
def _kept_batchnorm_stats(block: nn.Module) -> Iterator[None]:
    """The recomputation of a checkpointed block must not update BatchNorm's running statistics a second time."""
    saved = [(m, {k: v.clone() for k, v in m.named_buffers(recurse=False)})
             for m in block.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    try:
        yield
    finally:
        with torch.no_grad():
            for module, buffers in saved:
                for name, value in buffers.items():
                    getattr(module, name).copy_(value)


class Decoder(nn.Module):
    """U-Net: down0 (no BN), DownBlocks 64->128->256->512->512, UpBlocks with skip concat, conv3x3 -> 3.

    The output has no activation; it is read as an image in [-1, 1].
    """

    def __init__(self, width: float = 1.0) -> None:
        super().__init__()
        c64, c128, c256, c512 = (scaled(c, width) for c in (64, 128, 256, 512))
        self.down0 = nn.Sequential(nn.Conv2d(3 + 1, c64, 3, padding=1), nn.LeakyReLU(0.2, inplace=True))  # 64 x 128^2
        self.down1 = DownBlock(c64, c128)  # 128 x 64^2
        self.down2 = DownBlock(c128, c256)  # 256 x 32^2
        self.down3 = DownBlock(c256, c512)  # 512 x 16^2
        self.down4 = DownBlock(c512, c512)  # 512 x 8^2
        self.up1 = UpBlock(c512, c512)  # 512 x 16^2, + down3 -> 1024
        self.up2 = UpBlock(c512 + c512, c256)  # 256 x 32^2, + down2 -> 512
        self.up3 = UpBlock(c256 + c256, c128)  # 128 x 64^2, + down1 -> 256
        self.up4 = UpBlock(c128 + c128, c64)  # 64 x 128^2, + down0 -> 128
        self.out = nn.Conv2d(c64 + c64, 3, 3, padding=1)  # 3 x 128^2
        self.checkpoint_full_res = False  # recompute the full-resolution blocks in the backward (low_memory)
        init_weights(self)

    def _run(self, block: nn.Module, x: Tensor) -> Tensor:
        if self.checkpoint_full_res and torch.is_grad_enabled():
            return torch.utils.checkpoint.checkpoint(
                block, x, use_reentrant=False,
                context_fn=lambda: (contextlib.nullcontext(), _kept_batchnorm_stats(block)),
            )
        return block(x)

    def forward(self, masked: Tensor, edge_map: Tensor) -> Tensor:
        # masked (B, 3, S, S) already scaled by alpha; edge_map (B, 1, S, S), fp32
        x = torch.cat([masked, edge_map.to(masked.dtype)], dim=1)  # (B, 4, S, S)
        d0 = self.down0(x)  # (B, 64, S, S)
        d1 = self._run(self.down1, d0)  # (B, 128, S/2, S/2)
        d2 = self.down2(d1)  # (B, 256, S/4, S/4)
        d3 = self.down3(d2)  # (B, 512, S/8, S/8)
        d4 = self.down4(d3)  # (B, 512, S/16, S/16)
        u = torch.cat([self.up1(d4), d3], dim=1)  # (B, 1024, S/8, S/8)
        u = torch.cat([self.up2(u), d2], dim=1)  # (B, 512, S/4, S/4)
        u = torch.cat([self.up3(u), d1], dim=1)  # (B, 256, S/2, S/2)
        u = torch.cat([self._run(self.up4, u), d0], dim=1)  # (B, 128, S, S)
        return self.out(u)  # (B, 3, S, S)
