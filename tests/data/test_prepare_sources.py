"""`dkp prepare taichi | h36m | deepfashion | folder` on tiny fake trees written by the tests themselves."""

from __future__ import annotations

import csv
import json
import pickle
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner

from dkp_tui.cli import app
from dkp_tui.data.deepfashion import plan_deepfashion
from dkp_tui.data.folder import plan_folder
from dkp_tui.data.h36m import plan_h36m
from dkp_tui.data.prepare_common import prepare
from dkp_tui.data.taichi import plan_taichi
from dkp_tui.errors import DkpError
from dkp_tui.formats.dataset_dir import REPORT, open_split, read_manifest

runner = CliRunner()
RNG = np.random.default_rng(0)


def _image(path: Path, w: int, h: int, value: int | None = None, quality: int = 95) -> np.ndarray:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = (np.full((h, w, 3), value, np.uint8) if value is not None
           else RNG.integers(0, 256, size=(h, w, 3), dtype=np.uint8))
    Image.fromarray(arr).save(path, quality=quality) if path.suffix == ".jpg" else Image.fromarray(arr).save(path)
    return arr


def _video(path: Path, n: int, fps: float, w: int = 48, h: int = 32) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    assert writer.isOpened()
    for k in range(n):
        writer.write(np.full((h, w, 3), (k * 10) % 256, np.uint8))
    writer.release()


# -- Taichi ------------------------------------------------------------------------------------------------------


def _taichi_values(n: int) -> list[np.ndarray]:
    values = [RNG.integers(0, 256, size=(18, 2)).astype(np.float64) for _ in range(n)]
    values[0][0] = (10.0, 200.0)  # (x, y) in the source
    values[0][5] = (-1.0, -1.0)
    return values


def make_taichi(root: Path, landmark_dir: str = "landmark") -> dict[str, list[np.ndarray]]:
    for k in range(3):
        _image(root / "train" / "clipA" / f"{k:03d}.png", 40, 40)
    _video(root / "train" / "clipB.mp4", n=6, fps=10, w=32, h=32)
    gts = {}
    for which, n in (("train", 3), ("test", 2)):
        names = [f"{i:05d}.png" for i in range(n)]
        for name in names:
            _image(root / "eval_images" / "taichi-256" / which / name, 256, 256)
        values = _taichi_values(n)
        df = pd.DataFrame({"file_name": pd.Series(names, dtype=object), "frame_number": [0] * n,
                           "value": pd.Series(values, dtype=object)})
        (root / landmark_dir).mkdir(parents=True, exist_ok=True)
        (root / landmark_dir / f"taichi_{which}_gt.pkl").write_bytes(pickle.dumps(df, protocol=4))
        gts[which] = values
    return gts


def test_taichi_counts_labels_and_yx_order(tmp_path: Path) -> None:
    root, out = tmp_path / "taichi", tmp_path / "out"
    gts = make_taichi(root, landmark_dir="landmarks")  # the source repo's folder name is accepted too
    result = prepare(plan_taichi(root), out, 32)
    m = read_manifest(out)
    assert m.kind == "taichi" and m.image_size == 32 and len(m.joint_names) == 18
    assert {k: v.count for k, v in m.splits.items()} == {"train": 3 + 6, "fit": 3, "test": 2}
    assert m.source["n_clips"] == 2 and m.source["clips"] == ["clipA", "clipB.mp4"]
    train = open_split(out, "train")
    assert train.images.shape == (9, 32, 32, 3) and train.keypoints is None
    assert train.names[:3] == ["clipA/000.png", "clipA/001.png", "clipA/002.png"]
    assert train.names[3:] == [f"clipB.mp4#{k}" for k in range(6)]
    fit = open_split(out, "fit")
    assert fit.info.label_scale == 256 and fit.keypoints.shape == (3, 18, 2)
    assert tuple(fit.keypoints[0, 0]) == (200.0, 10.0)  # source (x=10, y=200) stored as (y, x)
    np.testing.assert_array_equal(fit.keypoints[..., ::-1], np.stack(gts["train"]))
    assert not fit.visible[0, 5] and tuple(fit.keypoints[0, 5]) == (-1.0, -1.0)
    assert fit.visible.sum() == 3 * 18 - 1
    # the protocol's resize: PIL bilinear 256 -> stored size
    src = Image.open(root / "eval_images" / "taichi-256" / "train" / "00000.png").convert("RGB")
    np.testing.assert_array_equal(fit.images[0], np.asarray(src.resize((32, 32), Image.BILINEAR)))
    json_copy = json.loads((out / "labels" / "taichi_test_gt.json").read_text())
    assert len(json_copy["frames"]) == 2
    assert not result.reused


