"""`dkp depth DATASET --import DIR`: 8/16-bit PNG and .npy maps matched by names.json or sorted order, validated."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from depth_helpers import FRAME
from PIL import Image
from typer.testing import CliRunner

from dkp_tui.cli import app
from dkp_tui.formats import depth_cache as cache

runner = CliRunner()


def expected_codes(maps: np.ndarray) -> np.ndarray:
    """Per-image min-max (near = larger input = 1), constant -> 0, then the cache's encoding."""
    maps = maps.astype(np.float32)
    lo = maps.min(axis=(1, 2), keepdims=True)
    span = maps.max(axis=(1, 2), keepdims=True) - lo
    d = np.where(span > 0, (maps - lo) / np.where(span > 0, span, 1), 0).astype(np.float32)
    return cache.encode_depth(d)


def write_maps(source: Path, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """train: 16-bit PNGs (one 8-bit, one constant) named after names.json; test: float .npy in sorted order."""
    train = rng.integers(0, 65536, (10, FRAME, FRAME)).astype(np.uint16)
    train[3] = 1234  # constant map
    train[5] = train[5] // 256  # stored as 8-bit below
    for i, m in enumerate(train):
        path = source / "train" / f"clip{i // 4}" / f"{i:04d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(m.astype(np.uint8) if i == 5 else m).save(path)
    test = rng.normal(size=(3, FRAME, FRAME)).astype(np.float32)
    (source / "test").mkdir(parents=True)
    for i, m in enumerate(test):
        np.save(source / "test" / f"{i:03d}.npy", m[..., None] if i == 0 else m)  # H x W x 1 accepted too
    return train, test


def test_import_png_and_npy(tiny_data: Path, tmp_path: Path) -> None:
    source = tmp_path / "maps"
    train, test = write_maps(source, np.random.default_rng(0))
    result = runner.invoke(app, ["depth", str(tiny_data), "--import", str(source), "--shard-size", "4", "--json",
                                 "--quiet"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["tag"] == "imported" and summary["computed"] == 13 and summary["constant_maps"] == 1

    assert np.array_equal(cache.open_depth(tiny_data, "train", "imported")[:], expected_codes(train))
    assert np.array_equal(cache.open_depth(tiny_data, "fit", "imported")[:], expected_codes(train))
    assert np.array_equal(cache.open_depth(tiny_data, "test", "imported")[:], expected_codes(test))
    m = cache.read_depth_manifest(tiny_data, "imported")
    assert m["source"] == "imported" and m["matched_by"] == {"train": "names.json", "test": "sorted order"}
    assert m["splits"]["train"]["constant"] == 1 and m["import"]["polarity"] == "inverse"


def test_import_sensor_depth_is_inverted(tiny_data: Path, tmp_path: Path) -> None:
    source = tmp_path / "maps"
    source.mkdir()
    depth = np.full((3, FRAME, FRAME), 4000.0, np.float32)
    depth[:, 0, 0] = 500.0  # nearest
    depth[:, 1, 1] = 0.0  # no reading: farthest
    for i, m in enumerate(depth):
        np.save(source / f"{i}.npy", m)
    result = runner.invoke(app, ["depth", str(tiny_data), "--import", str(source), "--splits", "test",
                                 "--polarity", "depth", "--tag", "sensor", "--quiet"])
    assert result.exit_code == 0, result.output
    codes = cache.open_depth(tiny_data, "test", "sensor")[:]
    assert (codes[:, 0, 0] == 65535).all() and (codes[:, 1, 1] == 0).all()
    assert (codes[:, 5, 5] == round(65535 * (1 / 4000) / (1 / 500))).all()


def test_import_wrong_size_is_refused_before_anything_is_written(tiny_data: Path, tmp_path: Path) -> None:
    source = tmp_path / "maps"
    source.mkdir()
    for i in range(3):
        np.save(source / f"{i}.npy", np.zeros((FRAME, FRAME + (i == 2)), np.float32))
    result = runner.invoke(app, ["depth", str(tiny_data), "--import", str(source), "--splits", "test"])
    assert result.exit_code == 2 and "2.npy" in result.output and f"{FRAME}x{FRAME}" in result.output
    assert not list(tiny_data.glob("depth/**/*.npy"))


def test_import_count_colour_and_nan_are_refused(tiny_data: Path, tmp_path: Path) -> None:
    source = tmp_path / "maps"
    source.mkdir()
    for i in range(2):
        np.save(source / f"{i}.npy", np.ones((FRAME, FRAME), np.float32))
    result = runner.invoke(app, ["depth", str(tiny_data), "--import", str(source), "--splits", "test"])
    assert result.exit_code == 2 and "found 2 depth maps" in result.output

    bad = np.ones((FRAME, FRAME), np.float32)
    bad[0, 0] = np.nan
    np.save(source / "2.npy", bad)
    result = runner.invoke(app, ["depth", str(tiny_data), "--import", str(source), "--splits", "test"])
    assert result.exit_code == 2 and "NaN" in result.output and "2.npy" in result.output
    assert "imported" not in cache.list_tags(tiny_data)

    (source / "2.npy").unlink()
    Image.fromarray(np.zeros((FRAME, FRAME, 3), np.uint8)).save(source / "2.png")
    result = runner.invoke(app, ["depth", str(tiny_data), "--import", str(source), "--splits", "test"])
    assert result.exit_code == 2 and "greyscale" in result.output

    # the split needs its own folder when several splits are imported
    result = runner.invoke(app, ["depth", str(tiny_data), "--import", str(source), "--splits", "train,test"])
    assert result.exit_code == 2 and "no depth map for 10 of 10 train frames" in result.output
