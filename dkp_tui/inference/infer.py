"""`dkp infer`: images, folders and videos → keypoints in input-image pixels (JSON or CSV), optional overlays.

Non-square inputs: ``crop="center"`` (default) takes the largest centred square, as `dkp prepare folder --crop
center` does for training data, so the detector sees undistorted people; ``crop="none"`` resizes the whole frame
to a square (distorting it). Either way the keypoints are mapped back exactly to the input frame.

Coordinates: x to the right, y down, in pixels of the input frame, with (0, 0) the centre of the top-left pixel
(OpenCV's convention). The detector's (y, x) ∈ [-1, 1] map to the centres of the border pixels of its square
input (the convention of the edge maps the model learned with), and the square input relates to the frame by the
half-pixel-centre resize mapping ``x_in = left + (x_sq + 0.5) * w / S - 0.5``.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from dkp_tui.atomic import check_output_dir
from dkp_tui.data.images import CROP_MODES, IMAGE_EXTS, VIDEO_EXTS, crop_box, to_storage
from dkp_tui.errors import DkpError
from dkp_tui.inference.smoothing import TemporalFilter
from dkp_tui.model.confidence import joint_confidence

CSV_FIELDS = ("source", "frame", "time_s", "width", "height", "keypoint", "x", "y", "confidence")
OLD_CSV_FIELDS = CSV_FIELDS[:-1]  # before confidence was written (read_csv still reads those files)
FILTER_FIELDS = ("raw_x", "raw_y", "filled")  # with --smooth / --min-confidence: the detection beside x, y
JOINT_FIELD = "joint"  # with --joints: a ninth column; keypoint rows leave it empty, joint rows leave keypoint empty
log = logging.getLogger("dkp.eval")

DECIMALS = 3  # JSON and CSV carry the same rounded numbers, so both parse back to identical keypoints
CONFIDENCE_DECIMALS = 4


@dataclass
class Source:
    path: Path
    kind: str  # image | video
    frames: int | None = 1  # None: a video whose frame count the container does not say
    fps: float | None = None


def collect_sources(inputs: Sequence[str | Path]) -> list[Source]:
    """Expand folders (recursively, sorted) and check every input before any work starts."""
    if not inputs:
        raise DkpError("no inputs: give image files, video files or folders")
    sources: list[Source] = []
    for raw in inputs:
        p = Path(raw)
        if not p.exists():
            raise DkpError(f"input not found: {p}")
        if p.is_dir():
            files = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_EXTS + VIDEO_EXTS)
            if not files:
                raise DkpError(f"{p}: no images ({', '.join(IMAGE_EXTS)}) or videos ({', '.join(VIDEO_EXTS)})")
        elif p.suffix.lower() in IMAGE_EXTS + VIDEO_EXTS:
            files = [p]
        else:
            raise DkpError(f"{p}: unsupported file type {p.suffix!r} (images: {', '.join(IMAGE_EXTS)}; "
                           f"videos: {', '.join(VIDEO_EXTS)})")
        for f in files:
            if f.suffix.lower() in VIDEO_EXTS:
                cap = cv2.VideoCapture(str(f))
                if not cap.isOpened():
                    raise DkpError(f"{f}: cannot open video")
                n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
                fps = float(cap.get(cv2.CAP_PROP_FPS)) or None
                cap.release()
                sources.append(Source(f, "video", n if n > 0 else None, fps))
            else:
                sources.append(Source(f, "image"))
    return sources


def read_image(path: Path) -> np.ndarray:
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except OSError as err:
        raise DkpError(f"{path}: unreadable ({err.strerror})") from None
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise DkpError(f"{path}: not a readable image (corrupt or truncated?)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


@dataclass
class Frame:
    source: int  # index into the source list
    index: int  # frame number within a video (0 for an image)
    image: np.ndarray  # H x W x 3 uint8 RGB


def iter_frames(sources: Sequence[Source], stride: int = 1) -> Iterator[Frame]:
    for i, src in enumerate(sources):
        if src.kind == "image":
            yield Frame(i, 0, read_image(src.path))
            continue
        cap = cv2.VideoCapture(str(src.path))
        n = 0
        try:
            while True:
                ok, bgr = cap.read()
                if not ok:
                    break
                if n % stride == 0:
                    yield Frame(i, n, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
                n += 1
        finally:
            cap.release()
        if n == 0:
            raise DkpError(f"{src.path}: no decodable frames")


@dataclass(frozen=True)
class SquareView:
    """Where the detector's square input came from in the frame: the region (top, left, h, w), resized to S."""

    top: float
    left: float
    h: float
    w: float
    size: int

    def to_frame(self, keypoints: np.ndarray) -> np.ndarray:
        """(..., 2) detector (y, x) in [-1, 1] -> (..., 2) frame pixels as (x, y)."""
        kp = np.asarray(keypoints, dtype=np.float64)
        s = self.size
        ys = (kp[..., 0] + 1.0) * 0.5 * (s - 1)
        xs = (kp[..., 1] + 1.0) * 0.5 * (s - 1)
        x = self.left + (xs + 0.5) * self.w / s - 0.5
        y = self.top + (ys + 0.5) * self.h / s - 0.5
        return np.stack([x, y], axis=-1)

    def from_frame(self, xy: np.ndarray) -> np.ndarray:
        """Inverse of ``to_frame``: frame (x, y) pixels -> detector (y, x) in [-1, 1]."""
        xy = np.asarray(xy, dtype=np.float64)
        s = self.size
        xs = (xy[..., 0] - self.left + 0.5) * s / self.w - 0.5
        ys = (xy[..., 1] - self.top + 0.5) * s / self.h - 0.5
        return np.stack([ys / (s - 1) * 2 - 1, xs / (s - 1) * 2 - 1], axis=-1)


