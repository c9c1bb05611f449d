"""`dkp infer --format slp|nwb|dlc|analysis-h5|labelstudio`: read back with sleap-io (or pandas for DeepLabCut),
the JSON's coordinates come back to 1e-3 px, with the confidences as point scores and the skeleton."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from dkp_testing import random_weights
from typer.testing import CliRunner

from dkp_tui.cli import app
from dkp_tui.inference import predictions_sleapio

runner = CliRunner()
K = 8  # the tiny config's keypoints


@pytest.fixture(scope="module")
def sio():
    return pytest.importorskip("sleap_io", reason="the labels extra (part of [dev]) is not installed")


@pytest.fixture(scope="module")
def inputs(tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("predictions")
    weights = random_weights(root / "student.safetensors", tiny_dataset)
    clip = root / "clip.mp4"
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (64, 80, 3), dtype=np.uint8)
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (80, 64))
    for k in range(9):
        writer.write(np.roll(base, 2 * k, axis=1))
    writer.release()
    photos = root / "photos"
    photos.mkdir()
    for k in range(2):
        cv2.imwrite(str(photos / f"p{k}.png"), rng.integers(0, 255, (70, 60, 3), dtype=np.uint8))
    return {"weights": weights, "clip": clip, "photos": photos, "root": root}


@pytest.fixture(scope="module")
def expected(inputs) -> dict[bool, dict]:
    """The JSON of the clip alone (False) and of the clip and the photos (True): what every format must hold."""
    return {False: _infer(inputs["weights"], inputs["clip"]),
            True: _infer(inputs["weights"], inputs["clip"], inputs["photos"])}


def _infer(*args: object) -> dict:
    result = runner.invoke(app, ["infer", *map(str, args), "-q"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout) if result.stdout.strip() else {}


def _by_frame(js: dict) -> dict[tuple[str, int], tuple[np.ndarray, np.ndarray]]:
    return {(Path(f["source"]).name, f["frame"]): (np.array([[p["x"], p["y"]] for p in f["keypoints"]]),
                                                   np.array([p["confidence"] for p in f["keypoints"]]))
            for f in js["frames"]}


def _frame_key(lf) -> tuple[str, int]:
    filename = lf.video.filename
    if isinstance(filename, list):
        return Path(filename[lf.frame_idx]).name, 0
    return Path(filename).name, int(lf.frame_idx)


@pytest.mark.parametrize("fmt, suffix, with_images", [("slp", ".slp", True), ("nwb", ".nwb", False),
                                                      ("analysis-h5", ".h5", False),
                                                      ("labelstudio", ".json", True)])
def test_predictions_read_back_with_sleap_io(sio, inputs, expected, tmp_path: Path, fmt: str, suffix: str,
                                             with_images: bool):
    sources = [inputs["clip"], *([inputs["photos"]] if with_images else [])]
    js = expected[with_images]
    expected = _by_frame(js)
    out = tmp_path / f"pred{suffix}"
    _infer(inputs["weights"], *sources, "--format", fmt, "--out", out)
    labels = sio.load_file(str(out))
    names = labels.skeleton.node_names
    order = [names.index(f"kp{k}") for k in range(K)]
    got = {_frame_key(lf): lf.instances[0] for lf in labels.labeled_frames}
    assert set(got) == set(expected)
    for key, (xy, confidence) in expected.items():
        np.testing.assert_allclose(got[key].numpy()[order], xy, atol=1e-3, rtol=0)
        if fmt != "labelstudio":  # Label Studio keeps no scores
            np.testing.assert_allclose(got[key].numpy(scores=True)[order, 2], confidence, atol=1e-4)
    if fmt in ("slp", "nwb", "analysis-h5"):  # the learned edges (Label Studio keeps no skeleton)
        edges = {frozenset((f"kp{i}", f"kp{j}")) for i, j, _ in js["edges"]}
        assert {frozenset((e.source.name, e.destination.name)) for e in labels.skeleton.edges} == edges


def test_deeplabcut_csv_carries_the_coordinates(sio, inputs, expected, tmp_path: Path):
    """sleap-io 0.9.5 writes DeepLabCut's labelled-data table (frames as labeled-data/<video>/img<frame>.png) and
    leaves `likelihood` empty; the coordinates are the JSON's."""
    import pandas as pd

    expected = _by_frame(expected[False])
    _infer(inputs["weights"], inputs["clip"], "--format", "dlc", "--out", tmp_path / "pred.csv")
    table = pd.read_csv(tmp_path / "pred.csv", header=[0, 1, 2], index_col=0)
    for index, row in table.iterrows():
        frame = int(Path(str(index)).stem.removeprefix("img"))
        xy = np.array([[row[("dkp", f"kp{k}", "x")], row[("dkp", f"kp{k}", "y")]] for k in range(K)])
        np.testing.assert_allclose(xy, expected[("clip.mp4", frame)][0], atol=1e-3, rtol=0)
    assert len(table) == len(expected)


def test_hidden_points_are_missing_in_the_file(sio, inputs, tmp_path: Path):
    out = tmp_path / "hidden.slp"
    _infer(inputs["weights"], inputs["clip"], "--min-confidence", "1.0", "--format", "slp", "--out", out)
    labels = sio.load_file(str(out))
    assert all(np.isnan(lf.instances[0].numpy()).all() for lf in labels.labeled_frames)


def test_named_joints_become_the_skeleton(sio):
    meta = {"n_keypoints": 2, "edges": [[0, 1, 1.0]], "joint_names": ["head", "hip", "knee"],
            "skeleton": [[0, 1], [1, 2]]}
    frame = {"source": "clip.mp4", "frame": 4, "time_s": 0.4, "width": 10, "height": 10,
             "keypoints": [{"id": 0, "x": 1.0, "y": 2.0, "confidence": 0.5}, {"id": 1, "x": 3.0, "y": 4.0,
                                                                               "confidence": 0.7}],
             "joints": [{"name": n, "x": float(k), "y": 2.0 * k, "confidence": 0.1 * k}
                        for k, n in enumerate(meta["joint_names"])]}
    labels = predictions_sleapio.to_labels(meta, [frame])
    assert labels.skeleton.node_names == ["head", "hip", "knee"] and len(labels.skeleton.edges) == 2
    lf = labels.labeled_frames[0]
    assert lf.frame_idx == 4 and lf.video.filename == "clip.mp4"
    np.testing.assert_allclose(lf.instances[0].numpy(scores=True), [[0, 0, 0], [1, 2, 0.1], [2, 4, 0.2]])


@pytest.mark.parametrize("extra, word", [(["--format", "slp"], "--out"), (["--format", "xls"], "--format"),
                                         (["--format", "nwb", "--out", "x.nwb", "--stride", "2"], "--stride 1")])
def test_bad_requests_are_one_line(sio, inputs, tmp_path: Path, extra: list[str], word: str):
    extra = [str(tmp_path / e) if e.endswith(".nwb") else e for e in extra]
    result = runner.invoke(app, ["infer", str(inputs["weights"]), str(inputs["clip"]), "-q", *extra])
    assert result.exit_code == 2 and word in result.output
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_video_only_formats_refuse_images(sio, inputs, tmp_path: Path):
    result = runner.invoke(app, ["infer", str(inputs["weights"]), str(inputs["photos"]), "-q", "--format", "dlc",
                                 "--out", str(tmp_path / "x.csv")])
    assert result.exit_code == 2 and "images" in result.output and not (tmp_path / "x.csv").exists()
