"""Temporal filtering of keypoint trajectories: hide unsure points, bridge short gaps, smooth each track.

A video's detections are independent per frame, so trajectories jitter by a pixel or two even where the person
holds still, and an occluded joint jumps for a frame or two. The steps, per trajectory (one keypoint or joint of
one clip, in time order), all pure functions of (T, P, 2) arrays with NaN for a missing point:

1. ``hide_unsure``: points whose confidence is below ``min_confidence`` become missing.
2. ``fill_gaps``: a run of at most ``max_gap`` missing frames between two present ones is filled by linear
   interpolation; longer gaps and the clip's ends stay missing (no extrapolation).
3. ``smooth``: Savitzky-Golay (scipy's ``savgol_filter``: a local quadratic fit, keeps peaks and turns where a
   moving average would flatten them), a running median (numpy; robust to single-frame jumps) or One-Euro
   (Casiez, Roussel & Vogel, CHI 2012: a causal low-pass whose cutoff rises with speed, so slow jitter is damped
   and fast moves lag little; the reference algorithm, written here, as no maintained package ships it). Each runs
   over each present stretch of a track separately: a filter never reaches across a gap it could not fill.

``jitter`` is the measure the filters are judged by: the mean size of the second difference
|x[t+1] - 2 x[t] + x[t-1]| over the points present in all three frames (zero for motion at constant speed).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from dkp_tui.errors import DkpError
from dkp_tui.extras import require

METHODS = ("none", "savgol", "median", "oneeuro")
SAVGOL_ORDER = 2


@dataclass(frozen=True)
class TemporalFilter:
    method: str = "none"
    window: int = 7  # frames, odd (savgol, median)
    min_confidence: float = 0.0
    max_gap: int = 5  # frames
    min_cutoff_hz: float = 1.0  # One-Euro: the cutoff at rest
    beta: float = 0.05  # One-Euro: cutoff increase per px/s of speed

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise DkpError(f"--smooth {self.method!r}: choose {', '.join(METHODS)}")
        if self.window < 3 or self.window % 2 == 0:
            raise DkpError(f"--smooth-window {self.window}: an odd number of frames, at least 3")
        if not 0.0 <= self.min_confidence <= 1.0:
            raise DkpError(f"--min-confidence {self.min_confidence}: a confidence between 0 and 1")
        if self.max_gap < 0:
            raise DkpError(f"--max-gap {self.max_gap}: a number of frames, 0 or more")

    @property
    def active(self) -> bool:
        return self.method != "none" or self.min_confidence > 0.0


def hide_unsure(xy: np.ndarray, confidence: np.ndarray, min_confidence: float) -> np.ndarray:
    """(T, P, 2) with the points of confidence (T, P) below ``min_confidence`` set to NaN."""
    out = np.array(xy, dtype=np.float64)
    out[np.asarray(confidence) < min_confidence] = np.nan
    return out


def _runs(present: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) of each run of True in a 1-D bool array."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], present.astype(np.int8), [0]])))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))


def fill_gaps(xy: np.ndarray, max_gap: int) -> tuple[np.ndarray, np.ndarray]:
    """(filled (T, P, 2), which points were filled (T, P)): linear interpolation over interior gaps of at most
    ``max_gap`` frames."""
    out = np.array(xy, dtype=np.float64)
    filled = np.zeros(out.shape[:2], dtype=bool)
    for p in range(out.shape[1]):
        present = np.isfinite(out[:, p]).all(axis=-1)
        for start, stop in _runs(~present):
            if start == 0 or stop == len(present) or stop - start > max_gap:
                continue
            a, b = out[start - 1, p], out[stop, p]
            w = (np.arange(start, stop) - (start - 1))[:, None] / (stop - start + 1)
            out[start:stop, p] = a + (b - a) * w
            filled[start:stop, p] = True
    return out, filled


def savgol(track: np.ndarray, window: int) -> np.ndarray:
    """(T, 2) -> (T, 2): Savitzky-Golay, quadratic, the window shrunk to the track's length when it is shorter."""
    n = len(track)
    w = min(window, n if n % 2 else n - 1)
    if w <= SAVGOL_ORDER:
        return track.copy()
    signal = require("scipy.signal", extra="smooth")
    return signal.savgol_filter(track, w, SAVGOL_ORDER, axis=0, mode="interp")


def median(track: np.ndarray, window: int) -> np.ndarray:
    """(T, 2) -> (T, 2): the running median, the window shrinking at the ends."""
    half = window // 2
    return np.stack([np.median(track[max(0, t - half):t + half + 1], axis=0) for t in range(len(track))])


def one_euro(track: np.ndarray, fps: float, min_cutoff_hz: float, beta: float, d_cutoff_hz: float = 1.0
             ) -> np.ndarray:
    """(T, 2) -> (T, 2): the One-Euro filter (causal), frames ``1 / fps`` apart, speed in px/s."""

    def alpha(cutoff: np.ndarray | float) -> np.ndarray | float:
        tau = 1.0 / (2.0 * np.pi * cutoff)
        return 1.0 / (1.0 + tau * fps)

    out = np.empty_like(track, dtype=np.float64)
    out[0] = track[0]
    speed = np.zeros(track.shape[1])
    for t in range(1, len(track)):
        raw_speed = (track[t] - out[t - 1]) * fps
        speed = alpha(d_cutoff_hz) * raw_speed + (1 - alpha(d_cutoff_hz)) * speed
        a = alpha(min_cutoff_hz + beta * np.abs(speed))
        out[t] = a * track[t] + (1 - a) * out[t - 1]
    return out


def smooth(xy: np.ndarray, f: TemporalFilter, fps: float) -> np.ndarray:
    """(T, P, 2) -> (T, P, 2), each present stretch of each track filtered alone; missing points stay missing."""
    if f.method == "none":
        return np.array(xy, dtype=np.float64)
    one: Callable[[np.ndarray], np.ndarray] = {
        "savgol": lambda tr: savgol(tr, f.window),
        "median": lambda tr: median(tr, f.window),
        "oneeuro": lambda tr: one_euro(tr, fps, f.min_cutoff_hz, f.beta),
    }[f.method]
    out = np.array(xy, dtype=np.float64)
    for p in range(out.shape[1]):
        for start, stop in _runs(np.isfinite(out[:, p]).all(axis=-1)):
            out[start:stop, p] = one(out[start:stop, p])
    return out


def filter_track(xy: np.ndarray, confidence: np.ndarray, f: TemporalFilter, fps: float
                 ) -> tuple[np.ndarray, np.ndarray]:
    """The three steps on one clip: (filtered (T, P, 2), NaN where hidden and not bridged; filled (T, P))."""
    hidden = hide_unsure(xy, confidence, f.min_confidence)
    bridged, filled = fill_gaps(hidden, f.max_gap)
    return smooth(bridged, f, fps), filled


def jitter(xy: np.ndarray) -> float:
    """Mean |x[t+1] - 2 x[t] + x[t-1]| (px) over the (T, P, 2) points present in three consecutive frames."""
    xy = np.asarray(xy, dtype=np.float64)
    if len(xy) < 3:
        return float("nan")
    second = np.linalg.norm(xy[2:] - 2.0 * xy[1:-1] + xy[:-2], axis=-1)
    return float(np.nanmean(second)) if np.isfinite(second).any() else float("nan")
