"""Which frames to label next: where the model is least sure, spread over the clips.

Three signs of a frame the model gets wrong (the loop DeepLabCut, SLEAP and lightning-pose users run: predict,
pick outliers, label them, retrain); the first two from the model's own output on unlabelled footage:

* **low confidence**: 1 - the frame's mean keypoint confidence (``model.confidence``: little heatmap mass at the
  keypoints);
* **jumps**: the largest move of a keypoint away from the straight line through its neighbours in time,
  |x[t] - (x[t-1] + x[t+1]) / 2|, as a fraction of the frame's size (a video's frames only; the real motion of
  continuous footage is smooth at the frame rate, a detection that flips to the wrong limb is not);
* **regression residual** (only where labels exist, ``--labelled``): on each labelled frame, how far its labels
  lie from the joints that a linear map of the model's keypoints predicts there (the map of `dkp joints fit`:
  per joint, centred ridge on (x, y) / frame size), fitted on the *other* labelled frames (5-fold by frame,
  seeded), as a fraction of the frame's size, averaged over the frame's labelled joints. A large one means the
  keypoints there do not say where the joints are (a pose or view the model has not learnt) or the label is
  wrong. Labelled frames are not picked again: their residuals are listed for review (``review``, largest first),
  and each unlabelled frame of a clip gets the residual interpolated in time between the labelled frames around
  it (the nearest one's before the first and after the last), so the picks go where the map misses. Clips with
  no labelled frame, and frames in images, have no residual term.

Each sign is turned into ranks in [0, 1] over the frames that have it (so no unit dominates) and the score is the
mean of a frame's ranks (two or three). Frames are then taken best first, skipping any within ``min_gap`` frames
of one already taken in the same clip (neighbouring frames teach the same thing) and capping each clip at its
share (twice the even share, at least one), so a long clip does not take every pick.
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
    residual: float = math.nan  # interpolated from the clip's labelled frames; NaN: no labelled frame there


@dataclass(frozen=True)
class Review:
    """A labelled frame whose labels the map of the model's keypoints misses: check the label, or the model."""

    index: int  # into the frames given
    source: str
    frame: int
    residual: float  # fraction of the frame size
    residual_px: float


RIDGE = 1e-3  # as `dkp joints fit` (dkp_tui.eval.joints.RIDGE), on features in [0, 1]
RESIDUAL_FOLDS = 5
MIN_LABELLED = 6  # fewer labelled frames among those scored: no residual term


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


