"""Heatmap confidence: 1 for a peak at the keypoint, the disc's share for a flat map, ~0 for a split map; numpy
and torch agree; joints take their keypoints' confidence by the regression's weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dkp_tui.model.confidence import RADIUS_CELLS, cell_centres, heatmap_confidence, joint_confidence
from dkp_tui.model.detector import make_grid, soft_argmax

H = 16


def _confidence(probs: np.ndarray) -> np.ndarray:
    """(B, K, H, W) probabilities -> (B, K) confidence at their soft-argmax."""
    b, k = probs.shape[:2]
    flat = probs.reshape(b, k, H * H)
    keypoints = flat @ cell_centres(H, H)
    return heatmap_confidence(flat, keypoints, cell_centres(H, H), H)


def test_cell_centres_are_the_detectors_grid():
    np.testing.assert_allclose(cell_centres(H, 12), make_grid(H, 12).numpy(), atol=1e-6)


def test_a_peak_is_certain_a_flat_map_is_the_discs_share_and_a_split_map_is_not_sure():
    peak = np.zeros((1, 1, H, H))
    peak[0, 0, 5, 9] = 1.0
    flat = np.full((1, 1, H, H), 1.0 / (H * H))
    split = np.zeros((1, 1, H, H))
    split[0, 0, 2, 2] = split[0, 0, 13, 13] = 0.5  # the mean lies between the two peaks, on neither
    got = _confidence(np.concatenate([peak, flat, split], axis=1))[0]
    # cells of a 16 x 16 grid within 2 cells of its centre (7.5, 7.5): the 12 nearest (distances 0.71-1.58 cells)
    yy, xx = np.mgrid[:H, :H]
    in_disc = ((yy - 7.5) ** 2 + (xx - 7.5) ** 2 <= RADIUS_CELLS**2).sum()
    np.testing.assert_allclose(got, [1.0, in_disc / (H * H), 0.0], atol=1e-12)


def test_sharper_heatmaps_are_more_confident():
    yy, xx = np.mgrid[:H, :H]
    d2 = (yy - 7.3) ** 2 + (xx - 8.1) ** 2
    values = []
    for sigma in (4.0, 2.0, 1.0, 0.5):  # a Gaussian bump, wide to narrow (in cells)
        z = np.exp(-d2 / (2 * sigma**2))[None, None]
        values.append(_confidence(z / z.sum())[0, 0])
    assert values[0] < values[1] < values[2] < values[3] <= 1.0 and values[3] > 0.99


def test_numpy_and_torch_give_the_same_numbers():
    logits = torch.randn(3, 5, H, H, generator=torch.Generator().manual_seed(1)) * 3
    keypoints, probs = soft_argmax(logits, make_grid(H, H))
    with_torch = heatmap_confidence(probs.flatten(2), keypoints, make_grid(H, H), H)
    with_numpy = heatmap_confidence(probs.flatten(2).double().numpy(), keypoints.double().numpy(),
                                    cell_centres(H, H), H)
    assert isinstance(with_torch, torch.Tensor) and with_torch.shape == (3, 5)
    np.testing.assert_allclose(with_torch.numpy(), with_numpy, atol=1e-5)
    assert ((with_numpy >= 0) & (with_numpy <= 1 + 1e-9)).all()


def test_joint_confidence_follows_the_keypoints_the_joint_is_regressed_from():
    k, j = 3, 2
    weight = np.zeros((2 * k, 2 * j))
    weight[0:2, 0:2] = np.eye(2)  # joint 0 from keypoint 0 only
    weight[2:4, 2:4] = np.eye(2) * 3.0  # joint 1: three parts keypoint 1, one part keypoint 2
    weight[4:6, 2:4] = np.eye(2)
    conf = np.array([[0.9, 0.2, 0.6], [0.1, 1.0, 0.0]])
    np.testing.assert_allclose(joint_confidence(weight, conf), [[0.9, 0.75 * 0.2 + 0.25 * 0.6], [0.1, 0.75]])
    # the mean pose (no keypoint used): the keypoints' plain mean
    np.testing.assert_allclose(joint_confidence(np.zeros((2 * k, 2 * j)), conf), np.repeat(conf.mean(1)[:, None],
                                                                                         j, axis=1))


@pytest.mark.parametrize("size", [64, 128])
def test_the_detector_gives_confidences_in_range(size: int):
    from dkp_tui.inference.predict import detect, detect_scored
    from dkp_tui.model.detector import Detector

    torch.manual_seed(0)
    detector = Detector(4, width=0.125, image_size=size).eval()
    images = torch.rand(2, 3, size, size) * 2 - 1
    kp, conf = detect_scored(detector, images, "cpu")
    np.testing.assert_array_equal(kp, detect(detector, images, "cpu"))
    assert conf.shape == (2, 4) and ((conf > 0) & (conf <= 1 + 1e-6)).all()
