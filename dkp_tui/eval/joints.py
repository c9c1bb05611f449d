"""Named joints from unsupervised keypoints: the evaluation's linear regression as a file a user keeps.

The map is affine, K keypoints -> J joints: features u = (y, x) * 0.5 + 0.5 of the detector's [-1, 1] keypoints,
flattened (y0, x0, y1, x1, ...), and a bias; output (y, x) in pixels of the S x S input the detector sees. Each
joint is fitted on the frames where it is labelled (missing joints are left out of fit and score), by ridge
regression on centred features: with a few dozen labels there are fewer frames than the 2K features, and the
small ridge keeps the fit determined without shrinking the bias, so that with no features at all it is exactly
the mean pose of the labelled frames (the protocols' reference).

Scores are in the units of the original frames: ``geometry`` (N x 4: top, left, h, w of the stored region in
original pixels) scales the stored-pixel error back per axis. The normalised error divides each axis by that
region's side (the frame size the model sees: the centre square, or the whole frame with ``--crop none``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dkp_tui.errors import DkpError
from dkp_tui.formats.joint_map import JointMap, features

RIDGE = 1e-3  # on centred u features (range [0, 1]); negligible once frames outnumber features
DEFAULT_PCK = 0.1  # fraction of the frame size
CV_FOLDS = 5


def fit_map(keypoints: np.ndarray | None, gt: np.ndarray, visible: np.ndarray, ridge: float = RIDGE,
            joint_names: list[str] | None = None) -> JointMap:
    """Per joint, centred ridge on the frames where it is labelled; ``keypoints`` None gives the mean pose."""
    gt = np.asarray(gt, dtype=np.float64)
    visible = np.asarray(visible, dtype=bool)
    n, j = gt.shape[:2]
    x = np.zeros((n, 0)) if keypoints is None else features(keypoints)
    p = x.shape[1]
    weight, bias = np.zeros((p, 2 * j)), np.zeros(2 * j)
    for jj in range(j):
        rows = visible[:, jj]
        if not rows.any():
            name = joint_names[jj] if joint_names else str(jj)
            raise DkpError(f"joint {name} is labelled in none of the {n} fit frames; cannot fit it")
        xr, yr = x[rows], gt[rows, jj]
        mx, my = xr.mean(axis=0), yr.mean(axis=0)
        if p:
            xc = xr - mx
            w = np.linalg.solve(xc.T @ xc + ridge * np.eye(p), xc.T @ (yr - my))
        else:
            w = np.zeros((0, 2))
        weight[:, 2 * jj:2 * jj + 2] = w
        bias[2 * jj:2 * jj + 2] = my - mx @ w
    return JointMap(weight, bias, list(joint_names or []))


def errors(pred: np.ndarray, gt: np.ndarray, geometry: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Per (frame, joint): (error in original pixels, error as a fraction of the frame size)."""
    d = np.asarray(pred, dtype=np.float64) - np.asarray(gt, dtype=np.float64)
    geo = np.asarray(geometry, dtype=np.float64)
    h, w = geo[:, 2:3] / size, geo[:, 3:4] / size  # original pixels per stored pixel
    px = np.hypot(d[..., 0] * h, d[..., 1] * w)
    return px, np.hypot(d[..., 0], d[..., 1]) / size


def score(pred: np.ndarray, gt: np.ndarray, visible: np.ndarray, geometry: np.ndarray, size: int,
          pck: float = DEFAULT_PCK) -> dict[str, float]:
    """Mean joint error (original px), the same ×100 of the frame size, and PCK (%) at ``pck`` of the frame size,
    over the labelled (frame, joint) pairs."""
    vis = np.asarray(visible, dtype=bool)
    if not vis.any():
        raise DkpError("no labelled joints to score")
    px, frac = errors(pred, gt, geometry, size)
    return {"px": float(px[vis].mean()), "l2x100": float(frac[vis].mean() * 100.0),
            "pck": float((frac[vis] < pck).mean() * 100.0), "pairs": int(vis.sum())}


def cv_groups(names: list[str] | None) -> tuple[np.ndarray | None, str]:
    """How to cross-validate frames named as a folder set stores them: ``(groups, "clip")`` when they come from at
    least two videos (``clip.mp4#12``: a video's frames are one group, each still image a group of its own), else
    ``(None, "frame")``. Frames of one clip share the figure, the background and the light, so a fold that keeps
    some of a clip's frames predicts the others far better than it predicts a new clip: by clip, the score says
    what to expect on footage the map has not seen."""
    if not names:
        return None, "frame"
    clips = [n.rsplit("#", 1)[0] if n.rsplit("#", 1)[-1].isdigit() and "#" in n else None for n in names]
    if len({c for c in clips if c is not None}) < 2:
        return None, "frame"
    ids: dict[tuple[str, int], int] = {}  # a clip by its name, an image by its index
    keys = [(c, -1) if c is not None else ("", i) for i, c in enumerate(clips)]
    groups = np.array([ids.setdefault(k, len(ids)) for k in keys], dtype=np.int64)
    return groups, "clip"


