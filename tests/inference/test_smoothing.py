"""Temporal filtering: gap bridging, the three smoothers on tracks with known answers, and `dkp infer --smooth`
on a clip (raw beside filtered, hidden points, CSV round trip, overlays)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from dkp_testing import random_weights
from typer.testing import CliRunner

from dkp_tui.cli import app
from dkp_tui.errors import DkpError
from dkp_tui.inference import smoothing as sm
from dkp_tui.inference.infer import read_csv

runner = CliRunner()


def _track(values: np.ndarray) -> np.ndarray:
    """(T,) -> (T, 1, 2): one point moving along x = values, y = 2 x."""
    return np.stack([values, 2 * values], axis=-1)[:, None, :].astype(np.float64)


def test_short_interior_gaps_are_bridged_long_gaps_and_ends_are_not():
    xy = _track(np.arange(20.0))
    xy[[0, 5, 6, 12, 13, 14, 15, 19]] = np.nan  # the ends, a 2-frame gap, a 4-frame gap
    out, filled = sm.fill_gaps(xy, max_gap=3)
    np.testing.assert_allclose(out[5:7], _track(np.arange(20.0))[5:7])  # linear motion: exact
    assert np.isnan(out[[0, 12, 13, 14, 15, 19]]).all()
    assert filled[:, 0].tolist() == [k in (5, 6) for k in range(20)]


def test_unsure_points_are_hidden():
    xy = _track(np.arange(4.0))
    hidden = sm.hide_unsure(xy, np.array([[0.9], [0.1], [0.5], [0.49]]), 0.5)
    assert np.isnan(hidden[:, 0, 0]).tolist() == [False, True, False, True]


def test_savgol_keeps_a_quadratic_and_cuts_noise():
    t = np.arange(40.0)
    clean = _track(0.05 * t**2 - t)
    np.testing.assert_allclose(sm.smooth(clean, sm.TemporalFilter("savgol", 7), 10.0), clean, atol=1e-9)
    noisy = clean + np.random.default_rng(0).normal(0, 1.0, clean.shape)
    filtered = sm.smooth(noisy, sm.TemporalFilter("savgol", 7), 10.0)
    assert sm.jitter(filtered) < 0.4 * sm.jitter(noisy)
    assert np.abs(filtered - clean).mean() < np.abs(noisy - clean).mean()


def test_median_removes_a_one_frame_jump():
    xy = _track(np.full(15, 10.0))
    xy[7] += 30.0
    np.testing.assert_allclose(sm.smooth(xy, sm.TemporalFilter("median", 5), 10.0), _track(np.full(15, 10.0)))


def test_one_euro_damps_jitter_at_rest_and_follows_a_move():
    rng = np.random.default_rng(1)
    rest = _track(np.full(60, 50.0)) + rng.normal(0, 1.0, (60, 1, 2))
    f = sm.TemporalFilter("oneeuro")
    assert sm.jitter(sm.smooth(rest, f, 10.0)) < 0.5 * sm.jitter(rest)
    ramp = _track(np.arange(60.0) * 3.0)  # 30 px/s at 10 fps
    lag = np.abs(sm.smooth(ramp, f, 10.0) - ramp)[-10:].max()
    assert lag < 3.0  # under one frame's move once it has caught up (the cutoff rises with speed)


def test_filters_never_reach_across_a_gap():
    xy = _track(np.concatenate([np.full(10, 5.0), [np.nan] * 8, np.full(10, 500.0)]))
    out = sm.smooth(xy, sm.TemporalFilter("savgol", 7), 10.0)
    np.testing.assert_allclose(out[:10], xy[:10])
    np.testing.assert_allclose(out[18:], xy[18:])
    assert np.isnan(out[10:18]).all()


def test_jitter_is_zero_at_constant_speed():
    assert sm.jitter(_track(np.arange(10.0) * 4)) == pytest.approx(0.0)
    assert sm.jitter(_track(np.array([0.0, 1.0, 0.0, 1.0]))) == pytest.approx(2 * np.sqrt(5))


@pytest.mark.parametrize("kwargs, word", [({"method": "kalman"}, "--smooth"), ({"window": 4}, "--smooth-window"),
                                          ({"min_confidence": 1.5}, "--min-confidence"), ({"max_gap": -1}, "--max-gap")])
def test_bad_settings_are_one_line(kwargs, word):
    with pytest.raises(DkpError, match=word):
        sm.TemporalFilter(**kwargs)


@pytest.fixture(scope="module")
def clip_and_weights(tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("smooth")
    weights = random_weights(root / "student.safetensors", tiny_dataset)
    clip = root / "clip.mp4"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (80, 64))
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (64, 80, 3), dtype=np.uint8)
    for k in range(16):
        writer.write(np.roll(base, k, axis=1))
    writer.release()
    return clip, weights


def test_infer_smooth_keeps_raw_beside_filtered_and_hides_unsure_points(clip_and_weights, tmp_path: Path):
    clip, weights = clip_and_weights
    raw = json.loads(runner.invoke(app, ["infer", str(weights), str(clip), "-q"]).stdout)
    args = ["infer", str(weights), str(clip), "-q", "--smooth", "savgol", "--smooth-window", "5"]
    result = runner.invoke(app, [*args, "--overlay", str(tmp_path / "ov")])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["temporal_filter"]["method"] == "savgol" and (tmp_path / "ov" / "clip.mp4").is_file()
    raw_xy = np.array([[[p["x"], p["y"]] for p in f["keypoints"]] for f in raw["frames"]])
    kept = np.array([[[p["raw_x"], p["raw_y"]] for p in f["keypoints"]] for f in out["frames"]])
    smoothed = np.array([[[p["x"], p["y"]] for p in f["keypoints"]] for f in out["frames"]])
    np.testing.assert_array_equal(kept, raw_xy)
    expected = np.round(sm.smooth(raw_xy, sm.TemporalFilter("savgol", 5), 10.0), 3)
    np.testing.assert_allclose(smoothed, expected, atol=1e-9)
    assert sm.jitter(smoothed) < sm.jitter(raw_xy)
    # the CSV carries the same: filtered, raw, filled
    csv_out = runner.invoke(app, [*args, "--format", "csv"]).stdout
    assert [f["keypoints"] for f in read_csv(csv_out)] == [f["keypoints"] for f in out["frames"]]
    # above every point's confidence: everything hidden, nothing to bridge from
    hidden = json.loads(runner.invoke(app, [*args, "--min-confidence", "1.0"]).stdout)
    assert all(p["x"] is None and p["raw_x"] is not None for f in hidden["frames"] for p in f["keypoints"])
    bad = runner.invoke(app, [*args, "--smooth", "kalman"])
    assert bad.exit_code == 2 and "--smooth" in bad.output


def test_overlays_draw_trails_and_leave_hidden_points_out():
    """The overlay of a frame with a trail differs from one without only along the points' past positions; a
    hidden (NaN) point draws nothing."""
    from dkp_tui.inference.infer import _OverlayWriter

    image = np.full((64, 64, 3), 40, np.uint8)
    xy = np.array([[40.0, 40.0], [np.nan, np.nan]])
    history = [np.array([[10.0, 10.0], [np.nan, np.nan]]), np.array([[25.0, 25.0], [np.nan, np.nan]]), xy]
    plain = _OverlayWriter.draw(image, xy, [(0, 1, 1.0)])
    trailed = _OverlayWriter.draw(image, xy, [(0, 1, 1.0)], history)
    changed = np.argwhere((plain != trailed).any(axis=-1)) / 4.0  # back to frame pixels (drawn at 4x)
    assert len(changed) and np.abs(changed[:, 0] - changed[:, 1]).max() < 2.0  # along the diagonal path
    alone = _OverlayWriter.draw(image, np.array([[40.0, 40.0]]), [])
    np.testing.assert_array_equal(plain, alone)  # the hidden point and its edge drew nothing
    named = _OverlayWriter.draw(image, xy, [], names=["head", "hand"])
    assert (named != alone).any()
