"""`dkp outliers`: the scores, the spread over clips, and a job that SLEAP (through sleap-io) reads back with the
picks as suggestions, whose labels `dkp prepare folder --labels` then reads as the original video frames."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from dkp_testing import random_weights
from typer.testing import CliRunner

from dkp_tui.cli import app
from dkp_tui.inference import outliers

runner = CliRunner()


def _frames(source: str, xy: np.ndarray, confidence: np.ndarray) -> list[dict]:
    return [{"source": source, "frame": t, "width": 100, "height": 100, "time_s": t / 10,
             "keypoints": [{"id": k, "x": float(p[0]), "y": float(p[1]), "confidence": float(c)}
                           for k, (p, c) in enumerate(zip(xy[t], confidence[t], strict=True))]}
            for t in range(len(xy))]


def test_ranks_and_jumps():
    np.testing.assert_allclose(outliers.ranks(np.array([3.0, 1.0, 2.0, 2.0])), [1.0, 0.0, 0.5, 0.5])
    xy = np.stack([np.arange(10.0), np.zeros(10)], axis=-1)[:, None, :].repeat(2, axis=1)  # steady motion
    xy[6, 1] += [0.0, 20.0]  # one point leaves the line for one frame
    j = outliers.jumps(xy, 100.0)
    assert j.argmax() == 6 and j[6] == pytest.approx(0.2) and j[:4].max() == pytest.approx(0.0)


def test_picks_are_the_unsure_frames_spread_over_clips():
    t = 30
    xy = np.zeros((t, 3, 2)) + 50.0
    sure = np.full((t, 3), 0.9)
    a = _frames("a.mp4", xy, sure)
    unsure = sure.copy()
    unsure[10:13] = 0.1  # three neighbouring unsure frames in clip b
    unsure[25] = 0.2
    b = _frames("b.mp4", xy, unsure)
    picks = outliers.pick(a + b, n=3, min_gap=5)
    got = [(p.source, p.frame) for p in picks]
    assert got[0][0] == "b.mp4" and got[0][1] in (10, 11, 12)
    assert ("b.mp4", 25) in got  # the next unsure frame, not a neighbour of the first
    assert sum(s == "b.mp4" for s, _ in got) == 2  # the cap (2 x the even share) leaves a pick for clip a
    frames_b = sorted(f for s, f in got if s == "b.mp4")
    assert frames_b[1] - frames_b[0] >= 5


def test_outliers_writes_a_job_sleap_reads_and_its_labels_come_back_as_video_frames(tiny_dataset: Path,
                                                                                    tmp_path: Path):
    sio = pytest.importorskip("sleap_io", reason="the labels extra (part of [dev]) is not installed")
    from dkp_tui.data.labels import read_labels

    weights = random_weights(tmp_path / "student.safetensors", tiny_dataset)
    videos = tmp_path / "videos"
    videos.mkdir()
    rng = np.random.default_rng(0)
    for c in range(2):
        writer = cv2.VideoWriter(str(videos / f"clip{c}.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (64, 64))
        base = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
        for k in range(12):
            writer.write(np.roll(base, 3 * k, axis=0))
        writer.release()
    job = tmp_path / "next"
    result = runner.invoke(app, ["outliers", str(weights), str(videos), "--n", "4", "--min-gap", "3", "--out",
                                 str(job), "--json", "-q"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["n"] == 4 and summary["scored"] == 24
    assert {Path(p["source"]).name for p in summary["picks"]} == {"clip0.mp4", "clip1.mp4"}
    assert all(Path(p["image"]).is_file() for p in summary["picks"])
    assert summary["review"] == [] and all(p["residual"] is None for p in summary["picks"])
    labels = sio.load_file(str(job / "job.slp"))
    suggested = sorted((Path(s.video.filename).name, s.frame_idx) for s in labels.suggestions)
    assert suggested == sorted((Path(p["source"]).name, p["frame"]) for p in summary["picks"])
    # labelling in SLEAP: a user instance on each suggested frame, saved; dkp reads those as clip.mp4#frame
    for lf in labels.labeled_frames:
        lf.instances.append(sio.Instance.from_numpy(lf.instances[0].numpy(), skeleton=labels.skeleton))
    sio.save_slp(labels, str(tmp_path / "labelled.slp"))
    got = read_labels(tmp_path / "labelled.slp")
    assert sorted((Path(n.split("#")[0]).name, int(n.split("#")[1])) for n in got.xy) == suggested
    # with labels: never picked again, a residual near them, the labelled frames ranked for review
    rows = ["image,joint,x,y"] + [f"clip0.mp4#{t},{j},{10 + 2 * t + 5 * k},{30 - t}" for t in range(0, 12, 2)
                                   for k, j in enumerate(("nose", "tail"))]
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    result = runner.invoke(app, ["outliers", str(weights), str(videos), "--n", "4", "--min-gap", "2", "--out",
                                 str(tmp_path / "next2"), "--labelled", str(tmp_path / "labels.csv"), "--json",
                                 "-q"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["labelled_scored"] == 6 and len(summary["review"]) == 4
    assert all(Path(r["source"]).name == "clip0.mp4" and r["frame"] % 2 == 0 for r in summary["review"])
    assert [r["residual"] for r in summary["review"]] == sorted((r["residual"] for r in summary["review"]),
                                                                reverse=True)
    for p in summary["picks"]:
        assert (Path(p["source"]).name == "clip0.mp4") == (p["residual"] is not None)
        assert not (Path(p["source"]).name == "clip0.mp4" and p["frame"] % 2 == 0)
    result = runner.invoke(app, ["outliers", str(weights), str(videos), "--n", "4", "--min-gap", "2", "--out",
                                 str(tmp_path / "next3"), "--labelled", str(tmp_path / "labels.csv"), "--no-residual",
                                 "--json", "-q"])
    summary = json.loads(result.stdout)
    assert summary["review"] == [] and all(p["residual"] is None for p in summary["picks"])
    assert not any(Path(p["source"]).name == "clip0.mp4" and p["frame"] % 2 == 0 for p in summary["picks"])


def test_frames_labelled_already_are_never_picked():
    t = 20
    xy = np.zeros((t, 2, 2)) + 50.0
    confidence = np.full((t, 2), 0.9)
    confidence[4] = 0.1  # the least sure frame, but labelled already (as clip.mp4#4 in some label file)
    confidence[15] = 0.3
    frames = _frames("/data/videos/clip.mp4", xy, confidence)
    assert outliers.pick(frames, 1)[0].frame == 4
    done = outliers.labelled_keys(["clip.mp4#4", "other.mp4#15", "images/a.png"])
    assert done == {("clip.mp4", 4), ("other.mp4", 15), ("a.png", 0)}
    assert [p.frame for p in outliers.pick(frames, 1, labelled=done)] == [15]


def _tracked(source: str, t: int, seed: int) -> tuple[list[dict], np.ndarray]:
    """A clip whose 4 keypoints move at random and whose 2 joints are an affine map of them; returns the frames
    and the joints (T, 2, 2) (x, y) in pixels of the 100-px frame."""
    rng = np.random.default_rng(seed)
    xy = rng.uniform(20, 80, (t, 4, 2))
    a = np.random.default_rng(99).normal(0, 0.5, (8, 4))  # the same map in every clip
    joints = (xy.reshape(t, -1) @ a).reshape(t, 2, 2) + 50.0
    return _frames(source, xy, np.full((t, 4), 0.9)), joints


def test_the_residual_flags_a_wrong_label_for_review_and_scores_the_frames_around_it():
    frames_a, ja = _tracked("/v/a.mp4", 40, 0)
    frames_b, jb = _tracked("/v/b.mp4", 40, 1)
    frames = frames_a + frames_b
    xy = {f"a.mp4#{t}": ja[t].copy() for t in range(0, 40, 4)} | {f"b.mp4#{t}": jb[t].copy() for t in range(0, 40, 4)}
    xy["a.mp4#20"][1] += [30.0, -20.0]  # a wrong label (or a pose the keypoints do not explain)
    present = {k: np.ones(2, bool) for k in xy}
    present["b.mp4#8"][0] = False  # a missing joint is left out of fit and residual
    points = outliers.label_points(xy, present)
    assert set(points) == outliers.labelled_keys(list(xy)) and ("a.mp4", 20) in points
    res = outliers.residuals(frames, points)
    assert len(res) == 20 and all(frames[i]["frame"] % 4 == 0 for i in res)
    worst = max(res, key=res.get)
    assert (frames[worst]["source"], frames[worst]["frame"]) == ("/v/a.mp4", 20)
    assert res[worst] > 5 * np.median(list(res.values()))  # a fraction of the 100-px frame
    flagged = outliers.review(frames, res, 3)
    assert flagged[0].frame == 20 and flagged[0].residual_px == pytest.approx(100 * res[worst])
    assert flagged[0].residual >= flagged[1].residual >= flagged[2].residual
    term = outliers.residual_term(frames, res)
    assert term[19] == pytest.approx((res[16] + 3 * res[20]) / 4)  # linear in time between labelled frames
    assert term[39] == pytest.approx(res[36])  # beyond the last labelled frame: the nearest one's
    picks = outliers.pick(frames, 2, min_gap=3, labelled=set(points), residual=term)
    assert picks[0].source == "/v/a.mp4" and picks[0].frame in (19, 21) and np.isfinite(picks[0].residual)
    assert all((p.source.rsplit("/", 1)[-1], p.frame) not in points for p in picks)


def test_no_residual_without_enough_labelled_frames_or_in_clips_without_labels():
    frames_a, ja = _tracked("a.mp4", 20, 0)
    frames_b, _ = _tracked("b.mp4", 20, 1)
    few = {f"a.mp4#{t}": ja[t] for t in (0, 5, 10)}
    assert outliers.residuals(frames_a, outliers.label_points(few, {k: np.ones(2, bool) for k in few})) == {}
    some = {f"a.mp4#{t}": ja[t] for t in range(0, 20, 2)}
    res = outliers.residuals(frames_a + frames_b, outliers.label_points(some, {k: np.ones(2, bool) for k in some}))
    term = outliers.residual_term(frames_a + frames_b, res)
    assert np.isfinite(term[:20]).all() and np.isnan(term[20:]).all()
    score, _, _ = outliers.score_frames(frames_a + frames_b, term)
    plain, _, _ = outliers.score_frames(frames_a + frames_b)
    np.testing.assert_allclose(score[20:], plain[20:])  # clip b: the two other terms only
    assert np.isfinite(score).all()