def test_taichi_reuse_force_and_changed_input(tmp_path: Path) -> None:
    root, out = tmp_path / "taichi", tmp_path / "out"
    make_taichi(root)
    prepare(plan_taichi(root), out, 32)
    before = (out / "dataset.json").stat().st_mtime_ns
    again = prepare(plan_taichi(root), out, 32)
    assert again.reused and (out / "dataset.json").stat().st_mtime_ns == before
    assert not prepare(plan_taichi(root), out, 32, force=True).reused
    _image(root / "train" / "clipA" / "003.png", 40, 40)  # the input changed: never silently replaced
    with pytest.raises(DkpError, match="different input"):
        prepare(plan_taichi(root), out, 32)
    assert prepare(plan_taichi(root), out, 32, force=True).manifest.splits["train"].count == 10


def test_taichi_clips_from(tmp_path: Path) -> None:
    root = tmp_path / "taichi"
    make_taichi(root)
    chosen = tmp_path / "clips.txt"
    chosen.write_text("# the paper's subset\nclipB\n")
    m = prepare(plan_taichi(root, clips_from=chosen), tmp_path / "out", 32).manifest
    assert m.splits["train"].count == 6 and m.source["clips"] == ["clipB.mp4"]
    chosen.write_text("clipA\nclipZ\n")
    with pytest.raises(DkpError, match="clipZ"):
        prepare(plan_taichi(root, clips_from=chosen), tmp_path / "out2", 32)
    assert not (tmp_path / "out2").exists()


def test_taichi_payload_pickle_through_the_cli(tmp_path: Path) -> None:
    root, out = tmp_path / "taichi", tmp_path / "out"
    make_taichi(root)
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            import os

            return os.system, (f"touch {marker}",)

    (root / "landmark" / "taichi_test_gt.pkl").write_bytes(pickle.dumps(Payload(), protocol=4))
    res = runner.invoke(app, ["prepare", "taichi", str(root), "--out", str(out), "--size", "32", "-q"])
    assert res.exit_code == 2
    assert "refusing to load" in res.output and len(res.output.strip().splitlines()) == 1
    assert not marker.exists() and not out.exists()


# -- Human3.6M ----------------------------------------------------------------------------------------------------


def make_h36m(root: Path) -> dict[str, np.ndarray]:
    import scipy.io

    labels = {}
    folders = {s: ["Directions 1.54138969"] for s in ("S1", "S5", "S6", "S7", "S8", "S9", "S11")}
    folders["S1"] += ["WalkingDog 1.55011271", "Eating.58860488"]  # prefix-matched / not one of the six actions
    for subject, names in folders.items():
        for folder in names:
            n = 1 if folder.startswith("WalkingDog") else 2
            for k in range(1, n + 1):
                _image(root / subject / "WithBackground" / folder / f"{k}.jpg", 32, 32, value=200)
                kp = RNG.random((32, 2)).astype(np.float32)
                (root / subject / "Landmarks" / folder).mkdir(parents=True, exist_ok=True)
                scipy.io.savemat(root / subject / "Landmarks" / folder / f"{k}.mat", {"keypoints_2d": kp})
                mask = np.zeros((32, 32), bool)
                mask[:, :16] = True  # the figure is the left half
                (root / subject / "BackgroudMask" / folder).mkdir(parents=True, exist_ok=True)
                Image.fromarray(mask).save(root / subject / "BackgroudMask" / folder / f"{k}.png")
                labels[f"{subject}/{folder}/{k}.jpg"] = kp
    return labels


def test_h36m_splits_prefix_match_and_labels(tmp_path: Path) -> None:
    root, out = tmp_path / "h36m", tmp_path / "out"
    labels = make_h36m(root)
    plan = plan_h36m(root)
    assert any("Walking: 1 folders (WalkingDog 1)" in n for n in plan.notes)
    m = prepare(plan, out, 32).manifest
    assert {k: v.count for k, v in m.splits.items()} == {"train": 6 * 2 + 1, "fit": 13, "test": 2}
    assert m.splits["fit"].same_as == "train" and not (out / "fit").exists()
    assert m.splits["train"].label_scale == 1.0 and len(m.joint_names) == 32
    fit, test = open_split(out, "fit", m), open_split(out, "test", m)
    assert fit.names == open_split(out, "train", m).names and "S1/Eating.58860488/1.jpg" not in fit.names
    for split in (fit, test):  # keypoints_2d is already (y, x): stored unchanged
        for name, kp in zip(split.names, split.keypoints, strict=True):
            np.testing.assert_array_equal(kp, labels[name])
    assert test.names == ["S11/Directions 1.54138969/1.jpg", "S11/Directions 1.54138969/2.jpg"]


