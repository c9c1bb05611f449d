"""Which frames to label next: where the model is least sure, spread over the clips.

Two signs of a frame the model gets wrong, both from its own output on unlabelled footage (the loop DeepLabCut,
SLEAP and lightning-pose users run: predict, pick outliers, label them, retrain):

* **low confidence**: 1 - the frame's mean keypoint confidence (``model.confidence``: little heatmap mass at the
  keypoints);
* **jumps**: the largest move of a keypoint away from the straight line through its neighbours in time,
  |x[t] - (x[t-1] + x[t+1]) / 2|, as a fraction of the frame's size (a video's frames only; the real motion of
  continuous footage is smooth at the frame rate, a detection that flips to the wrong limb is not).

Each sign is turned into ranks in [0, 1] over all frames (so neither unit dominates) and the score is their mean.
Frames are then taken best first, skipping any within ``min_gap`` frames of one already taken in the same clip
(neighbouring frames teach the same thing) and capping each clip at its share (twice the even share, at least
one), so a long clip does not take every pick.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from dkp_tui.inference.temporal import frame_xy


@dataclass(frozen=True)
class Pick:
    index: int  # into the frames given
    source: str
    frame: int
    score: float
    low_confidence: float
    jump: float


def ranks(values: np.ndarray) -> np.ndarray:
    """Values -> ranks in [0, 1] (ties share their mean rank; one value gives 0.5)."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) < 2:
        return np.full(len(values), 0.5)
    order = np.argsort(values, kind="stable")
    r = np.empty(len(values))
    r[order] = np.arange(len(values))
    for v in np.unique(values):  # ties
        same = values == v
        r[same] = r[same].mean()
    return r / (len(values) - 1)


def jumps(xy: np.ndarray, size: float) -> np.ndarray:
    """(T,) largest |x[t] - (x[t-1] + x[t+1]) / 2| over the (T, P, 2) points of one clip, / ``size``; the ends
    compare with the line through their two neighbours, and a NaN point counts as no jump."""
    xy = np.asarray(xy, dtype=np.float64)
    if len(xy) < 3:
        return np.zeros(len(xy))
    mid = np.empty_like(xy)
    mid[1:-1] = (xy[:-2] + xy[2:]) / 2.0
    mid[0], mid[-1] = 2.0 * xy[1] - xy[2], 2.0 * xy[-2] - xy[-3]
    d = np.linalg.norm(xy - mid, axis=-1)
    return np.nan_to_num(d, nan=0.0).max(axis=1) / size


def score_frames(frames: list[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(score, low confidence, jump) per frame of `dkp infer`'s output, in the frames' order."""
    low = np.array([1.0 - float(np.mean([p.get("confidence", 1.0) for p in f["keypoints"]])) for f in frames])
    jump = np.zeros(len(frames))
    by_source: dict[str, list[int]] = {}
    for i, f in enumerate(frames):
        by_source.setdefault(f["source"], []).append(i)
    for ix in by_source.values():
        ix = sorted(ix, key=lambda i: frames[i]["frame"])
        xy = np.array([frame_xy(frames[i], "keypoints") for i in ix], dtype=np.float64)
        size = float(max(frames[ix[0]]["width"], frames[ix[0]]["height"]))
        jump[ix] = jumps(xy, size)
    return (ranks(low) + ranks(jump)) / 2.0, low, jump


def frame_key(source: str, frame: int) -> tuple[str, int]:
    """A frame by its file's name and index, as label files and `dkp infer` both name it: ``clip.mp4#12`` and
    ``/data/videos/clip.mp4`` frame 12 are the same frame (an image is frame 0)."""
    return source.replace("\\", "/").rsplit("/", 1)[-1], frame


def labelled_keys(names: list[str]) -> set[tuple[str, int]]:
    """Label files' frame names (``clip.mp4#12``, ``images/a.png``) as ``frame_key``s."""
    out = set()
    for name in names:
        file, _, index = name.partition("#")
        out.add(frame_key(file, int(index) if index.isdigit() else 0))
    return out


def pick(frames: list[dict[str, Any]], n: int, min_gap: int = 5,
         labelled: set[tuple[str, int]] | None = None) -> list[Pick]:
    """The ``n`` frames to label next (fewer when spacing and caps leave no more), best first; frames already
    ``labelled`` (``frame_key``s) are never picked, and picks keep ``min_gap`` from them too."""
    score, low, jump = score_frames(frames)
    sources = list(dict.fromkeys(f["source"] for f in frames))
    cap = max(1, math.ceil(2 * n / max(len(sources), 1)))
    taken: dict[str, list[int]] = {s: [] for s in sources}
    done = labelled or set()
    out: list[Pick] = []
    for i in np.argsort(-score, kind="stable"):
        f = frames[i]
        mine = taken[f["source"]]
        if len(mine) >= cap or any(abs(f["frame"] - g) < min_gap for g in mine) or \
                frame_key(f["source"], f["frame"]) in done:
            continue
        mine.append(f["frame"])
        out.append(Pick(int(i), f["source"], int(f["frame"]), float(score[i]), float(low[i]), float(jump[i])))
        if len(out) == n:
            break
    return out
