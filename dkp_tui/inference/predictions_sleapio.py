"""`dkp infer`'s predictions written through sleap-io, so that SLEAP, NWB readers and DeepLabCut's tools open them.

The same frames as the JSON: each source becomes a sleap-io ``Video`` (a video file by its path, the images of a
run as one image sequence in input order), each frame a ``LabeledFrame`` at its frame index with one
``PredictedInstance`` whose point scores are the keypoints' confidences and whose score is their mean. Without
``--joints`` the skeleton is the K keypoints (``kp0`` ...) with the learned edges the JSON lists; with ``--joints``
the points are the named joints, with the joints file's names and skeleton. Filtered runs (``--smooth``) write the
filtered points; a hidden point is missing (NaN). Coordinates are the JSON's, (x, y) pixels of the frame with (0, 0)
the centre of the top-left pixel, which is SLEAP's convention too.

Two limits are sleap-io 0.9.5's: its DeepLabCut writer leaves the ``likelihood`` columns empty (it reads points
without their scores) and names frames ``labeled-data/<video>/img<frame>.png`` as DeepLabCut's labelled data does;
its NWB writer fails when frames are skipped, so NWB needs ``--stride 1``. Both are refused or said here rather
than worked around.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from dkp_tui.errors import DkpError
from dkp_tui.extras import require

# --format name -> (sleap-io writer, its keyword arguments, file suffix)
FORMATS: dict[str, tuple[str, dict[str, Any], str]] = {
    "slp": ("save_slp", {}, ".slp"),
    "nwb": ("save_nwb", {}, ".nwb"),
    "dlc": ("save_csv", {"format": "dlc", "scorer": "dkp"}, ".csv"),
    "analysis-h5": ("save_analysis_h5", {}, ".h5"),
    "labelstudio": ("save_labelstudio", {}, ".json"),
}
VIDEO_ONLY = ("nwb", "analysis-h5", "dlc")  # these writers take video files, not image sequences
EVERY_FRAME = ("nwb",)  # sleap-io 0.9.5's NWB writer indexes frames as if none were skipped (--stride 1 only)


def _points(result_frames: list[dict[str, Any]], key: str) -> tuple[np.ndarray, np.ndarray]:
    """(F, P, 2) (x, y) with NaN for hidden points, (F, P) confidence (1 where the output has none)."""
    from dkp_tui.inference.temporal import frame_xy

    xy = np.array([frame_xy(f, key) for f in result_frames], dtype=np.float64)
    conf = np.array([[p.get("confidence", 1.0) for p in f[key]] for f in result_frames], dtype=np.float64)
    return xy, conf


def to_labels(meta: dict[str, Any], frames: list[dict[str, Any]]) -> Any:
    """The predictions as sleap-io ``Labels`` (see the module docstring)."""
    sio = require("sleap_io", extra="labels")
    if not frames:
        raise DkpError("no frames to write")
    joints = "joint_names" in meta and all("joints" in f for f in frames)
    if joints:
        names = list(meta["joint_names"])
        edges = [(names[a], names[b]) for a, b in meta.get("skeleton", [])]
    else:
        names = [f"kp{k}" for k in range(int(meta["n_keypoints"]))]
        edges = [(names[i], names[j]) for i, j, _ in meta.get("edges", [])]
    skeleton = sio.Skeleton(nodes=names, edges=edges, name="dkp")
    xy, conf = _points(frames, "joints" if joints else "keypoints")
    images = list(dict.fromkeys(f["source"] for f in frames if not _is_video(f["source"])))
    sequence = sio.Video.from_filename(images) if images else None
    videos: dict[str, Any] = {}
    labelled = []
    for n, f in enumerate(frames):
        if sequence is not None and f["source"] in images:
            video, index = sequence, images.index(f["source"])
        else:
            if f["source"] not in videos:
                videos[f["source"]] = sio.Video.from_filename(f["source"])
            video, index = videos[f["source"]], int(f["frame"])
        instance = sio.PredictedInstance.from_numpy(xy[n], skeleton=skeleton, point_scores=conf[n],
                                                    score=float(np.mean(conf[n])))
        labelled.append(sio.LabeledFrame(video=video, frame_idx=index, instances=[instance]))
    all_videos = ([sequence] if sequence is not None else []) + list(videos.values())
    return sio.Labels(labeled_frames=labelled, videos=all_videos, skeletons=[skeleton])


def _by_source(frames: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for f in frames:
        out.setdefault(f["source"], []).append(f)
    return out


def _is_video(source: str) -> bool:
    from dkp_tui.data.images import is_video

    return is_video(Path(source))


def check_format(fmt: str, out: Path | None) -> None:
    """Before any work: a known format, and a file to write to (these formats are files, never stdout)."""
    if fmt not in FORMATS:
        raise DkpError(f"--format {fmt!r}: choose json, csv, {', '.join(FORMATS)}")
    if out is None:
        raise DkpError(f"--format {fmt} writes a file: give --out FILE{FORMATS[fmt][2]}")
    require("sleap_io", extra="labels")


def write(meta: dict[str, Any], frames: list[dict[str, Any]], out: Path, fmt: str) -> None:
    """Write the predictions to ``out`` (a temporary name renamed into place when complete)."""
    from dkp_tui.atomic import atomic_path

    check_format(fmt, out)
    writer, kwargs, suffix = FORMATS[fmt]
    if fmt in VIDEO_ONLY and any(not _is_video(f["source"]) for f in frames):
        raise DkpError(f"--format {fmt} holds predictions on video files; these inputs include images (use slp)")
    if fmt in EVERY_FRAME and any(f["frame"] != k for ix in _by_source(frames).values() for k, f in enumerate(ix)):
        raise DkpError(f"--format {fmt} needs every frame of each video (--stride 1): sleap-io's writer fails on "
                       "skipped frames")
    sio = require("sleap_io", extra="labels")
    labels = to_labels(meta, frames)
    with atomic_path(out, suffix=suffix) as tmp:
        tmp.unlink()  # the writers create their own file (NWB refuses to overwrite one)
        try:
            getattr(sio, writer)(labels, str(tmp), **kwargs)
        except (DkpError, OSError):
            raise
        except Exception as err:  # noqa: BLE001 - a writer's failure is one line, and nothing is left behind
            first = str(err).splitlines()[0] if str(err) else ""
            raise DkpError(f"sleap-io could not write {fmt}: {type(err).__name__}: {first}") from None