def square_input(image: np.ndarray, size: int, crop: str = "center") -> tuple[np.ndarray, SquareView]:
    """The detector's S x S input for a frame, and the mapping back to the frame. The crop and resize are
    `dkp prepare`'s own (``images.crop_box``, ``images.to_storage``): a model is scored by `dkp eval` on stored
    frames, so inference must feed it the same pixels for the same frame (a resize of its own, OpenCV's area filter,
    differed by ~5 grey levels on shrunk video frames and moved the mean joint error by 0.19 px)."""
    if crop not in CROP_MODES:
        raise DkpError(f"--crop must be one of {', '.join(CROP_MODES)}")
    top, left, h, w = crop_box(*image.shape[:2], crop)
    return to_storage(image, size, crop), SquareView(float(top), float(left), float(h), float(w), size)


# -- the run -----------------------------------------------------------------------------------------------------


@dataclass
class InferResult:
    meta: dict[str, Any]
    frames: list[dict[str, Any]] = field(default_factory=list)

    def keypoints(self) -> np.ndarray:
        """F x K x 2 (x, y) of every frame, in order."""
        return np.array([[[p["x"], p["y"]] for p in f["keypoints"]] for f in self.frames], dtype=np.float64)


class _OverlayWriter:
    """Overlay PNGs for images and one mp4 per video (written under a temporary name, renamed when complete)."""

    def __init__(self, out_dir: Path, edges: list[tuple[int, int, float]], trail: int = 0,
                 names: list[str] | None = None) -> None:
        self.dir = out_dir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.edges = edges
        self.trail = trail  # frames of each point's path drawn behind it (videos)
        self.names = names  # drawn beside the points (named joints)
        self.history: list[np.ndarray] = []
        self.used: set[str] = set()
        self.video: cv2.VideoWriter | None = None
        self.video_paths: tuple[Path, Path] | None = None
        self.video_source = -1
        self.written: list[str] = []

    def _name(self, stem: str, ext: str) -> str:
        name, n = f"{stem}{ext}", 1
        while name in self.used:
            n += 1
            name = f"{stem}-{n}{ext}"
        self.used.add(name)
        return name

    @staticmethod
    def draw(image: np.ndarray, xy: np.ndarray, edges: list[tuple[int, int, float]],
             history: list[np.ndarray] | None = None, names: list[str] | None = None) -> np.ndarray:
        """The frame with its points (NaN: hidden, not drawn), their edges, optionally the points' recent paths
        (``history``, oldest first, ending with ``xy``) and their names."""
        from dkp_tui.viz import draw_keypoints, draw_names, draw_trails

        h, w = image.shape[:2]
        scale = max(1, 256 // max(h, w))  # small frames are upscaled so the overlay stays readable
        if scale > 1:
            image = cv2.resize(image, (w * scale, h * scale), interpolation=cv2.INTER_NEAREST)
        big = (np.asarray(xy) + 0.5) * scale - 0.5
        if history is not None and len(history) > 1:
            image = draw_trails(np.ascontiguousarray(image), (np.asarray(history) + 0.5) * scale - 0.5)
        hh, ww = image.shape[:2]
        kp = np.stack([big[:, 1] / max(hh - 1, 1) * 2 - 1, big[:, 0] / max(ww - 1, 1) * 2 - 1], axis=-1)
        drawn = draw_keypoints(image, kp, edges)
        return draw_names(drawn, big, names) if names else drawn

    def add(self, src: Source, source_index: int, image: np.ndarray, xy: np.ndarray, stride: int) -> None:
        from dkp_tui.viz import save_png

        if source_index != self.video_source:
            self.history = []
        if self.trail and src.kind == "video":
            self.history = [*self.history, np.asarray(xy, dtype=np.float64)][-(self.trail + 1):]
        drawn = self.draw(image, xy, self.edges, self.history if self.trail else None, self.names)
        if src.kind == "image":
            path = self.dir / self._name(src.path.stem, ".png")
            save_png(str(path), drawn)
            self.written.append(str(path))
            return
        if source_index != self.video_source:
            self.close_video()
            final = self.dir / self._name(src.path.stem, ".mp4")
            tmp = final.with_name(f".{final.stem}.partial.mp4")
            fps = (src.fps or 25.0) / stride
            h, w = drawn.shape[:2]
            writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
            if not writer.isOpened():
                raise DkpError(f"cannot write the overlay video {final} (no mp4 encoder in this OpenCV build?)")
            self.video, self.video_paths, self.video_source = writer, (tmp, final), source_index
        assert self.video is not None
        self.video.write(cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR))

    def close_video(self, keep: bool = True) -> None:
        if self.video is not None and self.video_paths is not None:
            self.video.release()
            tmp, final = self.video_paths
            if keep:
                os.replace(tmp, final)
                self.written.append(str(final))
            else:
                tmp.unlink(missing_ok=True)
        self.video, self.video_paths, self.video_source = None, None, -1


