"""The named-joints regression as pure functions: exact recovery of an affine map, missing joints left out of the
fit, the mean pose without features, scores in original pixels, k-fold CV, the shots draw and the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dkp_tui.errors import DkpError
from dkp_tui.eval import joints
from dkp_tui.eval.joints_fit import rescale_map
from dkp_tui.eval.protocols import EvalSplit, folder, mean_pose
from dkp_tui.formats import joint_map


def _affine(n: int, k: int = 4, j: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    kp = rng.uniform(-1, 1, (n, k, 2))
    a = rng.normal(0, 10, (2 * k, 2 * j))
    gt = (((kp * 0.5 + 0.5).reshape(n, -1) @ a) + 20.0).reshape(n, j, 2)
    return kp, gt, np.ones((n, j), dtype=bool)


def test_an_affine_map_is_recovered_and_missing_joints_do_not_pull_it() -> None:
    kp, gt, vis = _affine(60)
    bad = gt.copy()
    bad[:10, 1] = 1e4  # garbage where the joint is marked missing
    vis[:10, 1] = False
    m = joints.fit_map(kp, bad, vis, ridge=1e-9)
    np.testing.assert_allclose(m.predict(kp), gt, atol=1e-4)


def test_without_features_the_map_is_the_mean_of_the_labelled_frames() -> None:
    _, gt, vis = _affine(10)
    vis[0, 2] = False
    m = joints.fit_map(None, gt, vis)
    np.testing.assert_allclose(m.predict(None, 2)[0, 2], gt[1:, 2].mean(axis=0))
    np.testing.assert_allclose(m.predict(None, 2)[1, 0], gt[:, 0].mean(axis=0))
    vis[:, 1] = False
    with pytest.raises(DkpError, match="joint b is labelled in none"):
        joints.fit_map(None, gt, vis, joint_names=["a", "b", "c"])


def test_scores_are_in_original_pixels_and_fractions_of_the_frame() -> None:
    gt = np.zeros((2, 1, 2))
    pred = np.array([[[3.0, 4.0]], [[0.0, 6.4]]])  # (y, x) stored px of a 64-px frame
    geo = np.array([[0, 0, 128, 128], [0, 10, 64, 32]], dtype=float)  # 2x, and a squashed frame (x: 0.5x)
    s = joints.score(pred, gt, np.ones((2, 1), bool), geo, 64, pck=0.09)
    assert s["px"] == pytest.approx((10.0 + 3.2) / 2)
    assert s["l2x100"] == pytest.approx((5 / 64 + 6.4 / 64) / 2 * 100)
    assert s["pck"] == pytest.approx(50.0)  # 5/64 = 0.078 < 0.09, 6.4/64 = 0.1 is not


def test_folder_protocol_and_its_mean_pose() -> None:
    kp, gt, vis = _affine(80)
    fit, test = EvalSplit(kp[:60], gt[:60], vis[:60], label_scale=64.0), EvalSplit(kp[60:], gt[60:], vis[60:],
                                                                                     label_scale=64.0)
    r = folder(fit, test)
    assert r.value < 0.01 and r.extras["pck"] == 100.0 and not r.higher_is_better
    ref = mean_pose("folder", fit, test)
    m = joints.fit_map(None, gt[:60], vis[:60])
    expected = joints.score(m.predict(None, 20), gt[60:], vis[60:], np.tile([0, 0, 64, 64], (20, 1)), 64)
    assert ref.value == pytest.approx(expected["l2x100"]) and ref.extras["px_error"] == pytest.approx(expected["px"])


def test_cross_validation_predicts_each_frame_without_its_fold() -> None:
    kp, gt, vis = _affine(40)
    noisy = gt + np.random.default_rng(1).normal(0, 1, gt.shape)
    geo = np.tile([0, 0, 64, 64], (40, 1))
    cv = joints.cross_validate(kp, noisy, vis, geo, 64, folds=5)
    fitted = joints.fit_map(kp, noisy, vis)
    train = joints.score(fitted.predict(kp), noisy, vis, geo, 64)
    assert cv["folds"] == 5 and cv["px"] > train["px"] > 0  # held-out error exceeds the training error


def test_video_frames_are_grouped_by_clip_and_still_images_by_frame() -> None:
    groups, by = joints.cv_groups(["a.mp4#0", "a.mp4#2", "b.mp4#0", "img.png", "dir/c.avi#4", "a.mp4#9"])
    assert by == "clip" and groups.tolist() == [0, 0, 1, 2, 3, 0]  # the still image is a group of its own
    assert joints.cv_groups(["x.png", "y.png", "z#tag.png"]) == (None, "frame")  # only "#<index>" names a frame
    assert joints.cv_groups(["a.mp4#0", "a.mp4#1", "x.png"]) == (None, "frame")  # one clip: nothing to hold out
    assert joints.cv_groups(None) == (None, "frame") and joints.cv_groups([]) == (None, "frame")


def test_cross_validation_by_clip_holds_out_whole_clips() -> None:
    """Each clip shifts its joints by an offset of its own, and three keypoints sit still at a place of its own (as
    keypoints parked beside a figure do): by frame, the clip's other frames in the fit tie that place to the
    offset; by clip, the held-out clip's place is new and its offset an error, as it would be on a new clip."""
    rng = np.random.default_rng(2)
    kp, gt, vis = _affine(60, k=3)
    clip = np.repeat(np.arange(6), 10)
    kp = np.concatenate([kp, rng.uniform(-1, 1, (6, 3, 2))[clip]], axis=1)
    shifted = gt + rng.normal(0, 8, (6, 1, 2))[clip]
    geo = np.tile([0, 0, 64, 64], (60, 1))
    groups, by = joints.cv_groups([f"c{c}.mp4#{i}" for i, c in enumerate(clip)])
    by_frame = joints.cross_validate(kp, shifted, vis, geo, 64, folds=5)
    by_clip = joints.cross_validate(kp, shifted, vis, geo, 64, folds=5, groups=groups)
    assert by == "clip" and by_clip["by"] == "clip" and by_clip["groups"] == 6 and by_clip["folds"] == 5
    assert by_frame["by"] == "frame" and by_frame["px"] < 0.1 and by_clip["px"] > 1.0
    few = joints.cross_validate(kp, shifted, vis, geo, 64, folds=5, groups=clip // 3)  # 2 clips: 2 folds
    assert few["folds"] == 2 and few["groups"] == 2
    again = joints.cross_validate(kp, shifted, vis, geo, 64, folds=5, groups=groups)
    assert again == by_clip  # seeded


def test_shots_parse_and_draws_are_seeded() -> None:
    assert joints.parse_shots("5, 10,all") == [5, 10, None]
    for bad in ("", "1", "five", "5,,all"):
        with pytest.raises(DkpError, match="--shots"):
            joints.parse_shots(bad)
    kp, gt, vis = _affine(50)
    geo = np.tile([0, 0, 64, 64], (10, 1))
    args = (kp[:40], gt[:40], vis[:40], kp[40:], gt[40:], vis[40:], geo, 64, [5, None])
    a, b = joints.shots_curve(*args, draws=3, seed=1), joints.shots_curve(*args, draws=3, seed=1)
    assert a == b and a[0]["draws"] == 3 and a[1]["n"] == 40 and a[1]["draws"] == 1


def test_the_joints_file_round_trips_and_rescales(tmp_path: Path) -> None:
    kp, gt, vis = _affine(30)
    m = joints.fit_map(kp, gt, vis, joint_names=["a", "b", "c"])
    m.skeleton, m.image_size, m.meta = [(0, 1), (1, 2)], 64, {"n_fit": 30, "cv": {"px": 1.5}}
    joint_map.save_map(tmp_path / "j.safetensors", m)
    back = joint_map.load_map(tmp_path / "j.safetensors")
    assert back.joint_names == ["a", "b", "c"] and back.skeleton == [(0, 1), (1, 2)] and back.image_size == 64
    assert back.n_keypoints == 4 and back.meta["n_fit"] == "30"
    np.testing.assert_array_equal(back.predict(kp), m.predict(kp))
    joint_map.check_compatible(back, 4, 64, "j")
    with pytest.raises(DkpError, match="made for K=4 keypoints at 64 px"):
        joint_map.check_compatible(back, 5, 64, "j")
    big = rescale_map(m, 2.0)  # the same points in a frame twice the size (half-pixel centres)
    np.testing.assert_allclose(big.predict(kp), (m.predict(kp) + 0.5) * 2 - 0.5)
