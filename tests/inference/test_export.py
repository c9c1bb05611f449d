"""`dkp export --format onnx` and `dkp infer --onnx`: the exported detector matches PyTorch, and both inference
routes give the same keypoints, JSON, CSV and overlays."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from dkp_testing import random_weights
from typer.testing import CliRunner

from dkp_tui.cli import app
from dkp_tui.errors import DkpError
from dkp_tui.inference import export
from dkp_tui.inference.infer import read_csv, run_inference
from dkp_tui.inference.onnx_detector import OnnxDetector
from dkp_tui.inference.predict import load_detector, load_edge_weights
from dkp_tui.viz import to_pixels

pytest.importorskip("onnxruntime", reason="the export extra is part of [dev]")  # a missing extra is tested below
runner = CliRunner()


@pytest.fixture(scope="module")
def exported(tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:
    """`dkp export WEIGHTS --out X.onnx --json`: (weights, model, the printed summary)."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("export")
    weights = random_weights(root / "student.safetensors", tiny_dataset)
    res = runner.invoke(app, ["export", str(weights), "--out", str(root / "student.onnx"), "--json"])
    assert res.exit_code == 0, res.output
    return weights, root / "student.onnx", json.loads(res.stdout)


def test_export_matches_pytorch_and_carries_its_metadata(exported, tiny_dataset: Path):
    weights, onnx_path, result = exported
    assert result["max_diff_keypoints_px"] <= export.KEYPOINT_TOLERANCE_PX and result["max_diff_heatmaps"] <= 1e-4
    assert result["path"] == str(onnx_path) and result["opset"] == 18 and result["n_keypoints"] == 8
    assert result["verified_batches"] == [3, 1, 2] and result["bytes"] == onnx_path.stat().st_size
    assert not [p for p in onnx_path.parent.iterdir() if ".tmp" in p.name]  # the temporary file was renamed
    import onnx

    proto = onnx.load(str(onnx_path))
    onnx.checker.check_model(proto)
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["dkp.n_keypoints"] == "8" and meta["dkp.image_size"] == "64" and meta["dkp.role"] == "student"
    assert meta["dkp.step"] == "7" and "127.5" in meta["dkp.preprocessing"]
    from dkp_tui.data.synthetic import JOINT_NAMES

    assert json.loads(meta["dkp.joint_names"]) == list(JOINT_NAMES)  # the data set's labelled joints
    np.testing.assert_array_equal(np.array(json.loads(meta["dkp.edge_weights"])), load_edge_weights(weights))
    assert [i.name for i in proto.graph.input] == ["image"]
    assert [o.name for o in proto.graph.output] == ["keypoints", "heatmaps", "confidence"]
    assert result["max_diff_confidence"] <= 1e-4 and "confidence" in meta["dkp.coordinates"]


def test_onnx_confidence_is_the_torch_detectors_and_older_exports_get_it_from_their_heatmaps(exported, monkeypatch):
    """The graph's `confidence` output equals `predict.detect_scored`; a model exported before that output
    existed gets the same numbers computed from its heatmaps (the torch-free route)."""
    from dkp_tui.inference.predict import detect_scored, uint8_to_input

    weights, onnx_path, _ = exported
    detector, _, _ = load_detector(weights)
    frames = np.random.default_rng(5).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    ref_kp, ref_conf = detect_scored(detector, uint8_to_input(frames), "cpu")
    runtime = OnnxDetector.open(onnx_path, "cpu")
    assert runtime.has_confidence
    kp, conf = runtime.detect(frames)
    np.testing.assert_allclose(kp, ref_kp, atol=1e-4)
    np.testing.assert_allclose(conf, ref_conf, atol=1e-4)
    monkeypatch.setattr(OnnxDetector, "has_confidence", property(lambda self: False))
    _, from_heatmaps = runtime.detect(frames)
    np.testing.assert_allclose(from_heatmaps, ref_conf, atol=1e-4)


