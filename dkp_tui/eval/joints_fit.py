"""`dkp joints fit`: the folder protocol's regression of one run, kept as a joints file `dkp infer` applies.

The map is fitted on the data set's fit split exactly as `dkp eval` fits it (so on the test frames it predicts
with the error `dkp eval` reports) and converted to pixels of the detector's S x S input (the data set may be
stored at another size); a k-fold cross-validated error on the fit frames says what to expect on new frames
without spending the test split. Frames from videos are cross-validated by whole clip (``joints.cv_groups``: a
held-out frame's neighbours in its clip would otherwise be in the fit and flatter the score several-fold), still
images by frame; the summary's ``cv.by`` says which.
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


def fit_run_joints(req: EvalRequest, out: str | Path, folds: int = joints.CV_FOLDS) -> dict[str, Any]:
    """Fit, cross-validate and save; returns the summary ``--json`` prints."""
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
    m = joints.fit_map(fit.keypoints, gt, vf, joints.RIDGE, list(manifest.joint_names))
    pck = float(record["options"].get("pck", joints.DEFAULT_PCK))
    geo_fit = fit.geometry if fit.geometry is not None else np.tile([0.0, 0.0, size, size], (len(gt), 1))
    groups, _ = joints.cv_groups(fit.names)
    cv = joints.cross_validate(fit.keypoints, gt, vf, geo_fit, int(round(size)), folds, joints.RIDGE, pck,
                               groups=groups)
    model_size = int(record["options"]["image_size"])
    saved = rescale_map(m, model_size / size)
    saved.skeleton = [tuple(e) for e in manifest.skeleton]
    saved.image_size = model_size
    test_scores = {"px": record["extras"]["px_error"], "l2x100": record["value"], "pck": record["extras"]["pck"]}
    saved.meta = {"run": record["run"], "role": str(record.get("role")), "input": record["input"],
                  "dataset": record["dataset"], "manifest_hash": record["manifest_hash"], "n_fit": len(gt),
                  "ridge": joints.RIDGE, "pck": pck, "cv": cv, "test": test_scores,
                  "mean_pose_test": (record.get("mean_pose") or {}).get("extras", {})}
    save_map(out, saved)
    return {"out": str(out), "joint_names": saved.joint_names, "skeleton": [list(e) for e in saved.skeleton],
            "n_keypoints": saved.n_keypoints, "image_size": model_size, "n_fit": len(gt), "cv": cv,
            "test": test_scores, "mean_pose": record.get("mean_pose"), "run": record["run"],
            "dataset": record["dataset"]}
