"""Your own footage, labelled: a synthetic set exported as PNGs of non-square frames with COCO, DeepLabCut and
plain-CSV labels comes back through `dkp prepare folder --labels` with the synthetic labels to 1e-4 px; `dkp eval`
scores a run the same on it as on the synthetic frames with the same fit/test split; `dkp joints fit` + `dkp
infer --joints` predict the test frames' joints with the error `dkp eval` reports (also on frames shrunk to be stored:
infer feeds the detector the stored pixels); the shots curve and the ONNX export carry the same map."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from dkp_testing import random_weights
from labels_testing import export_labelled, write_coco, write_dlc, write_plain
from PIL import Image
from typer.testing import CliRunner

from dkp_tui.cli import app
from dkp_tui.data import labels as lb
from dkp_tui.formats.dataset_dir import (
    GEOMETRY,
    Manifest,
    SplitInfo,
    open_split,
    read_manifest,
    write_manifest,
    write_split,
)

runner = CliRunner()


def _ok(args: list[object]) -> str:
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.fixture(scope="module")
def imported(tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    root = tmp_path_factory.mktemp("labelled")
    ex = export_labelled(tiny_dataset, root / "frames")
    files = {"coco": write_coco(ex, root / "coco.json"), "dlc": write_dlc(ex, root / "CollectedData_me.csv"),
             "csv": write_plain(ex, root / "plain.csv")}
    sets = {}
    for fmt, path in files.items():
        sets[fmt] = root / f"ds-{fmt}"
        _ok(["prepare", "folder", ex.folder, "--labels", path, "--out", sets[fmt], "--size", 64, "-q"])
    return {"root": root, "ex": ex, "sets": sets}


@pytest.fixture(scope="module")
def imported_resized(imported: dict[str, object]) -> dict[str, object]:
    """The same frames at 1.5x (120 x 96 and 96 x 114 PNGs, labels by the half-pixel-centre mapping), stored at 64
    px: every stored frame is cropped *and* shrunk, as video frames usually are."""
    ex, root = imported["ex"], imported["root"]
    folder = root / "frames-x1.5"
    folder.mkdir()
    for name in ex.names:
        with Image.open(ex.folder / name) as image:
            image.resize((image.width * 3 // 2, image.height * 3 // 2), Image.BILINEAR).save(folder / name)
    big = dataclasses.replace(ex, folder=folder, xy=(ex.xy + 0.5) * 1.5 - 0.5)
    ds = root / "ds-x1.5"
    _ok(["prepare", "folder", folder, "--labels", write_plain(big, root / "x1.5.csv"), "--out", ds, "--size", 64,
         "-q"])
    return {"ex": big, "ds": ds}


@pytest.fixture(params=["as-stored", "shrunk"])
def labelled(request: pytest.FixtureRequest) -> tuple[object, Path]:
    """(exported frames, their imported set): frames only cropped to be stored, and frames cropped and shrunk."""
    if request.param == "as-stored":
        imported = request.getfixturevalue("imported")
        return imported["ex"], imported["sets"]["coco"]
    resized = request.getfixturevalue("imported_resized")
    return resized["ex"], resized["ds"]


def _expected(ex, names: list[str], synthetic: Path) -> tuple[np.ndarray, np.ndarray]:
    """The synthetic labels (y, x) and what must be visible, for the stored frames ``names``."""
    splits = {s: open_split(synthetic, s) for s in ("fit", "test")}
    rows = [ex.names.index(n) for n in names]
    yx = np.array([splits[ex.origin[r][0]].keypoints[ex.origin[r][1]] for r in rows])
    vis = ex.present[rows].copy()
    vis[[k for k, r in enumerate(rows) if r == 0], 0] = False  # the label moved into the padding
    return yx, vis


def test_coco_dlc_and_csv_labels_come_back_as_the_synthetic_labels(imported, tiny_dataset: Path) -> None:
    ex, sets = imported["ex"], imported["sets"]
    reference = None
    for fmt, ds in sets.items():
        manifest = read_manifest(ds)
        assert manifest.kind == "folder" and manifest.joint_names == ex.joint_names
        assert [tuple(e) for e in manifest.skeleton] == ([tuple(e) for e in ex.skeleton] if fmt == "coco" else [])
        fit, test, train = (open_split(ds, s) for s in ("fit", "test", "train"))
        assert fit.info.label_scale == 64.0 and len(fit) + len(test) == len(ex.names)
        assert len(test) == round(0.2 * len(ex.names))  # --test-fraction 0.2 by default, by file
        assert not set(test.names) & set(train.names) and set(fit.names) <= set(train.names)
        for arrays in (fit, test):
            yx, vis = _expected(ex, arrays.names, tiny_dataset)
            np.testing.assert_array_equal(arrays.visible, vis)
            np.testing.assert_allclose(arrays.keypoints[vis], yx[vis], atol=1e-4, rtol=0)
            # the centre crop gives the synthetic frames back pixel for pixel
            splits = {s: open_split(tiny_dataset, s) for s in ("fit", "test")}
            for k, name in enumerate(arrays.names):
                split, i = ex.origin[ex.names.index(name)]
                np.testing.assert_array_equal(arrays.images[k], splits[split].images[i])
        report = json.loads((ds / "prepare_report.json").read_text())
        assert report["labels"]["outside_crop"] == 1 and report["labels"]["format"] == fmt
        names = (fit.names, test.names)
        reference = reference or names
        assert names == reference  # the same draw whatever the format


def test_a_resized_import_maps_labels_through_the_same_resize(imported, tiny_dataset: Path) -> None:
    """Frames at twice the size (half-pixel-centre mapping), --crop none on the padded wide frames."""
    ex, root = imported["ex"], imported["root"]
    big = root / "big"
    big.mkdir()
    for name in ex.names:
        im = Image.open(ex.folder / name)
        im.resize((im.width * 2, im.height * 2), Image.BILINEAR).save(big / name)
    xy = (ex.xy + 0.5) * 2 - 0.5
    labels = root / "big.csv"
    rows = ["image,joint,x,y"] + [f"{n},{ex.joint_names[j]},{float(xy[k, j, 0])!r},{float(xy[k, j, 1])!r}"
                                  for k, n in enumerate(ex.names) for j in range(len(ex.joint_names))
                                  if ex.present[k, j]]
    labels.write_text("\n".join(rows) + "\n")
    for crop in ("center", "none"):
        out = root / f"ds-big-{crop}"
        _ok(["prepare", "folder", big, "--labels", labels, "--out", out, "--size", 64, "--crop", crop, "-q"])
        fit = open_split(out, "fit")
        geo = np.load(out / "fit" / GEOMETRY)
        back = lb.to_original(fit.keypoints, geo, 64)
        rows_ = [ex.names.index(n) for n in fit.names]
        np.testing.assert_allclose(back[fit.visible], xy[rows_][fit.visible], atol=1e-4)
        if crop == "center":
            yx, vis = _expected(ex, fit.names, tiny_dataset)
            np.testing.assert_allclose(fit.keypoints[vis], yx[vis], atol=1e-4)
        else:  # nothing is cut off: the label in the padding is kept
            assert fit.visible.sum() == ex.present[rows_].sum()


def test_geometry_round_trips_and_marks_points_outside_the_crop() -> None:
    region = lb.crop_region(80, 64, "center")
    assert region == (0.0, 8.0, 64.0, 64.0)
    xy = np.array([[8.0, 0.0], [71.0, 63.0], [7.0, 5.0], [40.0, 30.0]])
    yx = lb.to_stored(xy, region, 128)  # one frame's J points
    np.testing.assert_allclose(yx[0], [0.5, 0.5])  # pixel (0, 0) of the crop -> the centre of a 2x2 block
    assert lb.inside(yx, 128).tolist() == [True, True, False, True]
    np.testing.assert_allclose(lb.to_original(yx[None], np.array([region]), 128)[0], xy, atol=1e-12)
    wide = lb.crop_region(100, 50, "none")
    np.testing.assert_allclose(lb.to_stored(np.array([[99.0, 49.0]]), wide, 10), [[9.4, 9.45]])


def _same_split_synthetic(tiny_dataset: Path, ds: Path, ex, out: Path) -> Path:
    """The synthetic frames and labels with the imported set's fit/test assignment and visibility."""
    src = {s: open_split(tiny_dataset, s) for s in ("fit", "test")}
    splits = {"train": SplitInfo(count=len(src["fit"]))}
    write_split(out, "train", np.asarray(src["fit"].images))
    for split in ("fit", "test"):
        a = open_split(ds, split)
        rows = [ex.origin[ex.names.index(n)] for n in a.names]
        images = np.array([src[s].images[i] for s, i in rows])
        yx = np.array([src[s].keypoints[i] for s, i in rows])
        write_split(out, split, images, yx, np.asarray(a.visible))
        splits[split] = SplitInfo(count=len(rows), labelled=True, label_scale=64.0)
    manifest = read_manifest(tiny_dataset)
    write_manifest(out, Manifest("synthetic", 64, splits, manifest.joint_names, manifest.skeleton))
    return out


