"""End to end on the tiny synthetic set: train a few steps, `dkp eval --json`, `dkp infer` on a video and images,
`dkp eval --runs 2 --compare` through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from dkp_tui.cli import app
from dkp_tui.config import load_config
from dkp_tui.data.layout import open_split
from dkp_tui.inference.infer import read_csv
from dkp_tui.inference.predict import load_detector, predict_split
from dkp_tui.train import loop
from dkp_tui.train.runs import EVAL_JSON

runner = CliRunner()


@pytest.fixture(scope="module")
def runs(tiny_dataset: Path, tiny_overrides, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("eval-runs")
    out = {"teacher": root / "teacher", "student": root / "student"}
    loop.train(load_config(None, tiny_overrides(tiny_dataset, iterations=3)), out["teacher"], role="teacher",
               quiet=True)
    loop.train(load_config(None, tiny_overrides(tiny_dataset, iterations=3, kd__gamma=0.5)), out["student"],
               role="student", teacher_run=out["teacher"], quiet=True)
    return out


def _json(result) -> dict:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_eval_json_and_eval_record(runs: dict[str, Path], tiny_dataset: Path):
    rec = _json(runner.invoke(app, ["eval", str(runs["student"]), "--json", "--quiet"]))
    assert rec["protocol"] == "synthetic" and rec["metric"] == "synthetic_l2x100" and rec["input"] == "rgb"
    assert np.isfinite(rec["value"]) and rec["value"] > 0 and not rec["higher_is_better"]
    assert 0.0 <= rec["extras"]["on_figure"] <= 1.0
    assert rec["n_fit"] == 24 and rec["n_test"] == 24 and rec["step"] == 3
    assert len(rec["manifest_hash"]) == 16 and rec["dkp_version"]
    assert rec["options"]["swap_pairs"]  # the synthetic skeleton's left/right pairs were found
    assert rec["mean_pose"]["value"] > 0 and rec["skill"] == pytest.approx(1 - rec["value"] / rec["mean_pose"]["value"])
    saved = json.loads((runs["student"] / EVAL_JSON).read_text())
    assert saved[-1]["value"] == rec["value"] and saved[-1]["key"] == rec["key"]

    # the teacher is scored on depth maps
    trec = _json(runner.invoke(app, ["eval", str(runs["teacher"]), "--json", "--quiet"]))
    assert trec["input"] == "depth" and trec["depth_tag"] and trec["role"] == "teacher"

    # the human-readable table goes to stderr, nothing to stdout
    result = runner.invoke(app, ["eval", str(runs["student"]), "--quiet", "--data", str(tiny_dataset)])
    assert result.exit_code == 0 and result.stdout == ""
    assert "synthetic mean L2" in result.stderr and "on the figure" in result.stderr
    assert "constant mean pose" in result.stderr and "keypoint skill" in result.stderr


def test_eval_errors_are_one_line(runs: dict[str, Path], tmp_path: Path):
    result = runner.invoke(app, ["eval", str(tmp_path / "nope")])
    assert result.exit_code == 2 and result.stderr.startswith("dkp: error:")
    result = runner.invoke(app, ["eval", str(runs["student"]), "--set", "eval.protocol=h36m", "--quiet"])
    assert result.exit_code == 2 and "32" in result.stderr
    result = runner.invoke(app, ["eval", "--runs", "2"])
    assert result.exit_code == 2 and "--preset" in result.stderr


def _write_video(path: Path, frames: list[np.ndarray], fps: float = 10.0) -> None:
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    assert writer.isOpened()
    for f in frames:
        writer.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    writer.release()


def test_infer_video_with_overlay(runs: dict[str, Path], tiny_dataset: Path, tmp_path: Path):
    test = open_split(tiny_dataset, "test")
    frames = [cv2.resize(np.asarray(test.images[i]), (96, 72)) for i in range(5)]  # non-square video
    video = tmp_path / "clip.mp4"
    _write_video(video, frames)
    out = runner.invoke(app, ["infer", str(runs["student"]), str(video), "--overlay", str(tmp_path / "ov"),
                              "--quiet", "--batch-size", "2"])
    data = _json(out)
    assert data["format"] == "dkp-keypoints" and data["n_keypoints"] == 8 and data["crop"] == "center"
    assert [f["frame"] for f in data["frames"]] == [0, 1, 2, 3, 4]
    assert data["frames"][1]["time_s"] == pytest.approx(0.1)
    for f in data["frames"]:
        assert (f["width"], f["height"]) == (96, 72) and len(f["keypoints"]) == 8
        xs = [p["x"] for p in f["keypoints"]]
        assert 12 - 0.5 <= min(xs) and max(xs) <= 12 + 72 - 0.5  # inside the centred 72 x 72 square
    cap = cv2.VideoCapture(str(tmp_path / "ov" / "clip.mp4"))
    assert cap.isOpened() and int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 5
    ok, first = cap.read()
    cap.release()
    assert ok and first.shape[0] >= 72
    assert not list((tmp_path / "ov").glob(".*partial*"))


def test_infer_images_json_and_csv_agree_and_match_the_detector(runs: dict[str, Path], tiny_dataset: Path,
                                                                tmp_path: Path):
    test = open_split(tiny_dataset, "test")
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(3):
        cv2.imwrite(str(folder / f"im{i}.png"), cv2.cvtColor(np.asarray(test.images[i]), cv2.COLOR_RGB2BGR))
    wide = np.concatenate([np.zeros((64, 16, 3), np.uint8), np.asarray(test.images[0]),
                           np.zeros((64, 16, 3), np.uint8)], axis=1)  # 96 x 64: padded on both sides
    cv2.imwrite(str(folder / "wide.jpg"), cv2.cvtColor(wide, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 100])

    js = _json(runner.invoke(app, ["infer", str(runs["student"]), str(folder), "--format", "json", "--quiet"]))
    csv_path = tmp_path / "kp.csv"
    result = runner.invoke(app, ["infer", str(runs["student"]), str(folder), "--format", "csv", "--out",
                                 str(csv_path), "--quiet", "--overlay", str(tmp_path / "png")])
    assert result.exit_code == 0, result.output
    from_csv = read_csv(csv_path.read_text())
    assert [f["source"] for f in from_csv] == [f["source"] for f in js["frames"]]
    assert [f["keypoints"] for f in from_csv] == [f["keypoints"] for f in js["frames"]]
    assert sorted(p.name for p in (tmp_path / "png").iterdir()) == ["im0.png", "im1.png", "im2.png", "wide.png"]

    # the stored 64-px frames are the detector's input unchanged, so infer must equal the eval-path detections
    detector, cfg, _ = load_detector(runs["student"], "cpu")
    kp = predict_split(detector, tiny_dataset, "test", image_size=cfg.model.image_size, batch_size=8)[:3]
    expected_xy = (kp[..., ::-1] + 1) * 0.5 * 63  # (y, x) in [-1, 1] -> (x, y) pixels
    got = np.array([[[p["x"], p["y"]] for p in f["keypoints"]] for f in js["frames"][:3]])
    np.testing.assert_allclose(got, expected_xy, atol=2e-3)
    # the centre crop of the padded image is the same frame, shifted by 16 px
    wide_xy = np.array([[p["x"], p["y"]] for p in js["frames"][3]["keypoints"]])
    np.testing.assert_allclose(wide_xy - [16, 0], got[0], atol=0.6)  # JPEG, so not bit-exact


def test_eval_runs_compare_via_cli(tiny_dataset: Path, tiny_overrides, tmp_path: Path):
    sets = [a for kv in tiny_overrides(tiny_dataset, iterations=2, kd__gamma=0.5) for a in ("--set", kv)]
    args = ["eval", "--runs", "2", "--compare", "--preset", "synthetic-cpu", "--out", str(tmp_path / "rep"),
            "--json", "--quiet", *sets]
    summary = _json(runner.invoke(app, args))
    rows = {r["variant"]: r for r in summary["rows"]}
    assert set(rows) == {"student-only", "teacher", "distilled"}
    assert all(len(r["values"]) == 2 and r["std"] is not None for r in rows.values())
    assert rows["teacher"]["input"] == "depth" and rows["distilled"]["on_figure"] is not None
    assert summary["mean_pose"]["value"] > 0 and len(rows["teacher"]["skill"]) == 2
    assert (tmp_path / "rep" / "seed1" / "student-only" / "model.safetensors").is_file()
    assert summary["figures"] == {k: str(tmp_path / "rep" / f"{k}.png") for k in ("table", "seeds", "compare")}
    assert all(cv2.imread(p) is not None for p in summary["figures"].values())
    mtime = (tmp_path / "rep" / "seed0" / "student" / "model.safetensors").stat().st_mtime_ns
    # the table form, reusing every run (nothing retrained: weights untouched)
    result = runner.invoke(app, args[:-len(sets) - 2] + ["--quiet", *sets])
    assert result.exit_code == 0, result.output
    # (80 columns: the labels wrap inside their cells, so "image student" may be split across lines)
    assert "image" in result.stderr and "depth" in result.stderr and "teacher" in result.stderr
    assert "±" in result.stderr
    assert "skill = 1 − error / mean-pose error" in " ".join(result.stderr.split())  # the caption, under the table
    assert (tmp_path / "rep" / "seed0" / "student" / "model.safetensors").stat().st_mtime_ns == mtime
