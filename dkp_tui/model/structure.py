"""A reconstruction loss that rewards structure whatever its colour and polarity (band-pass energy).

On RGB, AutoLink's lines only make the detector learn if drawing a line where a limb is lowers the loss. Under a
pixel loss that needs the limb's colour, which the line does not carry and the 80 %-masked image rarely shows, so
the L1-optimal paint for a line is the wall's colour and the lines never pay (docs/results.md). Depth teachers do
not have this problem because a figure is always nearer than its wall: a line means "brighter here".

This loss compares the *rectified band-pass energy* of the reconstruction and the target, per colour channel,
at a few scales: |G_s * x - G_{k s} * x|, smoothed by G_s. A difference of Gaussians at scale s peaks on the
centre line of a bar about 2 s wide, whichever way its contrast goes, which is where AutoLink draws its lines;
the smoothing after the modulus (first-order scattering) makes it tolerant to a pixel or two of misalignment, so
a line near a limb already pays. Colour and polarity no longer decide whether a line helps.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

DOG_RATIO = 1.6  # the DoG's outer / inner sigma, the usual approximation of a Laplacian of Gaussian


def gaussian_kernel1d(sigma: float, device: torch.device | None = None, dtype: torch.dtype = torch.float32) -> Tensor:
    """A normalised 1-D Gaussian of radius ceil(3 sigma)."""
    radius = max(1, math.ceil(3.0 * sigma))
    x = torch.arange(-radius, radius + 1, device=device, dtype=dtype)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def cut_kernel(sigma: float, h: int, w: int, device: torch.device | None = None,
               dtype: torch.dtype = torch.float32) -> Tensor:
    """The Gaussian for an (h, w) image: a kernel wider than the image is cut and renormalised, because reflect
    padding needs a radius below the image's side."""
    k = gaussian_kernel1d(sigma, device, dtype)
    r = min(k.numel() // 2, w - 1, h - 1)
    k = k[k.numel() // 2 - r: k.numel() // 2 + r + 1]
    return k / k.sum()


def blur_matrix(n: int, kernel: Tensor) -> Tensor:
    """(n, n): the 1-D convolution with ``kernel`` (odd length, at most 2n - 1) under reflect padding, as a
    matrix, so that a separable blur is two small matrix products. On a CPU these are 2.7-3.8x faster than the
    equivalent depthwise convolutions, forward and backward (benchmarks/structure_loss.py); the sums are the same
    up to float rounding."""
    r = kernel.numel() // 2
    rows = torch.arange(n, device=kernel.device).repeat_interleave(2 * r + 1)
    cols = rows + torch.arange(-r, r + 1, device=kernel.device).repeat(n)
    cols = torch.where(cols < 0, -cols, cols)
    cols = torch.where(cols > n - 1, 2 * (n - 1) - cols, cols)
    m = torch.zeros(n, n, device=kernel.device, dtype=kernel.dtype)
    return m.index_put_((rows, cols), kernel.repeat(n), accumulate=True)


_MATRICES: dict[tuple, tuple[Tensor, Tensor]] = {}


def _blur_matrices(h: int, w: int, sigma: float, device: torch.device, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    key = (h, w, sigma, device, dtype)
    if key not in _MATRICES:
        k = cut_kernel(sigma, h, w, device, dtype)
        _MATRICES[key] = (blur_matrix(h, k), blur_matrix(w, k).T.contiguous())
    return _MATRICES[key]


def gaussian_blur(x: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian blur of every channel, reflect-padded so borders do not read as edges."""
    rows, cols = _blur_matrices(x.shape[-2], x.shape[-1], sigma, x.device, x.dtype)
    return rows @ x @ cols


def conv_blur(x: Tensor, sigma: float) -> Tensor:
    """The same blur in its textbook form (reflect pad, depthwise 1-D convolutions): the reference that the
    matrix form is tested and benchmarked against; training does not use it."""
    import torch.nn.functional as F

    c = x.shape[1]
    k = cut_kernel(sigma, x.shape[-2], x.shape[-1], x.device, x.dtype)
    r = k.numel() // 2
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="reflect"), k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(F.pad(x, (0, 0, r, r), mode="reflect"), k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


Blur = Callable[[Tensor, float], Tensor]


def band_energy(x: Tensor, sigma: float, blur: Blur = gaussian_blur) -> Tensor:
    """(B, C, H, W) -> (B, C, H, W): |DoG_sigma * x| smoothed by G_sigma; sigma in pixels."""
    inner = blur(x, sigma)
    outer = blur(x, sigma * DOG_RATIO)
    return blur((inner - outer).abs(), sigma)


def structure_loss(recon: Tensor, target: Tensor, sigmas: tuple[float, ...], blur: Blur = gaussian_blur) -> Tensor:
    """Sum over scales of the mean |band energy difference|, each scale divided by the target's mean energy
    there (detached) so that fine and coarse scales weigh alike whatever the images' contrast. ``blur`` is for
    benchmarks/structure_loss.py, which times the same loss with ``conv_blur``."""
    recon, target = recon.float(), target.float().detach()
    total = recon.new_zeros(())
    for s in sigmas:
        e_t = band_energy(target, s, blur)
        e_r = band_energy(recon, s, blur)
        total = total + (e_r - e_t).abs().mean() / (e_t.mean() + 1e-3)
    return total / len(sigmas)
