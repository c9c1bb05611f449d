"""`dkp joints fit`: the folder protocol's regression of one run, kept as a joints file `dkp infer` applies.

The map is fitted on the data set's fit split exactly as `dkp eval` fits it (so on the test frames it predicts
with the error `dkp eval` reports) and converted to pixels of the detector's S x S input (the data set may be
stored at another size); a k-fold cross-validated error on the fit frames says what to expect on new frames
without spending the test split. Frames from videos are cross-validated by whole clip (``joints.cv_groups``: a
held-out frame's neighbours in its clip would otherwise be in the fit and flatter the score several-fold), still
images by frame; the summary's ``cv.by`` says which. ``--ridge auto`` picks the ridge with the lowest such error:
frames of one clip are near copies, so a video set has about as many independent samples as clips, often fewer
than the 2K features, and the protocol's negligible ridge then fits the clips rather than the pose.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from dkp_tui.errors import DkpError
from dkp_tui.eval import joints
from dkp_tui.eval.evaluate import EvalRequest, evaluate_with_splits
from dkp_tui.eval.protocols import visible_joints
from dkp_tui.formats.joint_map import JointMap, save_map


def rescale_map(m: JointMap, ratio: float) -> JointMap:
    """The same map with its output in pixels of a frame ``ratio`` times the size (half-pixel centres)."""
    return JointMap(m.weight * ratio, (m.bias + 0.5) * ratio - 0.5, m.joint_names, m.skeleton)


RIDGES = (1e-3, 1e-2, 1e-1, 1.0, 10.0)  # the candidates of ``--ridge auto``


def parse_ridge(text: str) -> float | None:
    """``--ridge``: ``auto`` (None: chosen by cross-validation) or a number > 0."""
    if text.strip().lower() == "auto":
        return None
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 < value < float("inf"):
        raise DkpError(f"--ridge {text!r}: give auto or a number > 0 (default {joints.RIDGE:g})")
    return value


def fit_run_joints(req: EvalRequest, out: str | Path, folds: int = joints.CV_FOLDS,
                   ridge: float | None = joints.RIDGE) -> dict[str, Any]:
    """Fit, cross-validate and save; returns the summary ``--json`` prints. ``ridge`` None: the candidate of
    ``RIDGES`` with the lowest cross-validated error (by clip on video frames), each candidate's in ``ridge_cv``.
    The default is the folder protocol's, so the test scores are `dkp eval`'s."""
    from dkp_tui.eval.protocols import folder
    from dkp_tui.formats.dataset_dir import read_manifest

    out = Path(out)
    if out.suffix != ".safetensors":
        raise DkpError(f"--out {out}: a joints file's name ends in .safetensors")
    if out.is_dir():
        raise DkpError(f"--out {out} is a directory; give a file name ending in .safetensors")
    # the folder protocol's map on any labelled set (a folder set always uses it; synthetic and the paper's sets
    # get it here, their labels in their own frame's pixels)
    req = EvalRequest(req.run, req.data, ['eval.protocol="folder"', *req.overrides], req.device, req.batch_size)
    record, fit, test = evaluate_with_splits(req, save=False)
    manifest = read_manifest(record["dataset"])
    if not manifest.joint_names:
        raise DkpError(f"{record['dataset']}: the labels name no joints")
    size = float(test.label_scale)
    vf = visible_joints(fit)
    gt = np.asarray(fit.gt, dtype=np.float64) * (size / fit.label_scale)
    pck = float(record["options"].get("pck", joints.DEFAULT_PCK))
    geo_fit = fit.geometry if fit.geometry is not None else np.tile([0.0, 0.0, size, size], (len(gt), 1))
    groups, _ = joints.cv_groups(fit.names)
    tried = RIDGES if ridge is None else (ridge,)
    cvs = {r: joints.cross_validate(fit.keypoints, gt, vf, geo_fit, int(round(size)), folds, r, pck, groups=groups)
           for r in tried}
    chosen = min(tried, key=lambda r: cvs[r]["px"])
    cv = cvs[chosen]
    m = joints.fit_map(fit.keypoints, gt, vf, chosen, list(manifest.joint_names))
    model_size = int(record["options"]["image_size"])
    saved = rescale_map(m, model_size / size)
    saved.skeleton = [tuple(e) for e in manifest.skeleton]
    saved.image_size = model_size
    if chosen == joints.RIDGE:
        test_scores = {"px": record["extras"]["px_error"], "l2x100": record["value"], "pck": record["extras"]["pck"]}
    else:  # the folder protocol with this map
        r = folder(fit, test, pck, chosen)
        test_scores = {"px": r.extras["px_error"], "l2x100": r.value, "pck": r.extras["pck"]}
    saved.meta = {"run": record["run"], "role": str(record.get("role")), "input": record["input"],
                  "dataset": record["dataset"], "manifest_hash": record["manifest_hash"], "n_fit": len(gt),
                  "ridge": chosen, "pck": pck, "cv": cv, "test": test_scores,
                  "mean_pose_test": (record.get("mean_pose") or {}).get("extras", {})}
    save_map(out, saved)
    return {"out": str(out), "joint_names": saved.joint_names, "skeleton": [list(e) for e in saved.skeleton],
            "n_keypoints": saved.n_keypoints, "image_size": model_size, "n_fit": len(gt), "cv": cv, "ridge": chosen,
            "ridge_cv": {f"{r:g}": cvs[r]["px"] for r in tried},
            "test": test_scores, "mean_pose": record.get("mean_pose"), "run": record["run"],
            "dataset": record["dataset"]}