def test_eval_scores_a_run_the_same_on_the_imported_and_the_synthetic_frames(imported, tiny_dataset: Path,
                                                                              tmp_path: Path) -> None:
    ex, ds = imported["ex"], imported["sets"]["coco"]
    weights = random_weights(tmp_path / "model.safetensors", tiny_dataset)
    same = _same_split_synthetic(tiny_dataset, ds, ex, tmp_path / "same-split")
    a = json.loads(_ok(["eval", weights, "--data", ds, "--json", "-q"]))
    b = json.loads(_ok(["eval", weights, "--data", same, "--set", 'eval.protocol="folder"', "--json", "-q"]))
    assert a["protocol"] == b["protocol"] == "folder"
    assert a["value"] == pytest.approx(b["value"], abs=1e-6)
    assert a["extras"]["pck"] == pytest.approx(b["extras"]["pck"])
    # no resize here: original pixels are stored pixels, and x100 of the 64-px frame
    assert a["extras"]["px_error"] == pytest.approx(a["value"] * 64 / 100, rel=1e-9)
    assert a["mean_pose"]["value"] == pytest.approx(b["mean_pose"]["value"], abs=1e-6)
    assert set(a["skills"]) == {"l2x100", "px_error", "pck"}
    assert a["extras"]["missing_test_joints"] + a["extras"]["missing_fit_joints"] == 2


