"""Confidence per keypoint, from the detector's own heatmap: how much of its probability lies at the keypoint.

The detector's keypoint is the soft-argmax of a softmax heatmap (``detector.soft_argmax``): the expected cell
under that distribution. Where the heatmap is one sharp peak, the expectation sits on the peak and nearly all the
probability is near it; where it is spread out, or split between two places (a hand hidden behind the body, a limb
mistaken for its twin), the expectation lies between them and little probability is near it. So the confidence is

    c_k = sum of p_k(cell) over the cells within ``RADIUS_CELLS`` heatmap cells of keypoint k,

a probability in [0, 1]: 1 when the whole heatmap is within that disc, about pi r^2 / (h w) for a flat heatmap
(0.05 on the 16 x 16 heatmaps of the 64-px presets, 0.01 at 128 px). The radius is 2 cells, 8 pixels of the
detector's input, about the width of a limb at the paper's 128 px.

Written once for numpy and torch alike (only ``-``, ``**``, ``<=``, ``*``, ``.sum(-1)`` and ``None`` indexing),
so the onnxruntime route needs no torch and the ONNX export computes the same numbers inside the graph.
Named joints are regressed from all keypoints (``dkp_tui.eval.joints``); ``joint_confidence`` weights each
keypoint's confidence by how much the joint's regression leans on that keypoint.
"""

from __future__ import annotations

from typing import Any

import numpy as np

RADIUS_CELLS = 2.0


def cell_centres(h: int, w: int) -> np.ndarray:
    """(h*w, 2) heatmap cell centres (y, x) in [-1, 1], row-major: ``detector.make_grid``'s grid, in numpy."""
    yy, xx = np.meshgrid(np.linspace(-1.0, 1.0, h), np.linspace(-1.0, 1.0, w), indexing="ij")
    return np.stack([yy.reshape(-1), xx.reshape(-1)], axis=-1)


def heatmap_confidence(probs: Any, keypoints: Any, grid: Any, heatmap_size: int,
                       radius_cells: float = RADIUS_CELLS) -> Any:
    """(B, K) probability mass within ``radius_cells`` of each keypoint.

    probs (B, K, h*w) softmax heatmaps, flattened row-major; keypoints (B, K, 2) (y, x) in [-1, 1]; grid (h*w, 2)
    the cells' (y, x); numpy arrays or torch tensors alike (the result is of the same kind).
    """
    cells_per_unit = (heatmap_size - 1) / 2.0  # [-1, 1] spans heatmap_size - 1 cell steps
    d2 = ((grid[None, None, :, :] - keypoints[:, :, None, :]) ** 2).sum(-1) * cells_per_unit ** 2
    return (probs * (d2 <= radius_cells ** 2)).sum(-1)


def joint_confidence(weight: np.ndarray, keypoint_confidence: np.ndarray) -> np.ndarray:
    """(N, J) confidence of regressed joints from (N, K) keypoint confidences.

    ``weight`` (2K, 2J) is the joints map (features y0, x0, y1, x1, ... -> joints y0, x0, ...): keypoint k's share
    in joint j is the size (Frobenius norm) of its 2 x 2 block, normalised over k; a joint fitted without any
    keypoint (the mean pose) takes the keypoints' plain mean.
    """
    w = np.asarray(weight, dtype=np.float64)
    k, j = w.shape[0] // 2, w.shape[1] // 2
    share = np.sqrt((w.reshape(k, 2, j, 2) ** 2).sum(axis=(1, 3)))  # (K, J)
    total = share.sum(axis=0, keepdims=True)
    share = np.where(total > 0, share / np.where(total > 0, total, 1.0), 1.0 / max(k, 1))
    return np.asarray(keypoint_confidence, dtype=np.float64) @ share