@dataclass
class InferenceModel:
    """What inference needs of a detector, whichever runtime runs it (PyTorch, or onnxruntime for an export)."""

    # B x S x S x 3 uint8 -> (B x K x 2 (y, x) in [-1, 1], B x K confidence, dkp_tui.model.confidence)
    detect: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
    image_size: int
    n_keypoints: int
    edge_weights: np.ndarray  # K x K
    role: str | None
    step: int
    backend: str  # torch | onnxruntime


def is_onnx(path: str | Path) -> bool:
    return Path(path).suffix.lower() == ".onnx"


def open_model(run: str | Path, device: str = "auto") -> InferenceModel:
    """A run directory or .safetensors file through PyTorch; a `dkp export`ed .onnx file through onnxruntime
    (that route imports no torch, so a deployment needs only onnxruntime, numpy, OpenCV and Pillow)."""
    if is_onnx(run):
        from dkp_tui.inference.onnx_detector import OnnxDetector

        onnx = OnnxDetector.open(run, device)
        return InferenceModel(onnx.detect, onnx.image_size, onnx.n_keypoints, onnx.edge_weights, onnx.role,
                              onnx.step, "onnxruntime")
    from dkp_tui.devices import pick_device
    from dkp_tui.inference.predict import detect_scored, load_detector, load_edge_weights, uint8_to_input

    dev = pick_device(device)
    detector, cfg, meta = load_detector(run, dev)
    return InferenceModel(lambda frames: detect_scored(detector, uint8_to_input(frames), dev), cfg.model.image_size,
                          cfg.model.n_keypoints, load_edge_weights(run), meta.get("role"), int(meta.get("step", 0)),
                          "torch")