def test_joints_fit_then_infer_predicts_the_test_joints_with_the_eval_error(labelled, tiny_dataset: Path,
                                                                             tmp_path: Path) -> None:
    """Also on frames that must be shrunk to be stored: `dkp infer` crops and resizes an original file exactly as
    `dkp prepare` stored it (an OpenCV area resize of its own differed by a few grey levels and moved the error)."""
    from dkp_tui.inference.infer import read_csv, read_image, square_input

    ex, ds = labelled
    weights = random_weights(tmp_path / "model.safetensors", tiny_dataset)
    record = json.loads(_ok(["eval", weights, "--data", ds, "--json", "-q"]))
    out = tmp_path / "joints.safetensors"
    summary = json.loads(_ok(["joints", "fit", weights, "--data", ds, "--out", out, "--json"]))
    assert summary["n_fit"] == record["n_fit"] and summary["cv"]["folds"] == 5 and summary["cv"]["by"] == "frame"
    assert summary["test"]["px"] == pytest.approx(record["extras"]["px_error"])
    test = open_split(ds, "test")
    files = [ex.folder / n for n in test.names]
    for k, path in enumerate(files):  # the detector's input is the stored frame, pixel for pixel
        np.testing.assert_array_equal(square_input(read_image(path), 64)[0], test.images[k])
    result = json.loads(_ok(["infer", weights, *files, "--joints", out, "--overlay", tmp_path / "ov", "-q"]))
    assert result["joint_names"] == ex.joint_names and len(result["overlays"]) == len(files)
    pred = np.array([[[j["x"], j["y"]] for j in f["joints"]] for f in result["frames"]])
    truth = ex.xy[[ex.names.index(n) for n in test.names]]
    err = np.hypot(*(pred - truth).transpose(2, 0, 1))[np.asarray(test.visible)]
    assert err.mean() == pytest.approx(record["extras"]["px_error"], abs=2e-3)  # infer rounds to 1e-3 px
    csv_text = _ok(["infer", weights, files[0], "--joints", out, "--format", "csv", "-q"])
    frame = read_csv(csv_text)[0]
    assert [j["name"] for j in frame["joints"]] == ex.joint_names and len(frame["keypoints"]) == 8


def test_shots_curve_table_json_and_figure(imported, tiny_dataset: Path, tmp_path: Path) -> None:
    ds = imported["sets"]["coco"]
    run = tmp_path / "run"
    run.mkdir()
    weights = random_weights(run / "model.safetensors", tiny_dataset)
    result = json.loads(_ok(["eval", weights, "--data", ds, "--shots", "3,10,all", "--draws", "4", "--json"]))
    rows = {r["shots"]: r for r in result["rows"]}
    assert list(rows) == [3, 10, "all"] and rows[3]["draws"] == 4 and rows["all"]["draws"] == 1
    assert rows["all"]["n"] == result["n_fit"] and rows["all"]["model"]["l2x100"]["std"] == 0.0
    assert rows["all"]["model"]["l2x100"]["mean"] == pytest.approx(result["record"]["value"])
    assert rows["all"]["mean_pose"]["l2x100"]["mean"] == pytest.approx(result["record"]["mean_pose"]["value"])
    assert rows[3]["model"]["l2x100"]["std"] > 0
    assert Path(result["figure"]) == run / "shots.png" and cv2.imread(str(run / "shots.png")) is not None
    again = json.loads(_ok(["eval", weights, "--data", ds, "--shots", "3,10,all", "--draws", "4", "--json"]))
    assert again["rows"] == result["rows"]  # seeded


