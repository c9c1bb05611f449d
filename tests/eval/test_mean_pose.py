"""The mean-pose reference: hand computations per protocol, a constant detector scores it (skill 0), and the
stored synthetic set's reference equals the protocol run on a detector that never moves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dkp_tui.errors import DkpError
from dkp_tui.eval.protocols import (
    EvalSplit,
    deepfashion,
    h36m,
    lr_pairs,
    mean_pose,
    skill,
    swap_index,
    synthetic,
    taichi,
)


def _constant_detections(n: int, k: int = 3, seed: int = 0) -> np.ndarray:
    """A detector that outputs the same keypoints for every image: it knows nothing about the image."""
    one = np.random.default_rng(seed).uniform(-0.8, 0.8, size=(1, k, 2))
    return np.repeat(one, n, axis=0)


def _labels(rng: np.random.Generator, n: int, j: int, scale: float) -> np.ndarray:
    centre = rng.uniform(0.3, 0.7, size=(1, j, 2))
    return (centre + rng.normal(0, 0.08, size=(n, j, 2))) * scale


def test_synthetic_mean_pose_by_hand():
    """With at most 10 fit and 10 test images the swap loops cannot fire (they need more than 10 preferring
    images) and 3-std trimming cannot drop anything (max z-score of n samples is (n - 1) / sqrt(n) < 3), so the
    reference is plainly the fit mean scored by mean L2 in frame units, x 100."""
    rng = np.random.default_rng(0)
    gf, gt = _labels(rng, 9, 5, 64.0), _labels(rng, 7, 5, 64.0)
    r = mean_pose("synthetic", EvalSplit(None, gf, label_scale=64.0), EvalSplit(None, gt, label_scale=64.0),
                  pairs=[(1, 2), (3, 4)])
    mean = gf.mean(axis=0) / 64.0
    by_hand = np.mean([np.mean([np.hypot(*(gt[i, j] / 64.0 - mean[j])) for j in range(5)]) for i in range(7)]) * 100
    assert r.value == pytest.approx(by_hand, rel=1e-12)
    assert r.fallbacks == [] and r.extras["fit_swaps"] == 0 and "on_figure" not in r.extras


def test_taichi_mean_pose_by_hand_with_missing_joints():
    """Per (joint, coordinate): the mean over the fit rows where the joint is labelled, MAE over the labelled
    test rows, summed; in 256-px units whatever the label scale."""
    rng = np.random.default_rng(1)
    gf, gt = _labels(rng, 40, 4, 128.0), _labels(rng, 30, 4, 128.0)
    vf, vt = np.ones((40, 4), bool), np.ones((30, 4), bool)
    vf[:15, 2] = False
    gf[:15, 2] = 1e6  # garbage where missing: must not leak into the mean
    gt[5:9, 1] = -1.0  # the Taichi convention for a missing joint
    r = mean_pose("taichi", EvalSplit(None, gf, vf, label_scale=128.0), EvalSplit(None, gt, vt, label_scale=128.0))
    by_hand = 0.0
    for j in range(4):
        mu = gf[vf[:, j], j].mean(axis=0) * 2.0
        rows = vt[:, j] & ~np.all(gt[:, j] == -1, axis=-1)
        by_hand += np.abs(gt[rows, j] * 2.0 - mu).mean(axis=0).sum()
    assert r.value == pytest.approx(by_hand, rel=1e-10) and r.fallbacks == []


def test_deepfashion_mean_pose_by_hand_and_pck_skill():
    rng = np.random.default_rng(2)
    gf, gt = _labels(rng, 50, 6, 256.0), _labels(rng, 40, 6, 256.0)
    gt[:10] = gf.mean(axis=0) + 1.0  # some test images sit on the mean pose: hits
    r = mean_pose("deepfashion", EvalSplit(None, gf, label_scale=256.0), EvalSplit(None, gt, label_scale=256.0))
    by_hand = (np.linalg.norm(gt - gf.mean(axis=0), axis=2) < 6.0).mean() * 100
    assert r.higher_is_better and r.value == pytest.approx(by_hand) and 25.0 <= r.value < 100.0
    # a constant detector scores the mean pose's PCK (through the ridge fallback), so its skill is 0
    c = deepfashion(EvalSplit(_constant_detections(50), gf, label_scale=256.0),
                    EvalSplit(_constant_detections(40), gt, label_scale=256.0))
    assert c.value == pytest.approx(r.value) and skill(c.value, r.value, True) == pytest.approx(0.0, abs=1e-12)
    assert skill(100.0, r.value, True) == pytest.approx(1.0)
    assert skill(r.value / 2, r.value, True) < 0


def test_a_detector_that_never_moves_has_skill_zero_under_every_l2_protocol():
    """On sets big enough for the swap loops and trimming to act: the constant detector's regression (the
    protocol's singular fallback) predicts the same swap-aware, trimmed mean as the reference."""
    rng = np.random.default_rng(3)
    names = ["head", "l_hand", "r_hand", "l_foot", "r_foot", "pelvis"]
    pairs = lr_pairs(names)
    index = swap_index(pairs, 6)
    gf, gt = _labels(rng, 120, 6, 64.0), _labels(rng, 60, 6, 64.0)
    gf[:, 1:5, 1] = np.where(np.arange(120)[:, None] % 2 == 0, 0.3, 0.7) * 64.0  # hands and feet left or right
    gf[:40] = gf[:40][:, index]  # many images with left and right exchanged: the fit loop must swap them back
    gf[0] += 40.0  # an outlier for the 3-std trimming
    ref = mean_pose("synthetic", EvalSplit(None, gf, label_scale=64.0), EvalSplit(None, gt, label_scale=64.0),
                    pairs=pairs)
    assert ref.extras["fit_swaps"] > 10 and ref.extras["n_fit_kept"] < 120
    c = synthetic(EvalSplit(_constant_detections(120), gf, label_scale=64.0),
                  EvalSplit(_constant_detections(60), gt, label_scale=64.0), pairs)
    assert c.fallbacks  # a constant detector's features are singular: min-norm least squares
    assert c.value == pytest.approx(ref.value, rel=1e-9) and skill(c.value, ref.value, False) == pytest.approx(0.0)
    assert c.extras["fit_swaps"] == ref.extras["fit_swaps"] and c.extras["test_swaps"] == ref.extras["test_swaps"]

    hf, ht = _labels(rng, 80, 32, 1.0), _labels(rng, 30, 32, 1.0)
    ref = mean_pose("h36m", EvalSplit(None, hf), EvalSplit(None, ht), swap_table="fixed")
    c = h36m(EvalSplit(_constant_detections(80), hf), EvalSplit(_constant_detections(30), ht), "fixed")
    assert c.value == pytest.approx(ref.value, rel=1e-9) and ref.options["swap_table"] == "fixed"

    tf, tt = _labels(rng, 80, 18, 256.0), _labels(rng, 30, 18, 256.0)
    ref = mean_pose("taichi", EvalSplit(None, tf, label_scale=256.0), EvalSplit(None, tt, label_scale=256.0))
    c = taichi(EvalSplit(_constant_detections(80), tf, label_scale=256.0),
               EvalSplit(_constant_detections(30), tt, label_scale=256.0))
    assert c.fallbacks and c.value == pytest.approx(ref.value, rel=1e-5)  # ridge 1 shrinks by ~1e-6