def run_inference(run: str | Path, inputs: Sequence[str | Path], *, batch_size: int = 32, device: str = "auto",
                  crop: str = "center", stride: int = 1, overlay_dir: Path | None = None,
                  edge_threshold: float = 0.5, progress: bool = True,
                  joints_file: str | Path | None = None, temporal: TemporalFilter | None = None,
                  trail: int = 0) -> InferResult:
    """``run``: a run directory, a .safetensors file, or a .onnx file written by `dkp export`; ``joints_file``
    (from `dkp joints fit`) adds each frame's named joints, and the overlays draw the labelled skeleton;
    ``temporal`` filters each video's tracks (``inference.temporal``), and the overlays then show the filtered
    points, drawn in a second pass over the frames once every clip is filtered."""
    from dkp_tui.viz import strong_edges

    if batch_size < 1 or stride < 1:
        raise DkpError("--batch-size and --stride must be >= 1")
    if crop not in CROP_MODES:
        raise DkpError(f"--crop must be one of {', '.join(CROP_MODES)}")
    if overlay_dir is not None:
        check_output_dir(overlay_dir, "--overlay")
    sources = collect_sources(inputs)
    joint_map = None
    if joints_file is not None:
        from dkp_tui.formats.joint_map import load_map

        joint_map = load_map(joints_file)
    model = open_model(run, device)
    if joint_map is not None:
        from dkp_tui.formats.joint_map import check_compatible

        check_compatible(joint_map, model.n_keypoints, model.image_size, str(joints_file))
    if model.role == "teacher":
        log.warning("%s is a depth teacher: it expects depth maps, not photos; use a student run for RGB input", run)
    size = model.image_size
    edges = strong_edges(model.edge_weights, edge_threshold)
    result = InferResult({
        "format": "dkp-keypoints", "version": 1, "run": str(run), "step": model.step, "backend": model.backend,
        "role": model.role, "n_keypoints": model.n_keypoints, "image_size": size, "crop": crop,
        "coordinates": "x right, y down, pixels of the input frame; (0, 0) is the centre of the top-left pixel",
        "edges": [[i, j, round(w, 4)] for i, j, w in edges], "edge_threshold": edge_threshold,
    })
    drawn_edges = edges
    if joint_map is not None:
        result.meta.update({"joints_file": str(joints_file), "joint_names": joint_map.joint_names,
                            "skeleton": [list(e) for e in joint_map.skeleton]})
        drawn_edges = [(a, b, 1.0) for a, b in joint_map.skeleton]
    if temporal is not None and temporal.active:
        result.meta["temporal_filter"] = {"method": temporal.method, "window": temporal.window,
                                          "min_confidence": temporal.min_confidence, "max_gap": temporal.max_gap}
    else:
        temporal = None
    overlays = None if overlay_dir is None else _OverlayWriter(
        Path(overlay_dir), drawn_edges, trail, joint_map.joint_names if joint_map is not None else None)
    streamed = overlays if temporal is None else None  # filtered overlays wait for whole clips
    total = sum(1 if s.kind == "image" else ((s.frames + stride - 1) // stride if s.frames else 0) for s in sources)

    bar = None
    if progress:
        from dkp_tui.progress import new_progress

        bar = new_progress(elapsed=False)
        task = bar.add_task("infer", total=total or None)
        bar.start()

    pending: list[tuple[Frame, SquareView]] = []
    batch: list[np.ndarray] = []

    def flush() -> None:
        if not pending:
            return
        kp, confidence = model.detect(np.stack(batch))
        confidence = np.round(np.asarray(confidence, dtype=np.float64), CONFIDENCE_DECIMALS)
        named = named_confidence = None
        if joint_map is not None:
            named = joint_map.predict(kp) / (size - 1) * 2.0 - 1.0  # (y, x) in [-1, 1]
            named_confidence = np.round(joint_confidence(joint_map.weight, confidence), CONFIDENCE_DECIMALS)
        for n, ((frame, view), k) in enumerate(zip(pending, kp, strict=True)):
            src = sources[frame.source]
            xy = np.round(view.to_frame(k), DECIMALS)
            h, w = frame.image.shape[:2]
            entry: dict[str, Any] = {
                "source": str(src.path), "frame": frame.index,
                "time_s": round(frame.index / src.fps, 4) if src.kind == "video" and src.fps else None,
                "width": w, "height": h,
                "keypoints": [{"id": int(j), "x": float(p[0]), "y": float(p[1]), "confidence": float(c)}
                              for j, (p, c) in enumerate(zip(xy, confidence[n], strict=True))],
            }
            drawn = xy
            if named is not None and named_confidence is not None and joint_map is not None:
                jxy = np.round(view.to_frame(named[n]), DECIMALS)
                entry["joints"] = [{"name": name, "x": float(p[0]), "y": float(p[1]), "confidence": float(c)}
                                   for name, p, c in zip(joint_map.joint_names, jxy, named_confidence[n],
                                                         strict=True)]
                drawn = jxy
            result.frames.append(entry)
            if streamed is not None:
                streamed.add(src, frame.source, frame.image, drawn, stride)
        if bar is not None:
            bar.advance(task, len(pending))
        pending.clear()
        batch.clear()

    try:
        for frame in iter_frames(sources, stride):
            square, view = square_input(frame.image, size, crop)
            pending.append((frame, view))
            batch.append(square)
            if len(batch) >= batch_size:
                flush()
        flush()
        if temporal is not None:
            from dkp_tui.inference import temporal as temporal_tracks

            temporal_tracks.apply(result.frames, temporal)
            if overlays is not None:
                key = "joints" if joint_map is not None else "keypoints"
                for frame, entry in zip(iter_frames(sources, stride), result.frames, strict=True):
                    overlays.add(sources[frame.source], frame.source, frame.image,
                                 temporal_tracks.frame_xy(entry, key), stride)
        if overlays is not None:
            overlays.close_video()
            result.meta["overlays"] = overlays.written
    except BaseException:
        if overlays is not None:
            overlays.close_video(keep=False)
        raise
    finally:
        if bar is not None:
            bar.stop()
    return result


# -- output formats ----------------------------------------------------------------------------------------------


def to_json(result: InferResult) -> str:
    """One JSON document: the metadata one key per line, then one line per frame (greppable, diffable)."""
    head = [f" {json.dumps(k)}: {json.dumps(v)}" for k, v in result.meta.items()]
    frames = ",\n".join(f"  {json.dumps(f)}" for f in result.frames)
    return "{\n" + ",\n".join([*head, f' "frames": [\n{frames}\n ]']) + "\n}\n"


def to_csv(result: InferResult) -> str:
    """Long format: one row per (frame, keypoint), then (with --joints) one per (frame, named joint), told apart
    by which of the ``keypoint`` and ``joint`` columns is filled; with temporal filtering, ``x``, ``y`` are the
    filtered point (empty where hidden) and ``raw_x``, ``raw_y``, ``filled`` follow. The run's metadata is in the
    JSON format only."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    with_joints = any("joints" in f for f in result.frames)
    filtered = any("raw_x" in p for f in result.frames for p in f["keypoints"])
    writer.writerow([*CSV_FIELDS, *(FILTER_FIELDS if filtered else ()), *((JOINT_FIELD,) if with_joints else ())])

    def row(head: list[Any], keypoint: Any, p: dict[str, Any], joint: str) -> list[Any]:
        cells = [*head, keypoint, _number_cell(p["x"]), _number_cell(p["y"]), _number_cell(p.get("confidence"))]
        if filtered:
            cells += [_number_cell(p.get("raw_x")), _number_cell(p.get("raw_y")), int(bool(p.get("filled")))]
        return cells + ([joint] if with_joints else [])

    for f in result.frames:
        head = [f["source"], f["frame"], "" if f["time_s"] is None else f["time_s"], f["width"], f["height"]]
        for p in f["keypoints"]:
            writer.writerow(row(head, p["id"], p, ""))
        for p in f.get("joints", []):
            writer.writerow(row(head, "", p, p["name"]))
    return buf.getvalue()


def _number_cell(value: float | None) -> str:
    return "" if value is None else repr(value)


def _number(text: str | None) -> float | None:
    return float(text) if text else None


def _point(r: dict[str, str], **key: Any) -> dict[str, Any]:
    point = {**key, "x": _number(r["x"]), "y": _number(r["y"])}
    if r.get("confidence"):
        point["confidence"] = float(r["confidence"])
    if "raw_x" in r:
        point.update(raw_x=_number(r["raw_x"]), raw_y=_number(r["raw_y"]), filled=r.get("filled") == "1")
    return point


def read_csv(text: str) -> list[dict[str, Any]]:
    """Parse `to_csv` output back into frames (the inverse, for scripts and tests); files written before the
    confidence column are read too."""
    rows = list(csv.DictReader(io.StringIO(text)))
    if rows:
        columns = list(rows[0].keys())
        known = set(CSV_FIELDS) | set(FILTER_FIELDS) | {JOINT_FIELD}
        if columns[:len(OLD_CSV_FIELDS)] != list(OLD_CSV_FIELDS) or not set(columns) <= known:
            raise DkpError(f"not a dkp keypoint CSV (columns {columns})")
    frames: dict[tuple[str, int], dict[str, Any]] = {}
    for r in rows:
        key = (r["source"], int(r["frame"]))
        f = frames.setdefault(key, {"source": r["source"], "frame": int(r["frame"]),
                                    "time_s": float(r["time_s"]) if r["time_s"] else None,
                                    "width": int(r["width"]), "height": int(r["height"]), "keypoints": []})
        if r.get(JOINT_FIELD):
            f.setdefault("joints", []).append(_point(r, name=r[JOINT_FIELD]))
        else:
            f["keypoints"].append(_point(r, id=int(r["keypoint"])))
    return list(frames.values())
