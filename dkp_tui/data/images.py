"""Decoding, checking and resizing shared by every `dkp prepare` source.

Still images are decoded with PIL because PIL *notices* a truncated file (OpenCV silently fills the missing rows
with grey and returns success); video is decoded with OpenCV. Every resize uses PIL's bilinear filter, the one
the evaluation protocols use (Taichi: 256 -> 128 with ``Image.BILINEAR``), so a stored eval frame is the frame
the reference code feeds its detector. `dkp infer` squares its frames with ``crop_box`` and ``to_storage`` too, so a
model sees at inference the pixels it was trained and scored on (this module imports no torch: ``infer --onnx``
uses it).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")  # in the order messages list them
VIDEO_EXTS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")
CROP_MODES = ("center", "none")
MASK_FILL = 128  # background grey where a mask removes the figure's surroundings (the reference's 0 after
# normalising to [-1, 1] is 127.5)

_PNG_END = b"IEND\xaeB`\x82"
_JPEG_END = b"\xff\xd9"
_TAIL = 4096
_ORIENTATION = 0x0112  # EXIF tag


class BadInput(Exception):
    """One unusable input file; the message is the reason (collected into the report, never shown alone)."""


def natural_key(text: str) -> list[object]:
    """Sort key that puts ``frame2`` before ``frame10`` (frame files are rarely zero-padded consistently)."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", text)]


def is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTS


def is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_EXTS


def quick_check(path: str | Path) -> tuple[int, int]:
    """A cheap check that runs over every file before anything is written: the header parses and a PNG/JPEG
    still has its end marker (the usual damage is an interrupted copy). Returns (width, height).

    A file damaged in the middle passes here and is caught by the full decode; both end in the same report.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise BadInput("missing file") from None
    except OSError as err:
        raise BadInput(f"unreadable ({err.strerror})") from None
    if size == 0:
        raise BadInput("empty file")
    try:
        with Image.open(path) as im:
            fmt, (width, height) = im.format, im.size
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise BadInput(f"not a readable image ({_short(err)})") from None
    try:
        with open(path, "rb") as f:
            f.seek(max(0, size - _TAIL))
            tail = f.read()
    except OSError as err:
        raise BadInput(f"unreadable ({err.strerror})") from None
    if fmt == "PNG" and _PNG_END not in tail:
        raise BadInput("truncated PNG (no IEND chunk)")
    if fmt == "JPEG" and _JPEG_END not in tail:
        raise BadInput("truncated JPEG (no end-of-image marker)")
    return width, height


def load_rgb(path: str | Path) -> np.ndarray:
    """Fully decode an image to RGB uint8 H x W x 3 (EXIF orientation applied, alpha dropped)."""
    try:
        with Image.open(path) as im:
            im.load()
            if im.format in ("JPEG", "TIFF", "WEBP", "MPO") and im.getexif().get(_ORIENTATION, 1) != 1:
                im = ImageOps.exif_transpose(im)  # phone photos store the rotation in EXIF
            if im.mode != "RGB":
                im = im.convert("RGB")
            return np.array(im, dtype=np.uint8)
    except FileNotFoundError:
        raise BadInput("missing file") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise BadInput(f"cannot decode ({_short(err)})") from None


def load_mask(path: str | Path) -> np.ndarray:
    """A figure mask as float32 H x W in [0, 1]: 1-bit PNGs, 0/1 and 0/255 grey all read the same."""
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode == "1":
                return np.asarray(im, dtype=np.float32)
            arr = np.asarray(im.convert("L"), dtype=np.float32)
    except FileNotFoundError:
        raise BadInput("missing mask") from None
    except (OSError, SyntaxError, ValueError) as err:
        raise BadInput(f"cannot decode mask ({_short(err)})") from None
    return arr / 255.0 if arr.max(initial=0.0) > 1.0 else arr


def composite(image: np.ndarray, mask01: np.ndarray, fill: int = MASK_FILL) -> np.ndarray:
    """Keep the figure, replace the rest by ``fill`` (uint8 in, uint8 out)."""
    if mask01.shape != image.shape[:2]:
        raise BadInput(f"mask is {mask01.shape[1]}x{mask01.shape[0]}, image {image.shape[1]}x{image.shape[0]}")
    m = mask01[..., None]
    return np.clip(np.rint(image * m + fill * (1.0 - m)), 0, 255).astype(np.uint8)


def crop_box(height: int, width: int, crop: str = "center") -> tuple[int, int, int, int]:
    """(top, left, h, w) of the part of a frame that is stored: the largest centred square (a person is usually in
    the middle of a frame; odd margins leave the extra pixel at the bottom/right) or the whole frame. One place for
    it, because the pixels (here), the labels (``labels.crop_region``) and `dkp infer`'s mapping back must agree."""
    if crop == "center":
        s = min(height, width)
        return (height - s) // 2, (width - s) // 2, s, s
    if crop == "none":
        return 0, 0, height, width
    raise ValueError(f"crop must be one of {CROP_MODES}, got {crop!r}")


