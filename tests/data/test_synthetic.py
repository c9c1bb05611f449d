"""The built-in synthetic generator: determinism, ground truth that agrees with the pixels, depth that separates the
figure while the clutter lives only in RGB, and the data set written in the shared layout."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from dkp_tui.cli import app
from dkp_tui.data.synthetic import (
    DEFAULT,
    DEPTH_TAG,
    JOINT_NAMES,
    SKELETON,
    SyntheticParams,
    generate_dataset,
    render_sample,
    sample_rng,
)
from dkp_tui.errors import DkpError
from dkp_tui.formats import dataset_dir as layout
from dkp_tui.formats import depth_cache as cache


def _samples(n: int, size: int = 64, background: str = "cluttered", seed: int = 0) -> list:
    return [render_sample(sample_rng(seed, "test", i), size, background) for i in range(n)]


def _affine_fit(values: np.ndarray, where: np.ndarray) -> tuple[np.ndarray, float]:
    """Least-squares plane a + b*y + c*x through values[where]; returns (plane everywhere, max |residual|)."""
    ys, xs = np.nonzero(where)
    design = np.stack([np.ones_like(ys), ys, xs], 1).astype(np.float64)
    coef, *_ = np.linalg.lstsq(design, values[ys, xs].astype(np.float64), rcond=None)
    h, w = values.shape
    yy, xx = np.mgrid[0:h, 0:w]
    plane = coef[0] + coef[1] * yy + coef[2] * xx
    return plane, float(np.abs(values[ys, xs] - plane[ys, xs]).max())


def _far_from_figure(mask: np.ndarray, px: int = 2) -> np.ndarray:
    return cv2.dilate(mask, np.ones((2 * px + 1, 2 * px + 1), np.uint8)) == 0


def test_skeleton_is_the_16_joint_h36m_like_tree() -> None:
    assert len(JOINT_NAMES) == 16 and JOINT_NAMES[0] == "pelvis" and JOINT_NAMES[9] == "head"
    assert len(SKELETON) == 15 and {i for e in SKELETON for i in e} == set(range(16))  # a spanning tree


def test_same_seed_same_bytes_different_seed_differs() -> None:
    a = render_sample(sample_rng(3, "train", 7), 64, "cluttered")
    b = render_sample(sample_rng(3, "train", 7), 64, "cluttered")
    c = render_sample(sample_rng(4, "train", 7), 64, "cluttered")
    for name in ("rgb", "depth", "mask", "joints"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert not np.array_equal(a.rgb, c.rgb) and not np.array_equal(a.joints, c.joints)
    assert not np.array_equal(render_sample(sample_rng(3, "fit", 7), 64, "cluttered").rgb, a.rgb)  # split matters


@pytest.mark.parametrize("size", [64, 128])
def test_shapes_dtypes_and_ranges(size: int) -> None:
    s = render_sample(sample_rng(0, "train", 1), size, "cluttered")
    assert s.rgb.shape == (size, size, 3) and s.rgb.dtype == np.uint8
    assert s.depth.shape == (size, size) and s.depth.dtype == np.float32
    assert s.mask.shape == (size, size) and s.mask.dtype == np.uint8 and set(np.unique(s.mask)) <= {0, 1}
    assert s.joints.shape == (16, 2) and s.joints.dtype == np.float32
    assert s.depth.min() == 0.0 and s.depth.max() == pytest.approx(1.0)  # per-image min-max
    assert (s.joints >= 0).all() and (s.joints <= size - 1).all()


def test_figures_are_large_and_move_around() -> None:
    samples = _samples(40)
    heights = [s.joints[:, 0].max() - s.joints[:, 0].min() for s in samples]
    assert np.median(heights) > 0.4 * 64  # joint extent (head centre to ankle) of a 50-85 % tall figure
    centres = np.array([s.joints.mean(0) for s in samples])
    assert centres[:, 1].std() > 3.0 and centres[:, 0].std() > 1.5


def test_joints_lie_on_the_figure_mask() -> None:
    hits = []
    for s in _samples(40):
        mask = cv2.dilate(s.mask, np.ones((3, 3), np.uint8))
        r = np.clip(np.rint(s.joints).astype(int), 0, 63)
        hits.append(mask[r[:, 0], r[:, 1]])
    assert np.mean(hits) >= 0.9


def test_depth_separates_the_figure_and_the_wall_is_a_smooth_plane() -> None:
    for s in _samples(12):
        wall = _far_from_figure(s.mask)
        plane, residual = _affine_fit(s.depth, wall)
        assert residual < 1e-4  # the wall is a plane in (normalised) inverse depth: no distractor in depth
        on = s.mask > 0
        assert (s.depth[on] > plane[on] + 0.05).all()  # the figure is nearer than the wall behind it, everywhere
        assert s.depth[on].min() > 0.3


def test_clutter_is_in_rgb_only_and_clean_has_none() -> None:
    rough = {}
    for background in ("cluttered", "clean"):
        values = []
        for s in _samples(12, background=background):
            wall = _far_from_figure(s.mask)
            lap = np.abs(cv2.Laplacian(s.rgb.astype(np.float32), cv2.CV_32F)).max(axis=2)
            inner = wall & _far_from_figure(1 - wall.astype(np.uint8), 1)  # Laplacian support inside the wall
            values.append(float(np.percentile(lap[inner], 99)))
            if background == "clean":
                assert s.n_distractors == 0 and s.extras["clutter_area"] == 0.0
            else:
                assert DEFAULT.n_distractors[0] <= s.n_distractors <= DEFAULT.n_distractors[1]
        rough[background] = np.median(values)
    assert rough["clean"] <= 4.0  # a smoothly shaded wall: only uint8 rounding (|Laplacian| <= 4 x 1/2 + slope)
    assert rough["cluttered"] > 10 * rough["clean"]


def test_clean_and_cluttered_share_the_figures() -> None:
    a = render_sample(sample_rng(0, "test", 5), 64, "cluttered")
    b = render_sample(sample_rng(0, "test", 5), 64, "clean")
    assert np.array_equal(a.joints, b.joints) and np.array_equal(a.mask, b.mask)
    assert not np.array_equal(a.rgb, b.rgb)


def test_clutter_covers_an_area_comparable_to_the_figure() -> None:
    samples = _samples(40)
    figure = np.mean([s.extras["figure_area"] for s in samples])
    clutter = np.mean([s.extras["clutter_area"] for s in samples])
    assert 0.5 * figure < clutter < 3.0 * figure


def test_unknown_background_and_params_are_frozen() -> None:
    with pytest.raises(DkpError, match="background"):
        render_sample(sample_rng(0, "train", 0), 64, "jungle")
    with pytest.raises(AttributeError):
        DEFAULT.n_distractors = (0, 0)  # type: ignore[misc]


# -- the data set on disk ------------------------------------------------------------------------------------------

def _tiny(root: Path, **kw: object) -> layout.Manifest:
    args = {"size": 64, "n_train": 12, "n_fit": 6, "n_test": 5, "seed": 0, "progress": False, **kw}
    return generate_dataset(root, **args)  # type: ignore[arg-type]


def test_dataset_written_in_the_layout_with_exact_depth(tmp_path: Path) -> None:
    root = tmp_path / "syn"
    manifest = _tiny(root)
    assert manifest.kind == "synthetic" and manifest.joint_names == list(JOINT_NAMES)
    assert manifest.source["generator_version"] == 1 and manifest.source["background"] == "cluttered"
    read = layout.read_manifest(root)
    assert read.splits["fit"].count == 6 and read.splits["test"].labelled and read.splits["test"].label_scale == 64
    split = layout.open_split(root, "test")
    assert split.images.shape == (5, 64, 64, 3) and split.masks.shape == (5, 64, 64)
    assert split.keypoints.shape == (5, 16, 2) and split.visible.all()
    depth = cache.open_depth(root, "test")
    assert depth.shape == (5, 64, 64) and depth[0].dtype == np.uint16
    again = render_sample(sample_rng(0, "test", 3), 64, "cluttered")  # each index is reproducible on its own
    assert np.array_equal(split.images[3], again.rgb) and np.array_equal(split.keypoints[3], again.joints)
    assert np.array_equal(split.masks[3], again.mask)
    assert np.array_equal(depth[3], cache.encode_depth(again.depth))
    dm = cache.read_depth_manifest(root, DEPTH_TAG)
    assert dm["polarity"] == "near=1" and {k: v["count"] for k, v in dm["splits"].items()} == {
        "train": 12, "fit": 6, "test": 5}
    assert dm["dataset_manifest_hash"] == layout.manifest_hash(root) and dm["constant_maps"] == 0
    assert not list(root.rglob(".*"))  # no temporary files left behind


def test_same_seed_gives_identical_files(tmp_path: Path) -> None:
    _tiny(tmp_path / "a")
    _tiny(tmp_path / "b")
    for rel in ("dataset.json", "train/images.npy", "fit/keypoints.npy", "test/masks.npy",
                f"depth/{DEPTH_TAG}/train/shard-00000.npy"):
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel


def test_worker_processes_write_the_same_bytes(tmp_path: Path) -> None:
    _tiny(tmp_path / "one", workers=1)
    _tiny(tmp_path / "two", workers=2)
    for rel in ("dataset.json", "train/images.npy", "test/keypoints.npy", f"depth/{DEPTH_TAG}/fit/shard-00000.npy"):
        assert (tmp_path / "one" / rel).read_bytes() == (tmp_path / "two" / rel).read_bytes(), rel


def test_idempotent_and_force(tmp_path: Path) -> None:
    root = tmp_path / "syn"
    _tiny(root)
    stamp = (root / "train" / "images.npy").stat().st_mtime_ns
    _tiny(root)  # same request: reused, nothing rewritten
    assert (root / "train" / "images.npy").stat().st_mtime_ns == stamp
    with pytest.raises(DkpError, match="--force"):
        _tiny(root, seed=1)
    with pytest.raises(DkpError, match="--force"):
        _tiny(root, params=SyntheticParams(n_distractors=(1, 2)))
    manifest = _tiny(root, seed=1, n_train=8, force=True)
    assert manifest.source["seed"] == 1 and layout.open_split(root, "train").images.shape[0] == 8
    assert len(cache.open_depth(root, "train")) == 8


def test_cli_smoke(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "cli"
    args = ["prepare", "synthetic", "--out", str(out), "--n-train", "8", "--n-fit", "4", "--n-test", "4"]
    result = runner.invoke(app, [*args, "--json", "--quiet"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["image_size"] == 64 and summary["splits"]["train"]["count"] == 8 and not summary["reused"]
    assert json.loads(runner.invoke(app, [*args, "--json", "--quiet"]).stdout)["reused"]
    bad = runner.invoke(app, [*args, "--seed", "5", "--quiet"])
    assert bad.exit_code == 2 and "--force" in bad.output
    assert runner.invoke(app, [*args, "--background", "jungle"]).exit_code == 2
    helped = runner.invoke(app, ["prepare", "synthetic", "--help"])
    assert helped.exit_code == 0 and "Examples" in helped.output
