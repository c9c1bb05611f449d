"""The keypoint-regression protocols (spec: evaluation.md), one pure function each, on numpy arrays.

Inputs are the frozen detector's keypoints on the fit and test splits (N x K x 2, (y, x) in [-1, 1]) and the
ground truth in the data set's label units (N x J x 2, (y, x)). Axis order does not change any score: every
target is regressed from all 2K features and the metrics are symmetric in the axes. Each constant below is the
reference code's; changing one makes numbers incomparable with the paper, so none of them is an option except the
documented ones (H36M swap table).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dkp_tui.errors import DkpError
from dkp_tui.eval.regression import features, least_squares

log = logging.getLogger("dkp.eval")

PROTOCOLS = ("taichi", "h36m", "deepfashion", "synthetic", "folder")

TAICHI_FEATURE_SCALE = 255.0
TAICHI_RIDGE = 1.0
DEEPFASHION_FEATURE_SCALE = 255.0
DEEPFASHION_RIDGE = 1e-3
DEEPFASHION_PCK_PX = 6.0  # strict: a joint at exactly 6 px is a miss
PIXEL_FRAME = 256.0  # Taichi and DeepFashion score in pixels of the 256-px frame
SWAP_MIN_IMAGES = 10  # the swap loop continues while MORE than this many images prefer the swapped labels
SWAP_MAX_ITERATIONS = 1000  # the reference has no cap; the non-permutation table could in principle cycle
OUTLIER_STDS = 3.0

# 0-based pairs of the 32 H36M joints, assigned both ways in order (the reference's construction). The
# reference's (21, 28) is almost certainly meant to be (21, 29); with it the "swap" is not a permutation.
H36M_PAIRS_REFERENCE: tuple[tuple[int, int], ...] = (
    (1, 6), (2, 7), (3, 8), (4, 9), (5, 10), (17, 25), (18, 26), (19, 27), (20, 28), (21, 28), (22, 30), (23, 31))
H36M_PAIRS_FIXED: tuple[tuple[int, int], ...] = (
    (1, 6), (2, 7), (3, 8), (4, 9), (5, 10), (17, 25), (18, 26), (19, 27), (20, 28), (21, 29), (22, 30), (23, 31))


@dataclass
class ProtocolResult:
    protocol: str
    metric: str  # machine name of the score, e.g. "h36m_l2x100"
    label: str  # what the number is, for tables
    value: float
    higher_is_better: bool
    options: dict[str, Any] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)
    fallbacks: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"protocol": self.protocol, "metric": self.metric, "label": self.label, "value": self.value,
                "higher_is_better": self.higher_is_better, "options": dict(self.options),
                "extras": dict(self.extras), "fallbacks": list(self.fallbacks)}


@dataclass
class EvalSplit:
    """What a protocol needs from one split: detections, labels, and (synthetic) figure masks."""

    keypoints: np.ndarray | None  # N x K x 2 detector output, (y, x) in [-1, 1]; None = no detector (mean pose)
    gt: np.ndarray  # N x J x 2 labels, (y, x) in label units
    visible: np.ndarray | None = None  # N x J bool
    masks: np.ndarray | None = None  # N x H x W, nonzero on the figure
    label_scale: float = 1.0  # frame size in label units
    geometry: np.ndarray | None = None  # N x 4 stored region (top, left, h, w) in original pixels (folder sets)
    names: list[str] | None = None  # N source ids as the set stores them (``clip.mp4#12``), where it has them


# -- shared pieces ---------------------------------------------------------------------------------------------


def _check(fit: EvalSplit, test: EvalSplit) -> None:
    if fit.keypoints is None or test.keypoints is None:
        if not (fit.keypoints is None and test.keypoints is None):
            raise DkpError("fit and test splits disagree: detections on one, the mean-pose reference on the other")
        for name, s in (("fit", fit), ("test", test)):
            if np.asarray(s.gt).ndim != 3 or np.asarray(s.gt).shape[0] == 0:
                raise DkpError(f"{name} split: labels {np.asarray(s.gt).shape} must be a non-empty N x J x 2")
        return
    for name, s in (("fit", fit), ("test", test)):
        kp, gt = np.asarray(s.keypoints), np.asarray(s.gt)
        if kp.ndim != 3 or kp.shape[2] != 2 or gt.ndim != 3 or gt.shape[2] != 2:
            raise DkpError(f"{name} split: keypoints {kp.shape} / labels {gt.shape} must be N x K x 2 / N x J x 2")
        if kp.shape[0] != gt.shape[0]:
            raise DkpError(f"{name} split: {kp.shape[0]} detections for {gt.shape[0]} labelled images")
        if kp.shape[0] == 0:
            raise DkpError(f"{name} split is empty")
        if not np.all(np.isfinite(kp)):
            raise DkpError(f"{name} split: the detector produced non-finite keypoints (a diverged run?)")
    if fit.keypoints.shape[1:] != test.keypoints.shape[1:] or fit.gt.shape[1:] != test.gt.shape[1:]:
        raise DkpError(f"fit and test splits disagree: K {fit.keypoints.shape[1]} vs {test.keypoints.shape[1]}, "
                       f"J {fit.gt.shape[1]} vs {test.gt.shape[1]}")


def _design(s: EvalSplit, scale: float = 1.0, bias: bool = False) -> np.ndarray:
    """The regression's feature matrix. Without detections (the mean-pose reference) it is one column of ones:
    its least-squares fit is the mean of the fit labels the protocol regresses on (after its swaps, trimming and
    missing-joint handling), so the reference goes through exactly the protocol's own steps."""
    if s.keypoints is None:
        return np.ones((len(s.gt), 1))
    return features(s.keypoints, scale, bias)