def score_frames(frames: list[dict[str, Any]], residual: np.ndarray | None = None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(score, low confidence, jump) per frame of `dkp infer`'s output, in the frames' order; ``residual`` (per
    frame, NaN where there is none: ``residual_term``) adds its rank to the frames that have one."""
    low = np.array([1.0 - float(np.mean([p.get("confidence", 1.0) for p in f["keypoints"]])) for f in frames])
    jump = np.zeros(len(frames))
    for ix in _by_source(frames).values():
        xy = np.array([frame_xy(frames[i], "keypoints") for i in ix], dtype=np.float64)
        size = float(max(frames[ix[0]]["width"], frames[ix[0]]["height"]))
        jump[ix] = jumps(xy, size)
    terms = [ranks(low), ranks(jump)]
    if residual is not None and np.isfinite(residual).any():
        r = np.full(len(frames), np.nan)
        has = np.isfinite(residual)
        r[has] = ranks(residual[has])
        terms.append(r)
    return np.nanmean(np.stack(terms), axis=0), low, jump


def _by_source(frames: list[dict[str, Any]]) -> dict[str, list[int]]:
    """Frame indices per source, in frame order."""
    by: dict[str, list[int]] = {}
    for i, f in enumerate(frames):
        by.setdefault(f["source"], []).append(i)
    return {s: sorted(ix, key=lambda i: frames[i]["frame"]) for s, ix in by.items()}


def label_points(xy: dict[str, np.ndarray], present: dict[str, np.ndarray]
                 ) -> dict[tuple[str, int], tuple[np.ndarray, np.ndarray]]:
    """A label set's frames (``LabelSet.xy`` / ``.present``: J x 2 (x, y) original pixels, J bool) by
    ``frame_key``."""
    out = {}
    for name, points in xy.items():
        file, _, index = name.partition("#")
        out[frame_key(file, int(index) if index.isdigit() else 0)] = (np.asarray(points, np.float64),
                                                                     np.asarray(present[name], bool))
    return out


def residuals(frames: list[dict[str, Any]], labels: dict[tuple[str, int], tuple[np.ndarray, np.ndarray]],
              folds: int = RESIDUAL_FOLDS, seed: int = 0, ridge: float = RIDGE) -> dict[int, float]:
    """Frame index -> out-of-fold regression residual (fraction of the frame size) of each labelled frame among
    ``frames``; empty with fewer than ``MIN_LABELLED`` of them. Each fold's map is fitted per joint on the other
    folds' frames where that joint is labelled (a joint labelled in fewer than two of them is left out)."""
    matched = [(i, labels[frame_key(f["source"], f["frame"])]) for i, f in enumerate(frames)
               if frame_key(f["source"], f["frame"]) in labels]
    n = len(matched)
    if n < MIN_LABELLED:
        return {}
    size = np.array([float(max(frames[i]["width"], frames[i]["height"])) for i, _ in matched])
    x = np.stack([frame_xy(frames[i], "keypoints").ravel() for i, _ in matched]) / size[:, None]
    seen = np.isfinite(x)  # a hidden keypoint: its mean over the labelled frames (the frame's centre if never seen)
    mean = np.where(seen.any(axis=0), np.where(seen, x, 0.0).sum(axis=0) / np.maximum(seen.sum(axis=0), 1), 0.5)
    x = np.where(seen, x, mean)
    y = np.stack([lab[0] for _, lab in matched]) / size[:, None, None]
    vis = np.stack([lab[1] for _, lab in matched]) & np.isfinite(y).all(axis=-1)
    pred = np.full(y.shape, np.nan)
    order = np.random.default_rng(seed).permutation(n)
    folds = max(2, min(folds, n))
    for f in range(folds):
        held = order[f::folds]
        train = np.setdiff1d(order, held)
        for j in range(y.shape[1]):
            rows = train[vis[train, j]]
            if len(rows) < 2:
                continue
            mx, my = x[rows].mean(axis=0), y[rows, j].mean(axis=0)
            xc = x[rows] - mx
            w = np.linalg.solve(xc.T @ xc + ridge * np.eye(x.shape[1]), xc.T @ (y[rows, j] - my))
            pred[held, j] = (x[held] - mx) @ w + my
    d = np.linalg.norm(pred - y, axis=-1)
    d[~vis] = np.nan
    out = {}
    for k, (i, _) in enumerate(matched):
        if np.isfinite(d[k]).any():
            out[i] = float(np.nanmean(d[k]))
    return out


def residual_term(frames: list[dict[str, Any]], res: dict[int, float]) -> np.ndarray:
    """Per frame: its clip's labelled residuals (``residuals``) interpolated linearly in time (the nearest one's
    beyond the first and last labelled frame); NaN in clips with no labelled frame."""
    out = np.full(len(frames), np.nan)
    for ix in _by_source(frames).values():
        known = [i for i in ix if i in res]
        if not known:
            continue
        t = np.array([frames[i]["frame"] for i in ix], dtype=np.float64)
        tk = np.array([frames[i]["frame"] for i in known], dtype=np.float64)
        out[ix] = np.interp(t, tk, [res[i] for i in known])
    return out


def review(frames: list[dict[str, Any]], res: dict[int, float], n: int) -> list[Review]:
    """The ``n`` labelled frames with the largest residuals, largest first."""
    top = sorted(res, key=lambda i: -res[i])[:n]
    return [Review(i, frames[i]["source"], int(frames[i]["frame"]), res[i],
                   res[i] * float(max(frames[i]["width"], frames[i]["height"]))) for i in top]


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
         labelled: set[tuple[str, int]] | None = None, residual: np.ndarray | None = None) -> list[Pick]:
    """The ``n`` frames to label next (fewer when spacing and caps leave no more), best first; frames already
    ``labelled`` (``frame_key``s) are never picked (their neighbours may be: ``min_gap`` keeps picks apart from
    each other only). ``residual``: ``residual_term``'s per-frame values, a third term of the score."""
    score, low, jump = score_frames(frames, residual)
    res = np.full(len(frames), np.nan) if residual is None else np.asarray(residual, dtype=np.float64)
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
        out.append(Pick(int(i), f["source"], int(f["frame"]), float(score[i]), float(low[i]), float(jump[i]),
                        float(res[i])))
        if len(out) == n:
            break
    return out
