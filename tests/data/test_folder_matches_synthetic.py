"""Your own data path trains exactly like the built-in one: the same frames and depth maps brought in as files
(`dkp prepare folder` + `dkp depth --import` of 16-bit PNGs) store the same pixels and depth codes as
`dkp prepare synthetic`, and a teacher and a distilled student trained on either set follow the same loss curve
and end with the same weights."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from dkp_tui.cli import app
from dkp_tui.config import load_config
from dkp_tui.formats.dataset_dir import open_split, read_manifest
from dkp_tui.formats.depth_cache import open_depth, read_depth_manifest
from dkp_tui.formats.run_dir import WEIGHTS, load_weights
from dkp_tui.train import loop

runner = CliRunner()
N_TRAIN = 48


def _ok(args: list[str]) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output


def _export(synthetic: Path, frames: Path, depth: Path) -> tuple[np.ndarray, np.ndarray]:
    """The train split as files a user could have: RGB PNGs and 16-bit depth PNGs (written with OpenCV, as most
    tools do), named ``frame<i>.png`` without zero padding so that the order has to come from natural sorting."""
    images = np.asarray(open_split(synthetic, "train").images)
    codes = np.asarray(open_depth(synthetic, "train", "exact")[0:N_TRAIN])
    frames.mkdir()
    depth.mkdir()
    for i in range(N_TRAIN):
        Image.fromarray(images[i]).save(frames / f"frame{i}.png")
        assert cv2.imwrite(str(depth / f"frame{i}.png"), codes[i])
    return images, codes


def _curve(run: Path) -> list[float]:
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]
    return [line["loss"] for line in lines if line["kind"] == "step"]


def _train_pair(dataset: Path, runs: Path, tiny_overrides) -> dict[str, Path]:
    teacher, student = runs / "teacher", runs / "student"
    loop.train(load_config(None, tiny_overrides(dataset, iterations=4, train__threads=1)), teacher, role="teacher",
               quiet=True)
    loop.train(load_config(None, tiny_overrides(dataset, iterations=4, train__threads=1, kd__gamma=0.5)), student,
               role="student", teacher_run=teacher, quiet=True)
    return {"teacher": teacher, "student": student}


def test_folder_and_imported_depth_train_like_the_synthetic_set(tmp_path: Path, tiny_overrides) -> None:
    synthetic, folder = tmp_path / "synthetic", tmp_path / "folder"
    _ok(["prepare", "synthetic", "--out", str(synthetic), "--size", "64", "--n-train", str(N_TRAIN), "--n-fit", "4",
         "--n-test", "4", "--quiet"])
    images, codes = _export(synthetic, tmp_path / "frames", tmp_path / "depth-png")
    assert codes.reshape(N_TRAIN, -1).min(axis=1).max() == 0 and codes.reshape(N_TRAIN, -1).max(axis=1).min() == 65535
    _ok(["prepare", "folder", str(tmp_path / "frames"), "--out", str(folder), "--size", "64", "--quiet"])
    _ok(["depth", str(folder), "--import", str(tmp_path / "depth-png"), "--quiet"])

    # the stored arrays, exactly: pixels in frame order, and the depth codes (each map already spans 0..65535,
    # so the importer's per-image min-max leaves every code as it is)
    stored = open_split(folder, "train")
    assert read_manifest(folder).image_size == 64 and stored.names == [f"frame{i}.png" for i in range(N_TRAIN)]
    np.testing.assert_array_equal(np.asarray(stored.images), images)
    imported = np.asarray(open_depth(folder, "train", "imported")[0:N_TRAIN])
    assert imported.dtype == np.uint16
    np.testing.assert_array_equal(imported, codes)
    assert read_depth_manifest(folder, "imported")["matched_by"]["train"] == "names.json"

    # the same training on either set: the depth teacher (depth path) and a distilled student (RGB + the teacher)
    threads = torch.get_num_threads()
    try:
        a = _train_pair(synthetic, tmp_path / "runs-synthetic", tiny_overrides)
        b = _train_pair(folder, tmp_path / "runs-folder", tiny_overrides)
    finally:
        torch.set_num_threads(threads)
    for role in ("teacher", "student"):
        curve_a, curve_b = _curve(a[role]), _curve(b[role])
        assert len(curve_a) == 4 and curve_a == pytest.approx(curve_b, rel=1e-6, abs=0), role  # bitwise in practice
        wa, wb = load_weights(a[role] / WEIGHTS)[0], load_weights(b[role] / WEIGHTS)[0]
        assert wa.keys() == wb.keys()
        for name in wa:
            torch.testing.assert_close(wa[name], wb[name], rtol=1e-6, atol=1e-7, msg=f"{role} {name}")
