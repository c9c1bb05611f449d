"""The structure loss (model/structure.py): band-pass energy that ignores a structure's colour and polarity."""

from __future__ import annotations

import torch

from dkp_tui.config import LossConfig
from dkp_tui.model.perceptual import build_reconstruction_loss
from dkp_tui.model.structure import band_energy, conv_blur, gaussian_blur, structure_loss

SIGMAS = (1.0, 2.0, 4.0)


def _bar(size: int = 64, row: int = 32, half_width: int = 2, value: float = 0.8, wall: float = 0.0) -> torch.Tensor:
    img = torch.full((1, 3, size, size), wall)
    img[:, :, row - half_width: row + half_width + 1, 8:56] = value
    return img


def test_blur_keeps_constant_images_and_mass():
    flat = torch.full((2, 3, 32, 32), 0.3)
    assert torch.allclose(gaussian_blur(flat, 2.0), flat, atol=1e-6)
    spike = torch.zeros(1, 1, 33, 33)
    spike[..., 16, 16] = 1.0
    assert abs(float(gaussian_blur(spike, 1.5).sum()) - 1.0) < 1e-4


def test_energy_ignores_polarity_and_peaks_on_the_centre_line():
    bright, dark = _bar(value=0.8), _bar(value=-0.8)
    assert torch.allclose(band_energy(bright, 2.0), band_energy(dark, 2.0), atol=1e-6)
    profile = band_energy(bright, 2.0)[0, 0, :, 32]
    assert abs(int(profile.argmax()) - 32) <= 1  # the centre line of a 5-px bar, where AutoLink draws a line
    assert float(band_energy(torch.zeros(1, 3, 64, 64), 2.0).abs().max()) == 0.0


def test_loss_rewards_the_structure_not_its_colour():
    target = _bar(value=0.8)
    other_colour = _bar(value=-0.8)  # same bar, opposite contrast
    nothing = torch.zeros_like(target)  # the wall alone: what pixel L1 prefers for an unknown colour
    moved = _bar(row=16, value=0.8)
    s_same = float(structure_loss(other_colour, target, SIGMAS))
    assert s_same < 1e-5
    assert float(structure_loss(nothing, target, SIGMAS)) > 0.5
    assert float(structure_loss(moved, target, SIGMAS)) > float(structure_loss(nothing, target, SIGMAS))
    # pixel L1 ranks them the other way: the wrong-colour bar is worse than no bar at all
    assert float((other_colour - target).abs().mean()) > float((nothing - target).abs().mean())


def test_reconstruction_loss_structure_kind_gradients_and_pixel_term():
    torch.manual_seed(0)
    recon = torch.randn(2, 3, 64, 64, requires_grad=True)
    target = torch.randn(2, 3, 64, 64)
    plain = build_reconstruction_loss(LossConfig(reconstruction="structure"))
    mixed = build_reconstruction_loss(LossConfig(reconstruction="structure", pixel_weight=0.5))
    assert plain.vgg is None
    loss = plain(recon, target)
    loss.backward()
    assert recon.grad is not None and torch.isfinite(recon.grad).all() and recon.grad.abs().sum() > 0
    with torch.no_grad():
        extra = float(mixed(recon, target)) - float(plain(recon, target))
        assert abs(extra - 0.5 * float((recon - target).abs().mean())) < 1e-4


def test_structure_scale_sets_the_band_pass_scales():
    target = _bar(half_width=1)
    recon = torch.zeros_like(target)
    fine = build_reconstruction_loss(LossConfig(reconstruction="structure", structure_scale=0.5))
    with torch.no_grad():
        assert float(fine(recon, target)) == float(structure_loss(recon, target, (0.5, 1.0, 2.0)))


def test_blur_of_a_small_image_cuts_the_kernel_to_fit():
    small = torch.rand(1, 3, 4, 4)
    out = gaussian_blur(small, 4.0)  # radius 12 > side: cut to 3, still normalised
    assert out.shape == small.shape
    assert abs(float(out.mean()) - float(small.mean())) < 0.2


def test_matrix_blur_equals_reflect_padded_convolution_forward_and_backward():
    torch.manual_seed(0)
    for shape, sigma in (((2, 3, 64, 64), 0.5), ((2, 3, 64, 64), 3.2), ((1, 2, 9, 13), 1.0), ((1, 1, 4, 4), 4.0)):
        x = torch.randn(*shape, dtype=torch.float64, requires_grad=True)
        ref = conv_blur(x, sigma)
        out = gaussian_blur(x, sigma)
        assert torch.allclose(out, ref, atol=1e-12), (shape, sigma)
        w = torch.randn_like(ref)
        (g_ref,) = torch.autograd.grad((ref * w).sum(), x)
        (g_out,) = torch.autograd.grad((out * w).sum(), x)
        assert torch.allclose(g_out, g_ref, atol=1e-12), (shape, sigma)
