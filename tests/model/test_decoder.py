"""Decoder and the cell mask."""

from __future__ import annotations

import pytest
import torch

from dkp_tui.model.decoder import Decoder, cell_mask


def test_cell_mask_keeps_about_20_percent() -> None:
    g = torch.Generator().manual_seed(0)
    mask = cell_mask(1000, 16, 0.2, 64, generator=g)
    assert mask.shape == (1000, 1, 64, 64) and mask.dtype == torch.float32
    assert set(mask.unique().tolist()) <= {0.0, 1.0}
    # 256,000 Bernoulli(0.2) cells: std of the fraction ~ 0.0008
    assert abs(mask.mean().item() - 0.2) < 0.005
    per_sample = mask.mean(dim=(1, 2, 3))
    assert per_sample.std() > 0.01  # Bernoulli per cell, not an exact fraction per image


def test_cell_mask_constant_inside_cells() -> None:
    mask = cell_mask(8, 16, 0.2, 128, generator=torch.Generator().manual_seed(1))
    cells = mask.view(8, 1, 16, 8, 16, 8)
    corner = cells[:, :, :, :1, :, :1]
    assert torch.equal(cells, corner.expand_as(cells))


def test_cell_mask_seeded_and_fresh() -> None:
    a = cell_mask(4, 16, 0.2, 64, generator=torch.Generator().manual_seed(7))
    b = cell_mask(4, 16, 0.2, 64, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a, b)
    g = torch.Generator().manual_seed(7)
    first, second = cell_mask(4, 16, 0.2, 64, generator=g), cell_mask(4, 16, 0.2, 64, generator=g)
    assert not torch.equal(first, second)
    assert cell_mask(2, 16, 1.0, 32).min() == 1.0 and cell_mask(2, 16, 0.0, 32).max() == 0.0
    with pytest.raises(ValueError):
        cell_mask(1, 16, 0.2, 40)


@pytest.mark.parametrize("size", [64, 128])
def test_decoder_shapes(size: int) -> None:
    dec = Decoder(width=0.125)
    out = dec(torch.randn(2, 3, size, size), torch.rand(2, 1, size, size))
    assert out.shape == (2, 3, size, size)
    # no output activation: values are not squashed into [-1, 1] or [0, 1]
    assert out.min() < 0


def test_decoder_uses_the_edge_map() -> None:
    torch.manual_seed(0)
    dec = Decoder(width=0.125).eval()
    image = torch.zeros(1, 3, 64, 64)
    with torch.no_grad():
        a = dec(image, torch.zeros(1, 1, 64, 64))
        b = dec(image, torch.ones(1, 1, 64, 64))
    assert (a - b).abs().max() > 1e-4