def cross_validate(keypoints: np.ndarray | None, gt: np.ndarray, visible: np.ndarray, geometry: np.ndarray,
                   size: int, folds: int = CV_FOLDS, ridge: float = RIDGE, pck: float = DEFAULT_PCK,
                   seed: int = 0, groups: np.ndarray | None = None) -> dict[str, Any]:
    """k-fold (seeded) error of the map on labelled frames: each frame predicted by the map fitted without its
    fold (a joint labelled in none of a fold's other frames is an error). Folds are drawn by frame, or with
    ``groups`` (``cv_groups``) by whole group, at most one fold per group; the result says which (``by``)."""
    n = len(gt)
    pred = np.zeros(np.asarray(gt).shape)
    if groups is None:
        folds = max(2, min(folds, n))
        order = np.random.default_rng(seed).permutation(n)
        held_out = [order[f::folds] for f in range(folds)]
        by, n_groups = "frame", n
    else:
        groups = np.asarray(groups)
        uniq = np.unique(groups)
        folds = max(2, min(folds, len(uniq)))
        fold_of = dict(zip(np.random.default_rng(seed).permutation(uniq).tolist(),
                           np.arange(len(uniq)) % folds, strict=True))
        frame_fold = np.array([fold_of[g] for g in groups.tolist()])
        held_out = [np.flatnonzero(frame_fold == f) for f in range(folds)]
        by, n_groups = "clip", len(uniq)
    for held in held_out:
        train = np.setdiff1d(np.arange(n), held)
        m = fit_map(None if keypoints is None else keypoints[train], gt[train], visible[train], ridge)
        pred[held] = m.predict(None if keypoints is None else keypoints[held], len(held))
    return {**score(pred, gt, visible, geometry, size, pck), "folds": folds, "by": by, "groups": n_groups}


# -- how many labels: the shots curve ---------------------------------------------------------------------------


def parse_shots(text: str) -> list[int | None]:
    """``5,10,20,all`` -> [5, 10, 20, None]; None = every fit frame."""
    out: list[int | None] = []
    for part in (p.strip() for p in text.split(",")):
        if part == "all":
            out.append(None)
        elif part.isdigit() and int(part) >= 2:
            out.append(int(part))
        else:
            raise DkpError(f"--shots {text!r}: give counts of at least 2 and/or 'all', e.g. 5,10,20,all")
    if not out:
        raise DkpError("--shots: give at least one count")
    return out


def _draw(rng: np.random.Generator, visible: np.ndarray, n: int, tries: int = 100) -> np.ndarray:
    """n fit frames at random, redrawn until every joint is labelled at least once among them."""
    for _ in range(tries):
        idx = np.sort(rng.choice(len(visible), n, replace=False))
        if visible[idx].any(axis=0).all():
            return idx
    raise DkpError(f"could not draw {n} fit frames in which every joint is labelled at least once; "
                   "use larger --shots counts")


def shots_curve(fit_kp: np.ndarray, fit_gt: np.ndarray, fit_vis: np.ndarray, test_kp: np.ndarray,
                test_gt: np.ndarray, test_vis: np.ndarray, test_geo: np.ndarray, size: int,
                shots: list[int | None], draws: int = 10, seed: int = 0, pck: float = DEFAULT_PCK,
                ridge: float = RIDGE) -> list[dict[str, Any]]:
    """Per shot count: the test scores of maps fitted on ``draws`` seeded random draws of that many fit frames,
    and of the mean pose of the same frames; counts at or above the fit split's size are one draw of all."""
    n_fit = len(fit_gt)
    rows: list[dict[str, Any]] = []
    rng = np.random.default_rng(seed)
    for want in shots:
        n = n_fit if want is None or want >= n_fit else want
        k = 1 if n == n_fit else draws
        model, ref = [], []
        for _ in range(k):
            idx = np.arange(n_fit) if n == n_fit else _draw(rng, fit_vis, n)
            m = fit_map(fit_kp[idx], fit_gt[idx], fit_vis[idx], ridge)
            model.append(score(m.predict(test_kp), test_gt, test_vis, test_geo, size, pck))
            mp = fit_map(None, fit_gt[idx], fit_vis[idx], ridge)
            ref.append(score(mp.predict(None, len(test_gt)), test_gt, test_vis, test_geo, size, pck))
        row: dict[str, Any] = {"shots": "all" if want is None else want, "n": n, "draws": k}
        for name, runs in (("model", model), ("mean_pose", ref)):
            row[name] = {m: {"mean": float(np.mean([r[m] for r in runs])),
                             "std": float(np.std([r[m] for r in runs], ddof=1)) if k > 1 else 0.0}
                         for m in ("px", "l2x100", "pck")}
        rows.append(row)
    return rows
