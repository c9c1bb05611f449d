"""The other synthetic families (`room`, `stage`): reproducible, exact ground truth, clutter only in the RGB, what
each family varies actually varies, and `dkp prepare synthetic --family` writes and records them."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from dkp_tui.cli import app
from dkp_tui.data.synthetic import FAMILIES, render_family, render_sample, sample_rng
from dkp_tui.formats import dataset_dir as layout

OTHER = [f for f in FAMILIES if f != "figures"]


def _render(family: str, i: int, background: str = "clean", seed: int = 0, size: int = 64, **variant):
    return render_family(family, sample_rng(seed, "test", i, family), size, background, variant=variant or None)


@pytest.mark.parametrize("family", OTHER)
def test_same_seed_same_bytes_and_families_differ(family: str) -> None:
    a, b, c = _render(family, 3), _render(family, 3), _render(family, 3, seed=1)
    for name in ("rgb", "depth", "mask", "joints"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert not np.array_equal(a.rgb, c.rgb)
    default = render_sample(sample_rng(0, "test", 3), 64, "clean")
    assert not np.array_equal(a.joints, default.joints)  # a family has its own random stream


@pytest.mark.parametrize("family", OTHER)
@pytest.mark.parametrize("size", [64, 128])
def test_ground_truth_agrees_with_the_pixels(family: str, size: int) -> None:
    for i in range(12):
        s = _render(family, i, "cluttered", size=size)
        assert s.rgb.shape == (size, size, 3) and s.rgb.dtype == np.uint8 and s.joints.shape == (16, 2)
        assert (s.joints >= 0).all() and (s.joints <= size - 1).all()
        assert s.depth.min() == 0.0 and s.depth.max() == pytest.approx(1.0)
        # joints lie on the figure (a pixel of slack for anti-aliased thin limbs)
        grown = cv2.dilate(s.mask, np.ones((3, 3), np.uint8))
        yx = np.round(s.joints).astype(int)
        assert grown[yx[:, 0], yx[:, 1]].mean() > 0.9
        # the nearest point of the scene is on the figure, and the figure is nearer than what is far from it
        assert s.mask.reshape(-1)[int(np.argmax(s.depth))] == 1
        far = cv2.dilate(s.mask, np.ones((5, 5), np.uint8)) == 0
        assert np.median(s.depth[s.mask == 1]) > np.median(s.depth[far])


@pytest.mark.parametrize("family", OTHER)
def test_clutter_is_paint_the_depth_and_figure_stay(family: str) -> None:
    for i in range(6):
        clean, clutter = _render(family, i, "clean"), _render(family, i, "cluttered")
        assert np.array_equal(clean.joints, clutter.joints) and np.array_equal(clean.mask, clutter.mask)
        assert np.array_equal(clean.depth, clutter.depth)  # clutter never enters the depth map
        off = clean.mask == 0
        changed = np.abs(clean.rgb[off].astype(int) - clutter.rgb[off].astype(int)).max(1) > 8
        assert changed.mean() > 0.01  # props cover part of the background
        assert clutter.n_distractors > 0 and clean.n_distractors == 0


def test_room_scenes_are_textured_and_vary_in_scale() -> None:
    def wall_energy(s) -> float:  # high-frequency energy of the background, away from the figure
        grey = s.rgb.astype(np.float32).mean(2)
        lap = np.abs(cv2.Laplacian(grey, cv2.CV_32F))
        return float(lap[cv2.dilate(s.mask, np.ones((5, 5), np.uint8)) == 0].mean())

    full = [_render("room", i) for i in range(30)]
    flat = [_render("room", i, cloth_texture_probs=(1, 0, 0, 0, 0), wall_texture_probs=(1, 0, 0, 0, 0),
                    floor_texture_probs=(1, 0, 0, 0, 0)) for i in range(30)]
    assert np.mean([wall_energy(s) for s in full]) > 2.0 * np.mean([wall_energy(s) for s in flat])
    heights = np.array([np.ptp(s.joints[:, 0]) for s in full])
    assert heights.max() > 2.0 * heights.min()  # from a third of the frame to most of it


def test_stage_figures_are_outlined_and_smaller() -> None:
    stage = [_render("stage", i) for i in range(30)]
    default = [render_sample(sample_rng(0, "test", i), 64, "clean") for i in range(30)]
    assert np.mean([s.mask.mean() for s in stage]) < np.mean([s.mask.mean() for s in default])
    # the outline: the figure's rim is darker than its inside
    rims, insides = [], []
    for s in stage:
        inner = cv2.erode(s.mask, np.ones((3, 3), np.uint8))
        grey = s.rgb.astype(np.float32).mean(2)
        rims.append(grey[(s.mask == 1) & (inner == 0)].mean())
        insides.append(grey[inner == 1].mean())
    assert np.mean(rims) < np.mean(insides)


@pytest.mark.parametrize("family", OTHER)
def test_prepare_family_writes_and_records_it(tmp_path, family: str) -> None:
    out = tmp_path / family
    args = ["prepare", "synthetic", "--family", family, "--background", "clean", "--n-train", "8", "--n-fit", "4",
            "--n-test", "4", "--out", str(out), "--json", "--quiet"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["family"] == family and summary["family_version"] == 1
    manifest = layout.read_manifest(out)
    assert manifest.source["family"] == family and manifest.source["background"] == "clean"
    images = np.load(out / "test" / "images.npy")
    again = _render(family, 2)
    assert np.array_equal(images[2], again.rgb)
    rerun = CliRunner().invoke(app, args)  # the same request again reuses the set
    assert rerun.exit_code == 0 and json.loads(rerun.stdout)["reused"] is True
    other = CliRunner().invoke(app, [*args[:3], "figures", *args[4:]])  # another family in the same folder
    assert other.exit_code == 2 and "different data set" in other.output


def test_unknown_family_is_one_line_exit_2(tmp_path) -> None:
    result = CliRunner().invoke(app, ["prepare", "synthetic", "--family", "jungle", "--out", str(tmp_path / "x")])
    assert result.exit_code == 2 and "--family 'jungle'" in result.output
    assert not (tmp_path / "x").exists()
