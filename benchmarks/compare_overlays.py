"""Keypoint overlays of several runs on the same test images, one row per run (the figure in docs/results.md).

    python benchmarks/compare_overlays.py DATASET OUT.png RUN [RUN ...] [--n 6]

Teachers are drawn on the depth maps they see, students on RGB; the learned skeleton (strong edges) is drawn too.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from dkp_tui.data.loader import eval_batches
from dkp_tui.eval.predict import load_detector, load_edge_weights
from dkp_tui.train.samples import to_uint8
from dkp_tui.viz import draw_keypoints, image_grid, save_png, strong_edges


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset")
    parser.add_argument("out")
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--n", type=int, default=6)
    args = parser.parse_args()
    rows: list[np.ndarray] = []
    for run in args.runs:
        detector, cfg, meta = load_detector(run, "cpu")
        kind = "depth" if meta.get("role") == "teacher" else "rgb"
        images, _ = next(iter(eval_batches(args.dataset, "test", cfg.model.image_size, batch_size=args.n, kind=kind)))
        with torch.no_grad():
            keypoints = detector(images).keypoints.numpy()
        edges = strong_edges(load_edge_weights(run))
        scale = max(1, 128 // cfg.model.image_size)
        rows.extend(draw_keypoints(im, kp, edges, scale=scale) for im, kp in zip(to_uint8(images), keypoints,
                                                                                 strict=True))
    save_png(args.out, image_grid(rows, ncols=args.n))
    print(f"wrote {args.out}: rows = {', '.join(args.runs)}")


if __name__ == "__main__":
    main()