def test_video_frames_split_by_clip_and_test_clips_stay_out_of_train(tmp_path: Path) -> None:
    src = tmp_path / "videos"
    src.mkdir()
    rows = ["image,joint,x,y"]
    for c in range(3):
        writer = cv2.VideoWriter(str(src / f"clip{c}.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (48, 32))
        for k in range(6):
            writer.write(np.full((32, 48, 3), 40 * c + 5 * k, np.uint8))
        writer.release()
        rows += [f"clip{c}.avi#{k},nose,{20 + k},{10 + c}" for k in (0, 2, 5)]
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "ds"
    _ok(["prepare", "folder", src, "--labels", tmp_path / "labels.csv", "--out", out, "--size", 32,
         "--test-fraction", "0.34", "--fps", "0", "-q"])
    fit, test, train = (open_split(out, s) for s in ("fit", "test", "train"))
    clips = {n.split("#")[0] for n in test.names}
    assert len(clips) == 1 and len(test) == 3 and len(fit) == 6
    assert not any(n.split("#")[0] in clips for n in train.names) and len(train) == 12
    k = test.names.index(f"{next(iter(clips))}#2")
    # x: 22 - 8 (the centre crop's left) -> stored; y: 10 + clip index
    assert test.keypoints[k, 0, 1] == pytest.approx(22 - 8) and test.visible.all()
    bad = tmp_path / "bad.csv"
    bad.write_text("image,joint,x,y\nclip0.avi#6,nose,1,1\n")
    result = runner.invoke(app, ["prepare", "folder", str(src), "--labels", str(bad), "--out", str(tmp_path / "x"),
                                 "-q"])
    assert result.exit_code == 2 and "clip0.avi has 6 frames" in result.output
    assert not (tmp_path / "x").exists()


def test_joints_fit_cross_validates_video_frames_by_clip(tiny_dataset: Path, tmp_path: Path) -> None:
    src = tmp_path / "videos"
    src.mkdir()
    rows = ["image,joint,x,y"]
    rng = np.random.default_rng(0)
    for c in range(5):
        writer = cv2.VideoWriter(str(src / f"clip{c}.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (80, 64))
        for _ in range(6):
            writer.write(rng.integers(0, 255, (64, 80, 3), dtype=np.uint8))
        writer.release()
        rows += [f"clip{c}.avi#{k},{name},{20 + k + 3 * c},{10 + 2 * j}" for k in (0, 2, 4)
                 for j, name in enumerate(("a", "b"))]
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    ds = tmp_path / "ds"
    _ok(["prepare", "folder", src, "--labels", tmp_path / "labels.csv", "--out", ds, "--size", 64, "--fps", "0",
         "-q"])
    weights = random_weights(tmp_path / "model.safetensors", tiny_dataset)
    out = tmp_path / "joints.safetensors"
    summary = json.loads(_ok(["joints", "fit", weights, "--data", ds, "--out", out, "--json"]))
    fit_clips = {n.split("#")[0] for n in open_split(ds, "fit").names}
    assert summary["cv"]["by"] == "clip" and summary["cv"]["groups"] == len(fit_clips) >= 2
    assert summary["cv"]["folds"] == min(5, len(fit_clips))
    from dkp_tui.formats.joint_map import load_map

    assert json.loads(load_map(out).meta["cv"])["by"] == "clip"
    result = runner.invoke(app, [str(a) for a in ["joints", "fit", weights, "--data", ds, "--out", out]])
    text = result.output
    assert result.exit_code == 0 and f"cross-validated by clip ({len(fit_clips)} clips)" in " ".join(text.split())
    assert summary["ridge"] == 0.001 and list(summary["ridge_cv"]) == ["0.001"]
    auto = json.loads(_ok(["joints", "fit", weights, "--data", ds, "--out", out, "--ridge", "auto", "--json"]))
    assert list(auto["ridge_cv"]) == ["0.001", "0.01", "0.1", "1", "10"]
    assert auto["cv"]["px"] == min(auto["ridge_cv"].values()) == auto["ridge_cv"][f"{auto['ridge']:g}"]
    assert json.loads(load_map(out).meta["ridge"]) == auto["ridge"]
    if auto["ridge"] == 0.001:
        assert auto["test"] == summary["test"]
    else:  # the folder protocol with the chosen map
        assert auto["test"]["px"] != summary["test"]["px"]
    bad = runner.invoke(app, [str(a) for a in ["joints", "fit", weights, "--data", ds, "--out", out, "--ridge", "0"]])
    assert bad.exit_code != 0 and "--ridge" in bad.output


def test_export_bakes_the_joints_into_the_onnx_model(imported, tiny_dataset: Path, tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime", reason="the export extra is not installed")
    ex, ds = imported["ex"], imported["sets"]["coco"]
    weights = random_weights(tmp_path / "model.safetensors", tiny_dataset)
    joints = tmp_path / "joints.safetensors"
    _ok(["joints", "fit", weights, "--data", ds, "--out", joints, "--json"])
    summary = json.loads(_ok(["export", weights, "--joints", joints, "--out", tmp_path / "m.onnx", "--json"]))
    assert summary["max_diff_joints_px"] <= 1e-3
    import onnxruntime as ort

    from dkp_tui.formats.joint_map import load_map
    from dkp_tui.inference.onnx_detector import pixels_to_unit, uint8_to_array

    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    frames = np.asarray(open_split(ds, "test").images[:3])
    kp, got = session.run(["keypoints", "joints"], {"image": uint8_to_array(frames)})
    want = load_map(joints).predict(pixels_to_unit(kp, 64))[..., ::-1]
    assert got.shape == (3, len(ex.joint_names), 2)
    np.testing.assert_allclose(got, want, atol=1e-3)
    via_onnx = json.loads(_ok(["infer", "--onnx", tmp_path / "m.onnx", ex.folder / "img0.png", "--joints", joints,
                               "-q"]))
    via_torch = json.loads(_ok(["infer", weights, ex.folder / "img0.png", "--joints", joints, "-q"]))
    np.testing.assert_allclose([[j["x"], j["y"]] for j in via_onnx["frames"][0]["joints"]],
                               [[j["x"], j["y"]] for j in via_torch["frames"][0]["joints"]], atol=2e-3)


def test_runs_compare_on_a_labelled_folder_set(imported, tiny_dataset: Path, tmp_path: Path) -> None:
    """`dkp eval --runs N --compare --data DS` on your own labels: the teacher scored on the set's depth, the students
    on RGB, every row with the folder protocol and its mean pose (a fake trainer writes random weights)."""
    from dkp_tui.experiments import repeats
    from dkp_tui.formats.depth_cache import open_depth
    from dkp_tui.formats.run_dir import RunInfo, write_run_config, write_run_info

    ex, root = imported["ex"], imported["root"]
    ds = root / "ds-coco"
    depth = tmp_path / "depth"
    depth.mkdir()
    maps = {s: open_depth(tiny_dataset, s, "exact") for s in ("fit", "test")}
    for name, (split, i) in zip(ex.names, ex.origin, strict=True):
        assert cv2.imwrite(str(depth / name), np.asarray(maps[split][i:i + 1])[0])
    _ok(["depth", ds, "--import", depth, "--quiet"])

    def trainer(cfg, run: Path, *, role: str, teacher_run, resume: bool, quiet: bool) -> RunInfo:
        run.mkdir(parents=True, exist_ok=True)
        random_weights(run / "model.safetensors", tiny_dataset, role=role, seed=len(str(run)))
        write_run_config(run, cfg)
        info = RunInfo(role=role, status="finished", step=cfg.train.iterations, total_steps=cfg.train.iterations,
                       seed=cfg.train.seed, teacher_run=str(teacher_run) if teacher_run else None)
        write_run_info(run, info)
        return info

    summary = repeats.run_repeats("synthetic-cpu", 1, True, tmp_path / "runs", [f'data.dataset="{ds}"', "eval.pck=0.2"],
                                  progress=False, train_fn=trainer)
    rows = {r["variant"]: r for r in summary["rows"]}
    assert set(rows) == {"teacher", "student-only", "distilled"} and rows["teacher"]["input"] == "depth"
    assert summary["protocol"] == "folder" and summary["mean_pose"]["value"] > 0
    records = [json.loads((tmp_path / "runs" / "seed0" / v / "eval.json").read_text())[-1]
               for v in ("teacher", "student", "student-only")]
    assert all(r["options"]["pck"] == 0.2 and r["protocol"] == "folder" for r in records)
