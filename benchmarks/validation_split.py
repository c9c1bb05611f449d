"""Score runs on a validation split carved from the labelled *train* split, never from test (docs/results.md).

    python benchmarks/validation_split.py DATASET RUN [RUN ...] [--fit 1000] [--val 1000]

The synthetic train split keeps its labels for diagnostics (training never reads them). The regression of the
synthetic protocol is fitted on train[0:fit] and scored on train[fit:fit+val], so that hyper-parameters can be
chosen without looking at the test split. RGB students only (teachers would need the depth cache).
"""

from __future__ import annotations

import argparse

import numpy as np

from dkp_tui.data.layout import open_split, read_manifest
from dkp_tui.eval.evaluate import _pairs
from dkp_tui.eval.protocols import EvalSplit, mean_pose, skill, synthetic
from dkp_tui.inference.predict import load_detector, predict_split


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset")
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--fit", type=int, default=1000)
    parser.add_argument("--val", type=int, default=1000)
    args = parser.parse_args()
    split = open_split(args.dataset, "train")
    pairs = _pairs(read_manifest(args.dataset))
    n = args.fit + args.val
    gt = np.asarray(split.keypoints[:n])
    vis = None if split.visible is None else np.asarray(split.visible[:n])
    vis_fit, vis_val = (None, None) if vis is None else (vis[:args.fit], vis[args.fit:])
    masks = np.asarray(split.masks[:n])
    scale = float(split.info.label_scale)
    reference = mean_pose("synthetic", EvalSplit(None, gt[:args.fit], vis_fit, None, scale),
                          EvalSplit(None, gt[args.fit:], vis_val, None, scale), pairs=pairs).value
    print(f"constant mean pose of train[0:{args.fit}]\tval L2 x100 {reference:.2f}")
    for run in args.runs:
        detector, cfg, _ = load_detector(run)
        kp = predict_split(detector, args.dataset, "train", image_size=cfg.model.image_size, kind="rgb")[:n]
        fit = EvalSplit(kp[:args.fit], gt[:args.fit], vis_fit, None, scale)
        val = EvalSplit(kp[args.fit:], gt[args.fit:], vis_val, masks[args.fit:], scale)
        result = synthetic(fit, val, pairs)
        print(f"{run}\tval L2 x100 {result.value:.2f}\ton figure {result.extras['on_figure']:.2f}"
              f"\tskill {skill(result.value, reference, higher_is_better=False):.2f}")


if __name__ == "__main__":
    main()