def test_h36m_without_background_and_bad_landmarks(tmp_path: Path) -> None:
    root, out = tmp_path / "h36m", tmp_path / "out"
    make_h36m(root)
    m = prepare(plan_h36m(root, without_background=True), out, 32).manifest
    test = open_split(out, "test", m)
    assert m.splits["test"].has_masks and test.masks.shape == (2, 32, 32)
    assert (test.masks[:, :, :16] == 1).all() and (test.masks[:, :, 16:] == 0).all()
    assert abs(int(test.images[0, 10, 4, 0]) - 200) <= 3 and (test.images[0, :, 20:] == 128).all()
    (root / "S7" / "Landmarks" / "Directions 1.54138969" / "2.mat").unlink()
    with pytest.raises(DkpError, match=r"2\.mat: missing landmark file"):
        prepare(plan_h36m(root), tmp_path / "out2", 32)


def test_h36m_missing_scipy_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "S1" / "WithBackground").mkdir(parents=True)
    monkeypatch.setitem(__import__("sys").modules, "scipy.io", None)
    with pytest.raises(DkpError, match=r"needs scipy.*dkp-tui\[h36m\]"):
        plan_h36m(tmp_path)


# -- DeepFashion --------------------------------------------------------------------------------------------------


def make_deepfashion(root: Path, image_dir: str = "img") -> dict[str, np.ndarray]:
    kps = {}
    for split, n in (("train", 3), ("test", 2)):
        rows, entries = [], []
        for i in range(n):
            name = f"WOMEN/Dresses/id_{split}{i}/0{i}_1_front.jpg"
            _image(root / image_dir / name, 256, 256)
            kp = RNG.integers(0, 256, size=(17, 2)).astype(np.float64)
            kp[0] = (10, 200)  # (x, y)
            kps[name] = kp
            rows.append([i, name])
            entries.append({"image_path": f"img/{name}", "keypoints": kp.tolist(), "train": split == "train"})
        with open(root / f"data_{split}.csv", "w", newline="") as f:
            csv.writer(f).writerows([["id", "filename"], *rows])
        (root / f"data_{split}.json").write_text(json.dumps(entries))
    return kps


def test_deepfashion_labels_and_yx_order(tmp_path: Path) -> None:
    root, out = tmp_path / "df", tmp_path / "out"
    kps = make_deepfashion(root, image_dir="images")  # the split's README name works as well as img/
    m = prepare(plan_deepfashion(root), out, 64).manifest
    assert {k: v.count for k, v in m.splits.items()} == {"train": 3, "fit": 3, "test": 2}
    assert m.splits["fit"].same_as == "train" and m.splits["test"].label_scale == 256
    assert m.joint_names[0] == "nose" and len(m.joint_names) == 17
    test = open_split(out, "test", m)
    assert test.images.shape == (2, 64, 64, 3)
    assert tuple(test.keypoints[0, 0]) == (200.0, 10.0)
    for name, kp in zip(test.names, test.keypoints, strict=True):
        np.testing.assert_array_equal(kp[:, ::-1], kps[name])


def test_deepfashion_refuses_csv_json_disagreement(tmp_path: Path) -> None:
    root = tmp_path / "df"
    make_deepfashion(root)
    entries = json.loads((root / "data_test.json").read_text())
    (root / "data_test.json").write_text(json.dumps(entries[::-1]))
    with pytest.raises(DkpError, match="does not match"):
        plan_deepfashion(root)


# -- folder -------------------------------------------------------------------------------------------------------


def _striped(path: Path) -> None:
    """90 x 30: red | green | blue thirds, so the centre crop is all green."""
    arr = np.zeros((30, 90, 3), np.uint8)
    arr[:, :30, 0] = arr[:, 30:60, 1] = arr[:, 60:, 2] = 255
    Image.fromarray(arr).save(path)


