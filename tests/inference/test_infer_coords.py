"""`dkp infer` geometry: non-square frames, centre crop vs squash, and the exact way back to input pixels."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from dkp_tui.errors import DkpError
from dkp_tui.inference.infer import (
    InferResult,
    SquareView,
    collect_sources,
    read_csv,
    square_input,
    to_csv,
)


@pytest.mark.parametrize("crop", ["center", "none"])
@pytest.mark.parametrize("shape", [(120, 200), (200, 120), (64, 64)])
def test_square_view_round_trip(crop, shape):
    image = np.zeros((*shape, 3), np.uint8)
    _, view = square_input(image, 64, crop)
    rng = np.random.default_rng(0)
    kp = rng.uniform(-1, 1, size=(10, 2))
    np.testing.assert_allclose(view.from_frame(view.to_frame(kp)), kp, atol=1e-12)


def test_border_keypoints_map_to_border_pixel_centres_of_the_crop():
    view = SquareView(top=0.0, left=40.0, h=120.0, w=120.0, size=120)  # no resize: 1:1
    xy = view.to_frame(np.array([[-1.0, -1.0], [1.0, 1.0]]))
    np.testing.assert_allclose(xy, [[40.0, 0.0], [159.0, 119.0]])


def _centroid(img: np.ndarray) -> tuple[float, float]:
    g = img[..., 0].astype(np.float64)
    ys, xs = np.mgrid[: g.shape[0], : g.shape[1]]
    return float((xs * g).sum() / g.sum()), float((ys * g).sum() / g.sum())


@pytest.mark.parametrize("crop", ["center", "none"])
def test_a_blob_found_in_the_detector_input_maps_back_to_where_it_is(crop):
    """A bright block's centroid located in the resized square comes back to its input-pixel centroid."""
    image = np.zeros((120, 200, 3), np.uint8)
    image[50:56, 90:96] = 255  # centroid x = 92.5, y = 52.5
    square, view = square_input(image, 64, crop)
    assert square.shape == (64, 64, 3)
    xs, ys = _centroid(square)
    kp = np.array([ys / 63 * 2 - 1, xs / 63 * 2 - 1])  # detector convention: +-1 = border pixel centres
    x, y = view.to_frame(kp)
    assert x == pytest.approx(92.5, abs=0.35) and y == pytest.approx(52.5, abs=0.35)


def test_centre_crop_keeps_the_middle_square():
    image = np.zeros((100, 300, 3), np.uint8)
    image[:, 100:200] = 200
    square, view = square_input(image, 32, "center")
    assert (view.left, view.top, view.w, view.h) == (100.0, 0.0, 100.0, 100.0)
    assert square.min() == 200


def test_collect_sources_checks_inputs(tmp_path: Path):
    with pytest.raises(DkpError, match="not found"):
        collect_sources([tmp_path / "missing.png"])
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(DkpError, match="unsupported"):
        collect_sources([tmp_path / "notes.txt"])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DkpError, match="no images"):
        collect_sources([empty])
    sub = tmp_path / "imgs" / "a"
    sub.mkdir(parents=True)
    for name in ("b.png", "a.jpg"):
        cv2.imwrite(str(sub / name), np.zeros((8, 8, 3), np.uint8))
    found = collect_sources([tmp_path / "imgs"])
    assert [s.path.name for s in found] == ["a.jpg", "b.png"] and all(s.kind == "image" for s in found)


def test_csv_round_trip():
    frames = [{"source": "a,b.png", "frame": 0, "time_s": None, "width": 10, "height": 8,
               "keypoints": [{"id": 0, "x": 1.25, "y": 2.5}, {"id": 1, "x": 0.001, "y": 7.0}]},
              {"source": "v.mp4", "frame": 3, "time_s": 0.12, "width": 10, "height": 8,
               "keypoints": [{"id": 0, "x": 9.0, "y": 0.0}, {"id": 1, "x": 4.5, "y": 3.333}]}]
    assert read_csv(to_csv(InferResult({}, frames))) == frames


def test_csv_carries_confidence_and_reads_files_written_before_it():
    frames = [{"source": "v.mp4", "frame": 3, "time_s": 0.12, "width": 10, "height": 8,
               "keypoints": [{"id": 0, "x": 9.0, "y": 0.0, "confidence": 0.8731},
                             {"id": 1, "x": 4.5, "y": 3.333, "confidence": 0.05}],
               "joints": [{"name": "head", "x": 5.0, "y": 1.0, "confidence": 0.4}]}]
    text = to_csv(InferResult({}, frames))
    assert text.splitlines()[0].endswith("x,y,confidence,joint")
    assert read_csv(text) == frames
    old = "source,frame,time_s,width,height,keypoint,x,y\nv.mp4,3,0.12,10,8,0,9.0,0.0\n"
    assert read_csv(old)[0]["keypoints"] == [{"id": 0, "x": 9.0, "y": 0.0}]
