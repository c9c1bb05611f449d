"""Protocol maths on numbers a reader can check by hand: exact linear GT, known perturbations, swaps, missing joints."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from dkp_tui.errors import DkpError
from dkp_tui.eval.protocols import (
    H36M_PAIRS_FIXED,
    H36M_PAIRS_REFERENCE,
    EvalSplit,
    deepfashion,
    h36m,
    lr_pairs,
    on_figure_fraction,
    pck,
    protocol_for,
    swap_index,
    swap_loop,
    synthetic,
    taichi,
)


def _detections(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    return rng.uniform(-0.9, 0.9, size=(n, k, 2))


def _linear_gt(kp: np.ndarray, a: np.ndarray, b: np.ndarray | None = None, scale: float = 1.0) -> np.ndarray:
    """GT that is an exact linear (affine with ``b``) function of the protocol features u = kp * 0.5 + 0.5."""
    u = (kp * 0.5 + 0.5).reshape(len(kp), -1) * scale
    y = u @ a + (0.0 if b is None else b)
    return y.reshape(len(kp), -1, 2)


# -- Taichi ----------------------------------------------------------------------------------------------------


def _taichi_sets(seed: int = 0, n_fit: int = 300, n_test: int = 80, k: int = 10, j: int = 18):
    rng = np.random.default_rng(seed)
    kf, kt = _detections(rng, n_fit, k), _detections(rng, n_test, k)
    a = rng.normal(0, 0.3, size=(2 * k, 2 * j))
    b = rng.uniform(50, 200, size=2 * j)
    return kf, kt, _linear_gt(kf, a, b, 255.0), _linear_gt(kt, a, b, 255.0)


def test_taichi_exact_affine_function_scores_zero():
    kf, kt, gf, gt = _taichi_sets()
    r = taichi(EvalSplit(kf, gf, label_scale=256.0), EvalSplit(kt, gt, label_scale=256.0))
    assert r.metric == "taichi_mae" and not r.higher_is_better
    assert r.value == pytest.approx(0.0, abs=1e-7)
    assert r.extras["targets"] == 36 and r.fallbacks == []


def test_taichi_missing_joints_are_skipped_per_target():
    """Missing joints carry -1 (garbage for a fit); 36 separate fits on the visible rows still score 0."""
    rng = np.random.default_rng(1)
    kf, kt, gf, gt = _taichi_sets(1)
    vf = rng.uniform(size=gf.shape[:2]) > 0.2
    vt = rng.uniform(size=gt.shape[:2]) > 0.2
    gf[~vf], gt[~vt] = -1.0, -1.0
    r = taichi(EvalSplit(kf, gf, vf, label_scale=256.0), EvalSplit(kt, gt, vt, label_scale=256.0))
    assert r.value == pytest.approx(0.0, abs=1e-7)
    assert r.extras["missing_fit_values"] == int((~vf).sum()) * 2
    # the -1 convention alone (visible not given) marks them missing too
    r2 = taichi(EvalSplit(kf, gf, label_scale=256.0), EvalSplit(kt, gt, label_scale=256.0))
    assert r2.value == pytest.approx(0.0, abs=1e-7)
    # a protocol that kept the -1 rows would not be exact
    gf_bad = gf.copy()
    gf_bad[~vf] = 500.0
    r3 = taichi(EvalSplit(kf, gf_bad, vf, label_scale=256.0), EvalSplit(kt, gt, vt, label_scale=256.0))
    assert r3.value == pytest.approx(0.0, abs=1e-7)


def test_taichi_known_perturbation_sums_per_coordinate_l1():
    kf, kt, gf, gt = _taichi_sets(2)
    gt = gt.copy()
    gt[:, 0, 0] += 3.0  # every test image: joint 0, coordinate 0 off by 3 px
    gt[:, 5, 1] -= 2.0  # joint 5, coordinate 1 off by 2 px
    gt[::2, 7, 0] += 4.0  # half the images: joint 7, coordinate 0 off by 4 px -> MAE 2
    r = taichi(EvalSplit(kf, gf, label_scale=256.0), EvalSplit(kt, gt, label_scale=256.0))
    assert r.value == pytest.approx(3.0 + 2.0 + 2.0, abs=1e-6)


def test_taichi_scores_in_256_px_frame_units_whatever_the_label_scale():
    kf, kt, gf, gt = _taichi_sets(3)
    gt = gt.copy()
    gt[:, 0, 0] += 4.0
    r = taichi(EvalSplit(kf, gf / 2, label_scale=128.0), EvalSplit(kt, gt / 2, label_scale=128.0))
    assert r.value == pytest.approx(4.0, abs=1e-6)


def test_taichi_ridge_fallback_fires_on_singular_features(caplog):
    kf, kt, gf, gt = _taichi_sets(4)
    kf[:, 3] = 0.25  # a collapsed keypoint: constant columns, collinear with the bias column
    with caplog.at_level(logging.WARNING, logger="dkp.eval"):
        r = taichi(EvalSplit(kf, gf, label_scale=256.0), EvalSplit(kt, gt, label_scale=256.0))
    assert len(r.fallbacks) == 36 and all("ridge=1" in f for f in r.fallbacks)
    assert "ridge=1" in caplog.text
    assert np.isfinite(r.value)


# -- Human3.6M -------------------------------------------------------------------------------------------------


def _h36m_sets(seed: int = 0, n_fit: int = 400, n_test: int = 120, k: int = 16):
    rng = np.random.default_rng(seed)
    kf, kt = _detections(rng, n_fit, k), _detections(rng, n_test, k)
    a = rng.normal(0, 0.5, size=(2 * k, 64))
    return kf, kt, _linear_gt(kf, a), _linear_gt(kt, a)


def test_h36m_exact_linear_function_scores_zero():
    kf, kt, gf, gt = _h36m_sets()
    r = h36m(EvalSplit(kf, gf), EvalSplit(kt, gt))
    assert r.metric == "h36m_l2x100" and r.options["swap_table"] == "reference"
    assert r.value == pytest.approx(0.0, abs=1e-8)
    assert r.extras["test_swaps"] == 0


def test_h36m_known_offset_reports_x100():
    kf, kt, gf, gt = _h36m_sets(1)
    r = h36m(EvalSplit(kf, gf), EvalSplit(kt, gt + np.array([0.03, -0.04])))  # 0.05 per joint
    assert r.value == pytest.approx(5.0, abs=1e-6)


@pytest.mark.parametrize("table", ["reference", "fixed"])
def test_h36m_swap_loop_fixes_a_flipped_subset(table):
    kf, kt, gf, gt = _h36m_sets(2)
    pairs = H36M_PAIRS_REFERENCE if table == "reference" else H36M_PAIRS_FIXED
    index = swap_index(pairs, 32)
    gt_flipped = gt.copy()
    gt_flipped[:30] = gt[:30][:, index]  # 30 (> 10) test images with left and right exchanged
    r = h36m(EvalSplit(kf, gf), EvalSplit(kt, gt_flipped), swap_table=table)
    assert r.extras["test_swaps"] >= 30
    if table == "fixed":
        assert r.value == pytest.approx(0.0, abs=1e-8)  # a permutation swaps back exactly
    else:
        # the typo'd table copies joint 28 onto 20 and 21, so swapping back cannot restore joint 21: the loop
        # still moves the flipped images closer, but an error on joints 20/21/28/29 remains
        no_loop = np.linalg.norm(gt_flipped[:30] - gt[:30], axis=2).mean() * 100 * 30 / 120
        assert 0 < r.value < no_loop
    # the inputs are never mutated
    assert np.array_equal(gt_flipped[:30], gt[:30][:, index])


def test_h36m_fit_side_swap_loop_recovers_flipped_fit_labels():
    kf, kt, gf, gt = _h36m_sets(3)
    index = swap_index(H36M_PAIRS_FIXED, 32)
    gf_flipped = gf.copy()
    gf_flipped[:60] = gf[:60][:, index]
    r = h36m(EvalSplit(kf, gf_flipped), EvalSplit(kt, gt), swap_table="fixed")
    assert r.extras["fit_swaps"] >= 60
    assert r.value == pytest.approx(0.0, abs=1e-6)


def test_h36m_ten_or_fewer_preferring_images_stay_unswapped():
    kf, kt, gf, gt = _h36m_sets(4)
    index = swap_index(H36M_PAIRS_FIXED, 32)
    gt_flipped = gt.copy()
    gt_flipped[:10] = gt[:10][:, index]  # exactly 10: the loop needs MORE than 10
    r = h36m(EvalSplit(kf, gf), EvalSplit(kt, gt_flipped), swap_table="fixed")
    assert r.extras["test_swaps"] == 0
    expected = np.linalg.norm(gt_flipped - gt, axis=2).mean(axis=1).mean() * 100
    assert r.value == pytest.approx(expected, rel=1e-6)


def test_reference_swap_table_is_not_a_permutation():
    index = swap_index(H36M_PAIRS_REFERENCE, 32)
    assert index[20] == 28 and index[21] == 28 and index[28] == 21 and index[29] == 29
    assert len(set(index.tolist())) == 31  # 28 appears twice, 20 never
    fixed = swap_index(H36M_PAIRS_FIXED, 32)
    assert sorted(fixed.tolist()) == list(range(32)) and np.array_equal(fixed[fixed], np.arange(32))
    y = np.arange(64, dtype=float).reshape(1, 32, 2)
    swapped = y[:, index]
    assert np.array_equal(swapped[0, 20], y[0, 28]) and np.array_equal(swapped[0, 21], y[0, 28])
    assert np.array_equal(swapped[0, 29], y[0, 29])


def test_swap_loop_threshold_is_strict():
    pred = np.zeros((20, 2, 2))
    pred[:, 0, 1] = 1.0  # joint 0 at x = 1, joint 1 at x = 0
    gt = pred.copy()
    gt[:11] = gt[:11][:, [1, 0]]  # 11 images flipped -> loop fires
    out = swap_loop(pred, gt, np.array([1, 0]))
    assert out.swapped == 11 and out.errors.max() == 0.0
    out = swap_loop(pred[1:], gt[1:], np.array([1, 0]))  # only 10 flipped among 19 -> nothing happens
    assert out.swapped == 0 and out.errors.mean() == pytest.approx(10 / 19)


def test_h36m_needs_32_joints():
    kf, kt, gf, gt = _h36m_sets(5)
    with pytest.raises(DkpError, match="32"):
        h36m(EvalSplit(kf, gf[:, :16]), EvalSplit(kt, gt[:, :16]))


# -- DeepFashion -----------------------------------------------------------------------------------------------


def _df_sets(seed: int = 0, n_fit: int = 300, n_test: int = 100, k: int = 16, j: int = 17):
    rng = np.random.default_rng(seed)
    kf, kt = _detections(rng, n_fit, k), _detections(rng, n_test, k)
    a = rng.normal(0, 0.4, size=(2 * k, 2 * j))
    return kf, kt, _linear_gt(kf, a, scale=255.0), _linear_gt(kt, a, scale=255.0)


def test_deepfashion_exact_linear_function_is_pck_100():
    kf, kt, gf, gt = _df_sets()
    r = deepfashion(EvalSplit(kf, gf, label_scale=256.0), EvalSplit(kt, gt, label_scale=256.0))
    assert r.metric == "deepfashion_pck6" and r.higher_is_better
    assert r.value == pytest.approx(100.0) and r.extras["mean_px_error"] < 1e-8


def test_deepfashion_threshold_is_6px_and_strict():
    kf, kt, gf, gt = _df_sets(1)
    moved = gt.copy()
    moved[:, :5, 1] += 6.0 + 1e-6  # 5 of 17 joints just beyond 6 px: misses
    moved[:, 5:8, 0] += 6.0 - 1e-6  # 3 joints just inside: hits
    r = deepfashion(EvalSplit(kf, gf, label_scale=256.0), EvalSplit(kt, moved, label_scale=256.0))
    assert r.value == pytest.approx(100.0 * 12 / 17)
    # exactly 6 px is a miss (checked where the arithmetic is exact)
    pred = np.zeros((2, 2, 2))
    gt6 = np.array([[[6.0, 0.0], [0.0, 5.0]], [[0.0, 6.0], [0.0, 0.0]]])
    assert pck(pred, gt6, np.ones((2, 2), bool), 6.0) == pytest.approx(50.0)


def test_deepfashion_ridge_fallback_on_duplicate_keypoints(caplog):
    kf, kt, gf, gt = _df_sets(2)
    kf[:, 1] = kf[:, 0]  # two identical keypoints: duplicate feature columns
    with caplog.at_level(logging.WARNING, logger="dkp.eval"):
        r = deepfashion(EvalSplit(kf, gf, label_scale=256.0), EvalSplit(kt, gt, label_scale=256.0))
    assert r.fallbacks == ["deepfashion: ridge=0.001"]
    assert "ridge=0.001" in caplog.text


# -- synthetic -------------------------------------------------------------------------------------------------


def test_lr_pairs_from_joint_names():
    names = ["pelvis", "left_hip", "right_hip", "LKnee", "RKnee", "ankle_l", "ankle_r", "l_eye", "neck",
             "rib", "relbow", "LeftWrist", "RightWrist"]
    assert lr_pairs(names) == [(1, 2), (3, 4), (5, 6), (11, 12)]


def test_on_figure_fraction_uses_edge_map_pixel_centres():
    masks = np.zeros((2, 9, 9), np.uint8)
    masks[:, 0, 0] = 1  # top-left pixel only
    masks[1, 8, 8] = 1
    kp = np.array([[[-1.0, -1.0], [1.0, 1.0]], [[-1.0, -1.0], [1.0, 1.0]]])  # +-1 = centres of corner pixels
    assert on_figure_fraction(kp, masks) == pytest.approx(3 / 4)


def test_synthetic_exact_and_swapped_with_on_figure():
    rng = np.random.default_rng(7)
    names = ["head", "l_hand", "r_hand", "l_foot", "r_foot", "pelvis"]
    pairs = lr_pairs(names)
    kf, kt = _detections(rng, 200, 6), _detections(rng, 60, 6)
    a = rng.normal(0, 0.5, size=(12, 12))
    gf, gt = _linear_gt(kf, a) * 64, _linear_gt(kt, a) * 64  # labels in pixels of a 64-px frame
    gt_flipped = gt.copy()
    gt_flipped[:20] = gt[:20][:, swap_index(pairs, 6)]
    masks = np.ones((60, 64, 64), np.uint8)
    masks[:, :32] = 0  # top half off the figure
    r = synthetic(EvalSplit(kf, gf, label_scale=64.0), EvalSplit(kt, gt_flipped, masks=masks, label_scale=64.0),
                  pairs)
    assert r.value == pytest.approx(0.0, abs=1e-8) and r.extras["test_swaps"] == 20
    expected = float(((kt[..., 0] + 1) * 0.5 * 63 >= 31.5).mean())
    assert r.extras["on_figure"] == pytest.approx(expected)


def test_protocol_for_kinds():
    assert protocol_for("h36m") == "h36m" and protocol_for("synthetic", "taichi") == "taichi"
    # a folder set's labels are the user's own joints: always the folder protocol, whatever a preset asks for
    assert protocol_for("folder") == "folder" and protocol_for("folder", "synthetic") == "folder"
    assert protocol_for("synthetic", "folder") == "folder"
    with pytest.raises(DkpError, match="no keypoint labels"):
        protocol_for("unknown-kind")


def test_non_finite_detections_are_refused():
    kf, kt, gf, gt = _h36m_sets(6)
    kt[0, 0, 0] = np.nan
    with pytest.raises(DkpError, match="non-finite"):
        h36m(EvalSplit(kf, gf), EvalSplit(kt, gt))