def test_folder_photos_and_video_via_the_cli(tmp_path: Path) -> None:
    src, out = tmp_path / "footage", tmp_path / "out"
    src.mkdir()
    _striped(src / "a_stripes.png")
    _image(src / "b_photo.jpg", 60, 40)
    _image(src / "sub" / "c_photo.jpg", 40, 60)
    _image(src / ".hidden" / "skip.jpg", 40, 40)
    _video(src / "clip.mp4", n=20, fps=10)  # 2 s at 10 fps, sampled at 5 fps: 10 frames
    res = runner.invoke(app, ["prepare", "folder", str(src), "--out", str(out), "--size", "32", "--fps", "5",
                              "--json", "-q"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["manifest"]["splits"]["train"]["count"] == 3 + 10 and not summary["reused"]
    train = open_split(out, "train")
    assert train.names[:3] == ["a_stripes.png", "b_photo.jpg", "clip.mp4#0"]
    assert train.names[3:13] == [f"clip.mp4#{k}" for k in range(2, 20, 2)] + ["sub/c_photo.jpg"]
    assert (train.images[0, :, :, 1] == 255).all() and (train.images[0, :, :, [0, 2]] == 0).all()  # centre crop
    assert abs(int(train.images[3, 16, 16, 0]) - 20) <= 3  # video frame 2 has value 20
    res = runner.invoke(app, ["prepare", "folder", str(src), "--out", str(out), "--size", "32", "--json", "-q"])
    assert json.loads(res.stdout)["reused"]


def test_folder_crop_none_keeps_the_whole_frame(tmp_path: Path) -> None:
    _striped(tmp_path / "s.png")
    prepare(plan_folder(tmp_path / "s.png", crop="none"), tmp_path / "out", 30)
    img = open_split(tmp_path / "out", "train").images[0]
    assert img[15, 2, 0] == 255 and img[15, 15, 1] == 255 and img[15, 27, 2] == 255


def test_folder_bad_files_fail_in_one_line_then_skip_bad_reports(tmp_path: Path) -> None:
    src, out = tmp_path / "photos", tmp_path / "out"
    for k in range(3):
        _image(src / f"ok{k}.jpg", 40, 40)
    data = (src / "ok0.jpg").read_bytes()
    (src / "bad1.jpg").write_bytes(data[: len(data) // 2])  # truncated copy
    (src / "bad2.png").write_bytes(b"not a png at all")
    res = runner.invoke(app, ["prepare", "folder", str(src), "--out", str(out), "--size", "32", "-q"])
    assert res.exit_code == 2
    line = res.output.strip()
    assert "\n" not in line and "bad1.jpg" in line and "truncated JPEG" in line and "1 more bad file" in line
    assert not out.exists()
    res = runner.invoke(app, ["prepare", "folder", str(src), "--out", str(out), "--size", "32", "-q", "--skip-bad"])
    assert res.exit_code == 0, res.output
    report = json.loads((out / REPORT).read_text())
    assert sorted(Path(p["path"]).name for p in report["skipped"]) == ["bad1.jpg", "bad2.png"]
    assert read_manifest(out).splits["train"].count == 3


def test_folder_corruption_found_only_by_decoding_is_reported_too(tmp_path: Path) -> None:
    src = tmp_path / "photos"
    _image(src / "ok.png", 40, 40)
    good = (src / "ok.png").read_bytes()
    # keep the header and the IEND trailer, damage the pixel data: the quick check passes, the decode fails
    (src / "broken.png").write_bytes(good[:60] + bytes(len(good) - 72) + good[-12:])
    with pytest.raises(DkpError, match="broken.png: cannot decode"):
        prepare(plan_folder(src), tmp_path / "out", 32)
    assert not (tmp_path / "out" / "dataset.json").exists()
    assert not list((tmp_path / "out").rglob("*.npy"))
    result = prepare(plan_folder(src), tmp_path / "out", 32, skip_bad=True)
    assert result.manifest.splits["train"].count == 1 and open_split(tmp_path / "out", "train").names == ["ok.png"]


def test_folder_refuses_a_foreign_output_directory(tmp_path: Path) -> None:
    _image(tmp_path / "in" / "a.png", 40, 40)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "thesis.tex").write_text("precious")
    with pytest.raises(DkpError, match="not a dkp data set"):
        prepare(plan_folder(tmp_path / "in"), tmp_path / "out", 32)


def test_deepfashion_wrong_joint_count_is_skippable(tmp_path: Path) -> None:
    root = tmp_path / "df"
    make_deepfashion(root)
    entries = json.loads((root / "data_train.json").read_text())
    entries[1]["keypoints"] = entries[1]["keypoints"][:16]
    (root / "data_train.json").write_text(json.dumps(entries))
    with pytest.raises(DkpError, match=r"data_train.json#1: keypoints of .* are \(16, 2\), expected 17x2"):
        prepare(plan_deepfashion(root), tmp_path / "out", 32)
    m = prepare(plan_deepfashion(root), tmp_path / "out", 32, skip_bad=True).manifest
    assert m.splits["train"].count == 2 and m.splits["fit"].count == 2 and m.source["skipped"] == 1
    assert open_split(tmp_path / "out", "fit", m).keypoints.shape == (2, 17, 2)


def test_folder_test_fraction_holds_out_whole_files(tmp_path: Path) -> None:
    src = tmp_path / "in"
    for k in range(4):
        _image(src / f"p{k}.png", 20, 20)
    _video(src / "v.mp4", n=10, fps=10)
    m = prepare(plan_folder(src, fps=None, test_fraction=0.4, seed=3), tmp_path / "out", 16).manifest
    train, test = open_split(tmp_path / "out", "train", m), open_split(tmp_path / "out", "test", m)
    assert len(train) + len(test) == 4 + 10 and len(m.source["test_files"]) == 2
    stems = {n.split("#")[0] for n in train.names}
    assert stems.isdisjoint({n.split("#")[0] for n in test.names})
