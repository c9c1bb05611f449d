"""Temporal filtering of `dkp infer`'s output: each video's frames, in time order, through ``smoothing``.

The result's frames are dicts (the JSON's own form); here each video clip's keypoints (and named joints) become
(T, P, 2) tracks with their confidences, go through ``smoothing.filter_track``, and come back with the raw
detection kept beside the filtered one: ``x``, ``y`` filtered (``null`` where a point was hidden below
``--min-confidence`` and not bridged), ``raw_x``, ``raw_y`` as detected, ``filled`` true where a gap was
interpolated. Images are single frames and stay as they are.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dkp_tui.inference.smoothing import TemporalFilter, filter_track

DEFAULT_FPS = 25.0  # a video whose container does not say (One-Euro's speeds need a frame rate)


def _clips(frames: list[dict[str, Any]]) -> dict[str, list[int]]:
    """Source -> indices of its frames, for sources with more than one frame (videos), in frame order."""
    by_source: dict[str, list[int]] = {}
    for i, f in enumerate(frames):
        by_source.setdefault(f["source"], []).append(i)
    return {s: sorted(ix, key=lambda i: frames[i]["frame"]) for s, ix in by_source.items() if len(ix) > 1}


def _fps(frames: list[dict[str, Any]], ix: list[int]) -> float:
    """Frames per second of the sampled sequence (after --stride), from the frames' own times."""
    times = [frames[i]["time_s"] for i in ix]
    if None in times:
        return DEFAULT_FPS
    steps = np.diff(np.asarray(times, dtype=np.float64))
    return float(1.0 / np.median(steps)) if len(steps) and np.median(steps) > 0 else DEFAULT_FPS


def _filter_points(frames: list[dict[str, Any]], ix: list[int], key: str, f: TemporalFilter, fps: float) -> None:
    points = [frames[i][key] for i in ix]
    xy = np.array([[[p["x"], p["y"]] for p in ps] for ps in points], dtype=np.float64)
    confidence = np.array([[p.get("confidence", 1.0) for p in ps] for ps in points], dtype=np.float64)
    filtered, filled = filter_track(xy, confidence, f, fps)
    filtered = np.round(filtered, 3)
    for t, ps in enumerate(points):
        for k, p in enumerate(ps):
            p["raw_x"], p["raw_y"] = p["x"], p["y"]
            ok = bool(np.isfinite(filtered[t, k]).all())
            p["x"] = float(filtered[t, k, 0]) if ok else None
            p["y"] = float(filtered[t, k, 1]) if ok else None
            p["filled"] = bool(filled[t, k])


def apply(frames: list[dict[str, Any]], f: TemporalFilter) -> None:
    """Filter every video's keypoints and joints in place (see the module docstring)."""
    for ix in _clips(frames).values():
        fps = _fps(frames, ix)
        _filter_points(frames, ix, "keypoints", f, fps)
        if all("joints" in frames[i] for i in ix):
            _filter_points(frames, ix, "joints", f, fps)


def frame_xy(entry: dict[str, Any], key: str) -> np.ndarray:
    """(P, 2) (x, y) of a frame's keypoints or joints, NaN where hidden."""
    return np.array([[np.nan if p["x"] is None else p["x"], np.nan if p["y"] is None else p["y"]]
                     for p in entry[key]], dtype=np.float64)