def cropped(image: np.ndarray, crop: str = "center") -> np.ndarray:
    """The stored part of a frame or mask (``crop_box``), before the resize."""
    top, left, h, w = crop_box(*image.shape[:2], crop)
    return image[top:top + h, left:left + w]


def resize_square(image: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize to size x size (PIL's filter, antialiased when shrinking)."""
    h, w = image.shape[:2]
    if (h, w) == (size, size):
        return np.ascontiguousarray(image)
    out = Image.fromarray(image).resize((size, size), Image.BILINEAR)
    return np.asarray(out, dtype=np.uint8)


def resize_mask(mask01: np.ndarray, size: int) -> np.ndarray:
    """A [0, 1] mask resized like the frame and stored as the layout's uint8 0/1 (1 = figure, coverage >= 0.5,
    as the synthetic set stores it)."""
    h, w = mask01.shape
    m = mask01 if (h, w) == (size, size) else np.asarray(
        Image.fromarray(mask01.astype(np.float32)).resize((size, size), Image.BILINEAR))
    return (m >= 0.5).astype(np.uint8)


def to_storage(image: np.ndarray, size: int, crop: str = "center") -> np.ndarray:
    """A decoded frame as stored: ``center`` crops the centred square first, ``none`` resizes the whole frame
    (the aspect ratio changes; nothing is cut off and no padding is invented). `dkp infer` calls this too, so the
    detector gets the stored pixels of the same frame."""
    return resize_square(cropped(image, crop), size)


# -- video ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VideoInfo:
    frames: int
    fps: float
    width: int
    height: int


def _cv2() -> Any:
    """OpenCV with FFmpeg's own log lines silenced (a bad file is reported once, by us; OPENCV_FFMPEG_LOGLEVEL
    set by the user wins)."""
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    import cv2

    return cv2


def video_info(path: str | Path) -> VideoInfo:
    """Frame count, rate and size; the first frame is decoded to prove the codec works."""
    cv2 = _cv2()
    path = Path(path)
    if not path.is_file():
        raise BadInput("missing file")
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise BadInput("not a readable video (OpenCV cannot open it)")
        ok, frame = cap.read()
        if not ok or frame is None:
            raise BadInput("not a readable video (no decodable frame)")
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        fps = float(cap.get(cv2.CAP_PROP_FPS))
        if n <= 0:  # some containers do not record it: count by walking the stream
            n = 1
            while cap.grab():
                n += 1
        h, w = frame.shape[:2]
    finally:
        cap.release()
    if not math.isfinite(fps) or fps <= 0:
        fps = 0.0
    return VideoInfo(frames=n, fps=fps, width=w, height=h)


def sample_indices(n_frames: int, src_fps: float, fps: float | None) -> list[int]:
    """Frame indices that sample a clip at ``fps`` frames per second (None, or a rate at or above the clip's:
    every frame). An unknown source rate (0) keeps every frame."""
    if fps is None or src_fps <= 0 or fps >= src_fps:
        return list(range(n_frames))
    step = src_fps / fps
    out: list[int] = []
    k = 0
    while True:
        i = int(math.floor(k * step + 1e-9))
        if i >= n_frames:
            return out
        out.append(i)
        k += 1


def read_video_frames(path: str | Path, indices: Sequence[int]) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (index, RGB frame) for the wanted indices, in order, decoding the stream once front to back.

    Frames past the real end of a clip whose header over-counts are simply not yielded; the caller reports them.
    """
    cv2 = _cv2()
    wanted = sorted(set(indices))
    if not wanted:
        return
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise BadInput("not a readable video (OpenCV cannot open it)")
        pos = 0
        for target in wanted:
            while pos < target:
                if not cap.grab():
                    return
                pos += 1
            ok, frame = cap.read()
            if not ok or frame is None:
                return
            pos += 1
            yield target, cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
    finally:
        cap.release()


def _short(err: BaseException) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= 120 else text[:117] + "..."


def oriented_size(path: str | Path) -> tuple[int, int]:
    """(width, height) of an image as ``load_rgb`` returns it (EXIF rotation applied): the frame labels refer to."""
    try:
        with Image.open(path) as im:
            w, h = im.size
            if im.format in ("JPEG", "TIFF", "WEBP", "MPO") and im.getexif().get(_ORIENTATION, 1) in (5, 6, 7, 8):
                return h, w
            return w, h
    except FileNotFoundError:
        raise BadInput("missing file") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise BadInput(f"not a readable image ({_short(err)})") from None