def test_skill_is_one_minus_relative_error():
    assert skill(17.2, 17.2, False) == 0.0 and skill(0.0, 17.2, False) == 1.0
    assert skill(8.6, 17.2, False) == pytest.approx(0.5) and skill(20.0, 17.2, False) < 0
    assert skill(None, 17.2, False) is None and skill(3.0, None, False) is None and skill(3.0, 0.0, False) is None


def test_mean_pose_needs_labels_on_both_sides():
    with pytest.raises(DkpError, match="disagree"):
        synthetic(EvalSplit(None, np.zeros((3, 2, 2))), EvalSplit(_constant_detections(3), np.zeros((3, 2, 2))))


def test_stored_synthetic_set_reference(tiny_dataset: Path):
    """The reference of a stored set equals the protocol on a constant detector over the stored labels, and an
    evaluation record carries it with skill = 1 - value / reference."""
    from dkp_tui.eval.evaluate import add_mean_pose, mean_pose_reference
    from dkp_tui.formats.dataset_dir import open_split, read_manifest

    ref = mean_pose_reference(tiny_dataset, "synthetic")
    manifest = read_manifest(tiny_dataset)
    f, t = open_split(tiny_dataset, "fit"), open_split(tiny_dataset, "test")
    c = synthetic(EvalSplit(_constant_detections(len(f)), f.keypoints, f.visible, None, 64.0),
                  EvalSplit(_constant_detections(len(t)), t.keypoints, t.visible, t.masks, 64.0),
                  lr_pairs(manifest.joint_names))
    assert ref["value"] == pytest.approx(c.value, rel=1e-9) and ref["n_fit"] == 24 and ref["n_test"] == 24
    assert ref["figure_area"] == pytest.approx(float((np.asarray(t.masks) > 0).mean()))
    record = add_mean_pose({"dataset": str(tiny_dataset), "protocol": "synthetic", "value": ref["value"] / 2,
                            "higher_is_better": False, "options": {}})
    assert record["mean_pose"]["value"] == ref["value"] and record["skill"] == pytest.approx(0.5)