def test_onnx_outputs_are_pixels_of_the_input_and_any_batch_size_works(exported):
    """keypoints = (x, y) pixels with (0, 0) the top-left pixel's centre (viz.to_pixels, as dkp infer maps them);
    heatmaps = the softmax maps. A batch size the export never saw (5) runs."""
    weights, onnx_path, _ = exported
    detector, _, _ = load_detector(weights)
    x = torch.rand(5, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        out = detector(x)
    kp, hm = OnnxDetector.open(onnx_path, "cpu").run(x.numpy())
    assert kp.shape == (5, 8, 2) and hm.shape == (5, 8, 16, 16)
    np.testing.assert_allclose(kp, to_pixels(out.keypoints.numpy(), 64, 64), atol=1e-3)
    np.testing.assert_allclose(hm, out.probs.numpy(), atol=1e-5)
    np.testing.assert_allclose(hm.sum(axis=(2, 3)), 1.0, atol=1e-5)


def _photos(folder: Path) -> Path:
    """Images the detector has to crop and resize: non-square, larger and smaller than 64 px, PNG and JPEG."""
    rng = np.random.default_rng(3)
    folder.mkdir(parents=True, exist_ok=True)
    for i, (h, w) in enumerate([(120, 200), (200, 90), (48, 48), (64, 64)]):
        img = cv2.GaussianBlur(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), (0, 0), 3)
        cv2.rectangle(img, (w // 3, h // 4), (w // 2, h // 2), (255, 255, 255), -1)
        cv2.imwrite(str(folder / f"img{i}.{'jpg' if i % 2 else 'png'}"), img)
    return folder


@pytest.mark.parametrize("crop", ["center", "none"])
def test_both_infer_routes_give_the_same_keypoints(exported, tmp_path: Path, crop: str):
    weights, onnx_path, _ = exported
    photos = _photos(tmp_path / "photos")
    torch_res = run_inference(weights, [photos], crop=crop, progress=False)
    onnx_res = run_inference(onnx_path, [photos], crop=crop, progress=False)
    assert onnx_res.meta["backend"] == "onnxruntime" and torch_res.meta["backend"] == "torch"
    assert onnx_res.meta["edges"] == torch_res.meta["edges"] and onnx_res.meta["step"] == 7
    assert [f["source"] for f in onnx_res.frames] == [f["source"] for f in torch_res.frames]
    diff = np.abs(onnx_res.keypoints() - torch_res.keypoints()).max()
    assert diff <= 2e-3  # the tolerance plus one unit of the 3-decimal rounding both outputs share


def test_infer_onnx_cli_writes_csv_and_overlays(exported, tmp_path: Path):
    weights, onnx_path, _ = exported
    photos = _photos(tmp_path / "photos")
    outs = {}
    for name, args in {"torch": [str(weights), str(photos)], "onnx": ["--onnx", str(onnx_path), str(photos)]}.items():
        res = runner.invoke(app, ["infer", *args, "--format", "csv", "--out", str(tmp_path / f"{name}.csv"),
                                  "--overlay", str(tmp_path / f"ov-{name}"), "--quiet"])
        assert res.exit_code == 0, res.output
        outs[name] = read_csv((tmp_path / f"{name}.csv").read_text())
    a = np.array([[[p["x"], p["y"]] for p in f["keypoints"]] for f in outs["torch"]])
    b = np.array([[[p["x"], p["y"]] for p in f["keypoints"]] for f in outs["onnx"]])
    assert a.shape == (4, 8, 2) and np.abs(a - b).max() <= 2e-3
    assert sorted(p.name for p in (tmp_path / "ov-onnx").iterdir()) == \
        sorted(p.name for p in (tmp_path / "ov-torch").iterdir()) == ["img0.png", "img1.png", "img2.png", "img3.png"]


def test_the_onnx_route_does_not_import_torch(exported, tmp_path: Path):
    _, onnx_path, _ = exported
    photos = _photos(tmp_path / "photos")
    code = ("import sys; from dkp_tui.inference.infer import run_inference; "
            f"r = run_inference({str(onnx_path)!r}, [{str(photos)!r}], progress=False); "
            "assert len(r.frames) == 4; print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_a_mismatching_export_fails_and_leaves_nothing(exported, tiny_dataset: Path, tmp_path: Path, monkeypatch):
    """A real mismatch: the exporter hands back the graph of other weights (what a wrong conversion looks like to
    the check); the command fails with the measured difference and writes nothing."""
    import onnx

    _, onnx_path, _ = exported
    other = random_weights(tmp_path / "other.safetensors", tiny_dataset, seed=5)

    def stale_export(model, size, opset):
        proto = onnx.load(str(onnx_path))
        del proto.metadata_props[:]
        return proto

    monkeypatch.setattr(export, "_torch_export", stale_export)
    target = tmp_path / "out" / "bad.onnx"
    with pytest.raises(DkpError, match=r"does not match PyTorch: max keypoint difference \d"):
        export.export_run(other, target)
    assert not target.exists() and list(target.parent.iterdir()) == []


def test_export_bad_arguments_are_one_line_exit_2(exported, tmp_path: Path):
    weights, onnx_path, _ = exported
    for args, msg in [(["--opset", "12"], "opset 18 or newer"), (["--format", "tflite"], "--format must be"),
                      (["--out", str(tmp_path / "m.txt")], "ends in .onnx")]:
        res = runner.invoke(app, ["export", str(weights), *args])
        assert res.exit_code == 2 and msg in res.stderr and "Traceback" not in res.output, res.output
    res = runner.invoke(app, ["export", str(tmp_path / "nothing")])
    assert res.exit_code == 2 and "dkp: error:" in res.stderr
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a model")
    img = _photos(tmp_path / "p") / "img0.png"
    res = runner.invoke(app, ["infer", "--onnx", str(garbage), str(img)])
    assert res.exit_code == 2 and "not a readable ONNX model" in res.stderr
    res = runner.invoke(app, ["infer", "--onnx", str(onnx_path)])
    assert res.exit_code == 2 and "no inputs" in res.stderr


@pytest.mark.parametrize("missing", ["onnx", "onnxruntime"])
def test_without_the_extra_the_command_names_it(exported, tmp_path: Path, monkeypatch, missing: str):
    weights, onnx_path, _ = exported
    monkeypatch.setitem(sys.modules, missing, None)  # what an environment without the package looks like to import
    res = runner.invoke(app, ["export", str(weights), "--out", str(tmp_path / "x.onnx")])
    assert res.exit_code == 2 and "pip install -e '.[export]'" in res.stderr, res.output
    assert not (tmp_path / "x.onnx").exists()
    if missing == "onnxruntime":
        res = runner.invoke(app, ["infer", "--onnx", str(onnx_path), str(_photos(tmp_path / "p"))])
        assert res.exit_code == 2 and "pip install -e '.[export]'" in res.stderr, res.output