def _visible(s: EvalSplit) -> np.ndarray:
    """Visible joints; a label of -1 in both coordinates (the Taichi convention) also counts as missing."""
    gt = np.asarray(s.gt)
    vis = np.ones(gt.shape[:2], dtype=bool) if s.visible is None else np.asarray(s.visible, dtype=bool).copy()
    return vis & ~np.all(gt == -1, axis=-1)


visible_joints = _visible  # the public name, for the shots curve and `dkp joints fit`


def swap_index(pairs: Sequence[tuple[int, int]], n_joints: int) -> np.ndarray:
    """The reference's "permutation": start from identity and assign both directions pair by pair, in order.

    With a repeated joint (the H36M table's 28) the later pair overwrites the earlier one, so the result need
    not be a permutation; that is reproduced on purpose.
    """
    index = np.arange(n_joints)
    for a, b in pairs:
        if not (0 <= a < n_joints and 0 <= b < n_joints):
            raise DkpError(f"swap pair ({a}, {b}) is out of range for {n_joints} joints")
        index[a] = b
        index[b] = a
    return index


def mean_l2(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Per image: mean over joints of the Euclidean error (N x J x 2 each -> N)."""
    return np.linalg.norm(pred - gt, axis=2).mean(axis=1)


@dataclass
class SwapOutcome:
    gt: np.ndarray  # the labels after the loop (a copy; the input is never changed)
    errors: np.ndarray  # per-image mean L2 from the final pass
    swapped: int  # image swaps performed in total (an image swapped twice counts twice)
    iterations: int
    capped: bool = False


def swap_loop(pred: np.ndarray, gt: np.ndarray, index: np.ndarray, min_images: int = SWAP_MIN_IMAGES,
              max_iterations: int = SWAP_MAX_ITERATIONS) -> SwapOutcome:
    """Test-time loop: swap the labels of the images that prefer ``gt[:, index]`` while more than
    ``min_images`` of them do; the ≤ ``min_images`` that still prefer it at the end stay unswapped.
    """
    y = np.array(gt, dtype=np.float64, copy=True)
    swapped = 0
    for it in range(1, max_iterations + 1):
        e = mean_l2(pred, y)
        y_sw = y[:, index]
        prefer = e > mean_l2(pred, y_sw)
        if int(prefer.sum()) > min_images:
            y[prefer] = y_sw[prefer]
            swapped += int(prefer.sum())
            continue
        return SwapOutcome(y, e, swapped, it)
    log.warning("swap loop stopped after %d iterations without settling", max_iterations)
    return SwapOutcome(y, mean_l2(pred, y), swapped, max_iterations, capped=True)


@dataclass
class SwapFit:
    beta: np.ndarray
    gt: np.ndarray
    kept: int
    swapped: int
    iterations: int
    fallbacks: list[str]
    capped: bool = False


def fit_with_swaps(x: np.ndarray, gt: np.ndarray, index: np.ndarray, what: str,
                   min_images: int = SWAP_MIN_IMAGES, max_iterations: int = SWAP_MAX_ITERATIONS) -> SwapFit:
    """Fit-side loop: refit after each swap of the preferring images; then drop images with
    e >= mean(e) + 3·std(e) (unbiased std, e of the last pass) and refit once more.
    """
    n, j, _ = gt.shape
    y = np.array(gt, dtype=np.float64, copy=True)
    fallbacks: list[str] = []
    swapped, capped, it = 0, True, 0
    for it in range(1, max_iterations + 1):  # noqa: B007 - the count is reported
        fit = least_squares(x, y.reshape(n, -1), what=f"{what} fit")
        if fit.fallback:
            fallbacks.append(f"{what} fit: {fit.fallback}")
        pred = fit.predict(x).reshape(n, j, 2)
        e = mean_l2(pred, y)
        y_sw = y[:, index]
        prefer = e > mean_l2(pred, y_sw)
        if int(prefer.sum()) > min_images:
            y[prefer] = y_sw[prefer]
            swapped += int(prefer.sum())
            continue
        capped = False
        break
    if capped:
        log.warning("%s fit swap loop stopped after %d iterations without settling", what, max_iterations)
    threshold = e.mean() + OUTLIER_STDS * (e.std(ddof=1) if n > 1 else 0.0)
    keep = e < threshold
    if not keep.any():  # all errors equal (e.g. a perfect fit): nothing is an outlier
        keep = np.ones(n, dtype=bool)
    final = least_squares(x[keep], y[keep].reshape(int(keep.sum()), -1), what=f"{what} final fit")
    if final.fallback:
        fallbacks.append(f"{what} final fit: {final.fallback}")
    return SwapFit(final.beta, y, int(keep.sum()), swapped, it, fallbacks, capped)


def _l2_swap_protocol(fit: EvalSplit, test: EvalSplit, index: np.ndarray, name: str) -> tuple[float, dict, list]:
    """The H36M-style score: no bias, u features, swap-aware fit, swap loop on the test labels; mean L2 in frame
    units (labels divided by ``label_scale``)."""
    xf, xt = _design(fit), _design(test)
    yf = np.asarray(fit.gt, dtype=np.float64) / fit.label_scale
    yt = np.asarray(test.gt, dtype=np.float64) / test.label_scale
    sf = fit_with_swaps(xf, yf, index, name)
    pred = (xt @ sf.beta).reshape(yt.shape)
    st = swap_loop(pred, yt, index)
    extras = {"raw": float(st.errors.mean()), "n_fit": int(len(xf)), "n_fit_kept": sf.kept,
              "n_test": int(len(xt)), "fit_swaps": sf.swapped, "fit_iterations": sf.iterations,
              "test_swaps": st.swapped, "test_iterations": st.iterations,
              "fit_train_error_x100": float(mean_l2((xf @ sf.beta).reshape(yf.shape), sf.gt).mean() * 100)}
    if sf.capped or st.capped:
        extras["swap_loop_capped"] = True
    return float(st.errors.mean() * 100.0), extras, sf.fallbacks


# -- Taichi ----------------------------------------------------------------------------------------------------


def taichi(fit: EvalSplit, test: EvalSplit) -> ProtocolResult:
    """Sum of the per-(joint, coordinate) test MAEs of 2J separate scalar fits with a bias column, each on the
    rows where that joint is labelled; in pixels of the 256-px frame (the reference's "MAE")."""
    _check(fit, test)
    xf = _design(fit, TAICHI_FEATURE_SCALE, bias=True)
    xt = _design(test, TAICHI_FEATURE_SCALE, bias=True)
    yf = np.asarray(fit.gt, dtype=np.float64) * (PIXEL_FRAME / fit.label_scale)
    yt = np.asarray(test.gt, dtype=np.float64) * (PIXEL_FRAME / test.label_scale)
    vf, vt = _visible(fit), _visible(test)
    n_joints = yf.shape[1]
    scores: list[float] = []
    fallbacks: list[str] = []
    skipped: list[str] = []
    pred_t = np.full(yt.shape, np.nan)
    for j in range(n_joints):
        rows = vf[:, j]
        if not rows.any():
            raise DkpError(f"taichi: joint {j} is missing in every fit image; cannot fit its regressor")
        for c in range(2):
            lf = least_squares(xf[rows], yf[rows, j, c], ridge=TAICHI_RIDGE, log_fallback=False)
            if lf.fallback:
                fallbacks.append(f"joint {j} coord {c}: {lf.fallback}")
            trows = vt[:, j]
            if not trows.any():
                skipped.append(f"{j}:{c}")
                continue
            pred_t[trows, j, c] = lf.predict(xt[trows])
            scores.append(float(np.abs(pred_t[trows, j, c] - yt[trows, j, c]).mean()))
    if fallbacks:
        log.warning("taichi: singular normal matrix for %d of %d targets (first: %s); used ridge=%g there",
                    len(fallbacks), 2 * n_joints, fallbacks[0].split(":")[0], TAICHI_RIDGE)
    # the optional, labelled Euclidean variant (never compared with the paper's tables)
    l2 = [float(np.linalg.norm(pred_t[vt[:, j], j] - yt[vt[:, j], j], axis=1).mean())
          for j in range(n_joints) if vt[:, j].any()]
    extras = {"n_fit": int(len(xf)), "n_test": int(len(xt)), "targets": len(scores),
              "missing_fit_values": int((~vf).sum() * 2), "missing_test_values": int((~vt).sum() * 2),
              "taichi_l2": float(np.sum(l2))}
    if skipped:
        extras["targets_without_test_rows"] = skipped
    return ProtocolResult("taichi", "taichi_mae", "Taichi MAE (sum of per-coordinate L1, px @256)",
                          float(np.sum(scores)), False,
                          {"feature_scale": TAICHI_FEATURE_SCALE, "bias": True, "ridge_fallback": TAICHI_RIDGE},
                          extras, fallbacks)


# -- Human3.6M -------------------------------------------------------------------------------------------------


def h36m(fit: EvalSplit, test: EvalSplit, swap_table: str = "reference") -> ProtocolResult:
    """Mean normalised L2 ×100 with the left/right swap loop and 3-std outlier removal (no bias)."""
    _check(fit, test)
    if swap_table not in ("reference", "fixed"):
        raise DkpError("h36m swap table must be reference or fixed")
    n_joints = fit.gt.shape[1]
    if n_joints != 32:
        raise DkpError(f"h36m protocol expects the 32 Human3.6M joints, the labels have {n_joints}")
    pairs = H36M_PAIRS_REFERENCE if swap_table == "reference" else H36M_PAIRS_FIXED
    value, extras, fallbacks = _l2_swap_protocol(fit, test, swap_index(pairs, n_joints), "h36m")
    return ProtocolResult("h36m", "h36m_l2x100", "H36M mean L2 ×100 (normalised by image size)", value, False,
                          {"swap_table": swap_table, "bias": False, "outlier_stds": OUTLIER_STDS}, extras,
                          fallbacks)


# -- DeepFashion -----------------------------------------------------------------------------------------------


def pck(pred: np.ndarray, gt: np.ndarray, visible: np.ndarray, threshold: float) -> float:
    """% of visible (image, joint) pairs with Euclidean error strictly below ``threshold``."""
    dist = np.linalg.norm(np.asarray(pred, dtype=np.float64) - np.asarray(gt, dtype=np.float64), axis=2)
    return float((dist[visible] < threshold).mean() * 100.0)


def deepfashion(fit: EvalSplit, test: EvalSplit) -> ProtocolResult:
    """PCK: % of (image, joint) pairs within strictly less than 6 px at 256 px, one no-bias multi-output fit."""
    _check(fit, test)
    xf = _design(fit, DEEPFASHION_FEATURE_SCALE)
    xt = _design(test, DEEPFASHION_FEATURE_SCALE)
    yf = np.asarray(fit.gt, dtype=np.float64) * (PIXEL_FRAME / fit.label_scale)
    yt = np.asarray(test.gt, dtype=np.float64) * (PIXEL_FRAME / test.label_scale)
    lf = least_squares(xf, yf.reshape(len(yf), -1), ridge=DEEPFASHION_RIDGE, what="deepfashion")
    pred = lf.predict(xt).reshape(yt.shape)
    vt = _visible(test)
    if not vt.any():
        raise DkpError("deepfashion: no labelled joints in the test split")
    value = pck(pred, yt, vt, DEEPFASHION_PCK_PX)
    extras = {"n_fit": int(len(xf)), "n_test": int(len(xt)), "pairs": int(vt.sum()),
              "mean_px_error": float(np.linalg.norm(pred - yt, axis=2)[vt].mean())}
    return ProtocolResult("deepfashion", "deepfashion_pck6", "DeepFashion PCK (< 6 px @256), %", value, True,
                          {"feature_scale": DEEPFASHION_FEATURE_SCALE, "bias": False,
                           "threshold_px": DEEPFASHION_PCK_PX, "ridge_fallback": DEEPFASHION_RIDGE},
                          extras, [f"deepfashion: {lf.fallback}"] if lf.fallback else [])


# -- synthetic -------------------------------------------------------------------------------------------------

_TOKEN = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")
_SIDES = {"left": "l", "l": "l", "right": "r", "r": "r"}


def _side_key(name: str) -> tuple[str, str] | None:
    """('l' | 'r', rest) for names such as left_knee, l_knee, LeftKnee, LKnee, knee_l; None for unsided names."""
    tokens = [t.lower() for t in _TOKEN.findall(name)]
    if len(tokens) < 2:
        return None
    if tokens[0] in _SIDES:
        return _SIDES[tokens[0]], "_".join(tokens[1:])
    if tokens[-1] in _SIDES:
        return _SIDES[tokens[-1]], "_".join(tokens[:-1])
    return None


def lr_pairs(joint_names: Sequence[str]) -> list[tuple[int, int]]:
    """Left/right joint pairs found by name (the synthetic skeleton's L/R joints); the swap table of its loop."""
    keys = {i: _side_key(n) for i, n in enumerate(joint_names)}
    left = {k[1]: i for i, k in keys.items() if k and k[0] == "l"}
    right = {k[1]: i for i, k in keys.items() if k and k[0] == "r"}
    return sorted((left[r], right[r]) for r in left.keys() & right.keys())


def on_figure_fraction(keypoints: np.ndarray, masks: np.ndarray) -> float:
    """Fraction of detected keypoints whose nearest mask pixel is on the figure.

    (y, x) in [-1, 1] map to pixel centres as in the edge maps: ±1 are the centres of the border pixels.
    """
    kp = np.asarray(keypoints, dtype=np.float64)
    n, h, w = masks.shape
    if kp.shape[0] != n:
        raise DkpError(f"{kp.shape[0]} detections for {n} masks")
    rows = np.clip(np.rint((kp[..., 0] + 1.0) * 0.5 * (h - 1)), 0, h - 1).astype(np.int64)
    cols = np.clip(np.rint((kp[..., 1] + 1.0) * 0.5 * (w - 1)), 0, w - 1).astype(np.int64)
    hits = np.asarray(masks)[np.arange(n)[:, None], rows, cols] > 0
    return float(hits.mean())


def synthetic(fit: EvalSplit, test: EvalSplit, pairs: Sequence[tuple[int, int]] = ()) -> ProtocolResult:
    """The H36M-style normalised L2 ×100 (u features, no bias, swap loop over the skeleton's L/R pairs, 3-std
    outlier removal), plus the fraction of detected test keypoints on the figure mask."""
    _check(fit, test)
    index = swap_index(pairs, fit.gt.shape[1])
    value, extras, fallbacks = _l2_swap_protocol(fit, test, index, "synthetic")
    if test.masks is not None and test.keypoints is not None:
        extras["on_figure"] = on_figure_fraction(test.keypoints, test.masks)
    return ProtocolResult("synthetic", "synthetic_l2x100", "synthetic mean L2 ×100 (normalised by image size)",
                          value, False, {"swap_pairs": [list(p) for p in pairs], "bias": False,
                                         "outlier_stds": OUTLIER_STDS}, extras, fallbacks)


# -- your own labelled footage -----------------------------------------------------------------------------------


def folder(fit: EvalSplit, test: EvalSplit, pck: float = 0.1, ridge: float | None = None) -> ProtocolResult:
    """Mean joint error ×100 of the frame size (the value), in original pixels, and PCK at ``pck`` of the frame
    size; the regression is the named-joints map of ``dkp_tui.eval.joints`` (per joint, with bias, on the frames
    where it is labelled). Labels are in stored pixels (``label_scale`` = the size), as `prepare folder
    --labels` and the synthetic sets store them; ``geometry`` brings the error back to original pixels."""
    from dkp_tui.eval import joints

    _check(fit, test)
    if not 0.0 < pck < 1.0:
        raise DkpError(f"--pck {pck}: a fraction of the frame size, in (0, 1)")
    ridge = joints.RIDGE if ridge is None else ridge
    size = float(test.label_scale)
    n_test = len(test.gt)
    geo = test.geometry if test.geometry is not None else np.tile([0.0, 0.0, size, size], (n_test, 1))
    vf, vt = _visible(fit), _visible(test)
    m = joints.fit_map(fit.keypoints, np.asarray(fit.gt) * (size / fit.label_scale), vf, ridge)
    pred = m.predict(test.keypoints, n_test)
    s = joints.score(pred, test.gt, vt, geo, int(round(size)), pck)
    extras = {"px_error": s["px"], "pck": s["pck"], "pairs": s["pairs"], "n_fit": int(len(fit.gt)),
              "n_test": n_test, "missing_fit_joints": int((~vf).sum()), "missing_test_joints": int((~vt).sum())}
    return ProtocolResult("folder", "folder_l2x100", "mean joint error ×100 of the frame size", s["l2x100"], False,
                          {"pck": pck, "ridge": ridge, "bias": True}, extras)


# -- dispatch --------------------------------------------------------------------------------------------------


def protocol_for(kind: str, requested: str = "auto") -> str:
    """The protocol to use: the requested one, or the data set's own (``auto``). A folder set's labels are the
    user's own joints, which no paper protocol's constants fit, so it is always scored with ``folder`` (a preset's
    ``eval.protocol = "synthetic"`` then still works with ``--data`` a folder set)."""
    if kind == "folder":
        return "folder"
    if requested != "auto":
        if requested not in PROTOCOLS:
            raise DkpError(f"unknown protocol {requested!r} (choose {', '.join(PROTOCOLS)})")
        return requested
    if kind in PROTOCOLS:
        return kind
    raise DkpError(f"data sets of kind {kind!r} have no keypoint labels, so there is no protocol to score; "
                   f"evaluate on a labelled set with --data, or use `dkp infer`")


def run_protocol(name: str, fit: EvalSplit, test: EvalSplit, *, swap_table: str = "reference",
                 pairs: Sequence[tuple[int, int]] = (), pck: float = 0.1) -> ProtocolResult:
    if name == "taichi":
        return taichi(fit, test)
    if name == "h36m":
        return h36m(fit, test, swap_table)
    if name == "deepfashion":
        return deepfashion(fit, test)
    if name == "synthetic":
        return synthetic(fit, test, pairs)
    if name == "folder":
        return folder(fit, test, pck)
    raise DkpError(f"unknown protocol {name!r} (choose {', '.join(PROTOCOLS)})")


# -- the mean-pose reference -----------------------------------------------------------------------------------


def mean_pose(name: str, fit: EvalSplit, test: EvalSplit, *, swap_table: str = "reference",
              pairs: Sequence[tuple[int, int]] = (), pck: float = 0.1) -> ProtocolResult:
    """What predicting one constant pose, the fit split's mean, for every test image scores under ``name``.

    It is the protocol itself run without detections (see ``_design``): the same label units, missing joints,
    swap loops and outlier trimming, so it is the floor a model must beat to have learned anything about the
    pose. A detector whose keypoints never move scores the same (up to the ridge fallbacks' tiny shrinkage).
    """

    def labels_only(s: EvalSplit) -> EvalSplit:
        return EvalSplit(None, s.gt, s.visible, None, s.label_scale, s.geometry)

    return run_protocol(name, labels_only(fit), labels_only(test), swap_table=swap_table, pairs=pairs, pck=pck)


def perfect_score(higher_is_better: bool) -> float:
    """The best value a protocol can report: 0 for the errors, 100 for the percentages (PCK)."""
    return 100.0 if higher_is_better else 0.0


def skill_formula(higher_is_better: bool) -> str:
    """How ``skill`` is computed, for table headers."""
    return "(pck − mean pose) / (100 − mean pose)" if higher_is_better else "1 − error / mean-pose error"


def skill(value: float | None, reference: float | None, higher_is_better: bool) -> float | None:
    """Keypoint skill: (value - reference) / (perfect - reference), the mean pose being the reference.

    0 at the mean pose, 1 at a perfect score, negative when worse than the mean pose. For an error this is
    ``1 - error / mean-pose error``; for PCK ``(pck - pck_mean) / (100 - pck_mean)``. None where undefined.
    """
    if value is None or reference is None:
        return None
    span = perfect_score(higher_is_better) - float(reference)
    if span == 0 or not np.isfinite(span) or not np.isfinite(value):
        return None
    return (float(value) - float(reference)) / span
