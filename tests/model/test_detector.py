"""Detector: soft-argmax on one-hot maps, output and feature shapes at 128 and 64 px, the grid buffer."""

from __future__ import annotations

import pytest
import torch

from dkp_tui.model.autolink import count_parameters
from dkp_tui.model.detector import Detector, ResBlock, UpBlock, make_grid, soft_argmax


def test_make_grid_ij_order() -> None:
    grid = make_grid(4, 3)
    assert grid.shape == (12, 2)
    # row-major: y changes slowest, x fastest; +-1 are the centres of the border cells
    torch.testing.assert_close(grid[0], torch.tensor([-1.0, -1.0]))
    torch.testing.assert_close(grid[1], torch.tensor([-1.0, 0.0]))
    torch.testing.assert_close(grid[2], torch.tensor([-1.0, 1.0]))
    torch.testing.assert_close(grid[3], torch.tensor([-1.0 / 3.0, -1.0]))
    torch.testing.assert_close(grid[-1], torch.tensor([1.0, 1.0]))


@pytest.mark.parametrize(("row", "col"), [(0, 0), (5, 20), (31, 7), (16, 31)])
def test_soft_argmax_one_hot_returns_its_location(row: int, col: int) -> None:
    h = w = 32
    logits = torch.full((2, 3, h, w), -30.0)
    logits[:, :, row, col] = 30.0
    kp, probs = soft_argmax(logits, make_grid(h, w))
    expected = torch.tensor([-1 + 2 * row / (h - 1), -1 + 2 * col / (w - 1)])
    torch.testing.assert_close(kp, expected.expand(2, 3, 2), atol=1e-5, rtol=0)
    assert probs.shape == (2, 3, h, w)
    torch.testing.assert_close(probs.sum(dim=(2, 3)), torch.ones(2, 3))


def test_soft_argmax_uniform_is_centre_and_fp32_under_autocast() -> None:
    logits = torch.zeros(1, 2, 16, 16, dtype=torch.bfloat16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        kp, probs = soft_argmax(logits, make_grid(16, 16))
    assert kp.dtype == torch.float32 and probs.dtype == torch.float32
    torch.testing.assert_close(kp, torch.zeros(1, 2, 2), atol=1e-6, rtol=0)


def test_blocks_shapes_and_counts() -> None:
    x = torch.randn(2, 3, 32, 32)
    assert ResBlock(3, 64)(x).shape == (2, 64, 16, 16)
    assert count_parameters(ResBlock(3, 64)) == 40_896
    assert UpBlock(512, 256)(torch.randn(1, 512, 4, 4)).shape == (1, 256, 8, 8)
    assert count_parameters(UpBlock(512, 256)) == 1_180_416


def test_detector_shapes_128_and_features() -> None:
    det = Detector(16).eval()
    names = ("res1", "res2", "res3", "res4", "tc1", "tc2")
    with torch.no_grad():
        out = det(torch.randn(2, 3, 128, 128), features=names)
    assert out.keypoints.shape == (2, 16, 2)
    assert out.logits.shape == (2, 16, 32, 32)
    assert out.probs.shape == (2, 16, 32, 32)
    shapes = {k: tuple(v.shape[1:]) for k, v in out.features.items()}
    assert shapes == {
        "res1": (64, 64, 64),
        "res2": (128, 32, 32),
        "res3": (256, 16, 16),
        "res4": (512, 8, 8),
        "tc1": (256, 16, 16),
        "tc2": (128, 32, 32),
    }
    assert out.keypoints.abs().max() <= 1.0


def test_detector_64px_small_width_and_resize() -> None:
    det = Detector(8, width=0.25, image_size=64)
    out = det(torch.randn(3, 3, 64, 64), features=("tc1",))
    assert out.logits.shape == (3, 8, 16, 16) and out.keypoints.shape == (3, 8, 2)
    assert set(out.features) == {"tc1"} and out.features["tc1"].shape == (3, 64, 8, 8)
    # any stored size is resized to image_size inside
    assert det(torch.randn(1, 3, 100, 100)).logits.shape == (1, 8, 16, 16)
    with pytest.raises(ValueError):
        det(torch.randn(1, 3, 64, 64), features=("nope",))


def test_grid_is_a_non_persistent_buffer() -> None:
    det = Detector(4, width=0.125, image_size=64)
    assert "grid" not in det.state_dict()
    assert all(p.data_ptr() != det.grid.data_ptr() for p in det.parameters())
    assert det.grid.shape == (16 * 16, 2)


@pytest.mark.parametrize(("k", "expected"), [(10, 7_729_354), (16, 7_736_272)])
def test_detector_parameter_count(k: int, expected: int) -> None:
    assert count_parameters(Detector(k)) == expected
