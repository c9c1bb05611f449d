"""Do a freshly initialised detector's keypoints follow the figure? On depth yes, on RGB no (docs/results.md).

AutoLink starts learning only if the first, random lines sometimes fall where they help the reconstruction. This
script measures, for detectors at their random initialisation (no training), how well the mean keypoint of each
image follows the figure's mask centroid (Pearson correlation over images, averaged over y and x) and the fraction
of keypoints on the mask, for the RGB input and for the depth input of the same test images.

    dkp prepare synthetic --preset synthetic-cpu --background clean --out data/synthetic-clean
    python benchmarks/init_keypoints.py data/synthetic-clean --seeds 3
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from dkp_tui.config import load_config
from dkp_tui.data.loader import depth_to_tensor, images_to_tensor
from dkp_tui.formats.dataset_dir import read_manifest
from dkp_tui.formats.depth_cache import open_depth
from dkp_tui.model.detector import Detector


def follow_figure(keypoints: torch.Tensor, masks: np.ndarray) -> tuple[float, float]:
    """(correlation of the mean keypoint with the mask centroid, fraction of keypoints on the mask)."""
    size = masks.shape[-1]
    centroid = np.stack([np.argwhere(m).mean(0) for m in masks]) / (size - 1) * 2 - 1  # (B, 2) as (y, x)
    mean_kp = keypoints.mean(1).numpy()  # (B, 2) as (y, x)
    corr = float(np.mean([np.corrcoef(mean_kp[:, j], centroid[:, j])[0, 1] for j in (0, 1)]))
    px = ((keypoints + 1) / 2 * (size - 1)).round().long().clamp(0, size - 1).numpy()
    on = float(np.mean([masks[i, px[i, :, 0], px[i, :, 1]].mean() for i in range(len(px))]))
    return corr, on


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset")
    parser.add_argument("--preset", default="synthetic-cpu")
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()

    cfg = load_config(args.preset).model
    manifest = read_manifest(args.dataset)
    n = min(args.images, manifest.splits["test"].count)
    root = f"{args.dataset}/test"
    masks = np.load(f"{root}/masks.npy", mmap_mode="r")[:n].astype(bool)
    rgb = images_to_tensor(np.load(f"{root}/images.npy", mmap_mode="r")[:n], cfg.image_size)
    depth = depth_to_tensor(open_depth(args.dataset, "test")[:n], cfg.image_size, channels=3)
    print(f"{n} test images of {args.dataset}, detector of {args.preset} at its random initialisation")
    print(f"{'seed':>4}  {'input':<5}  {'corr(mean keypoint, centroid)':>29}  {'on figure':>9}")
    for seed in range(args.seeds):
        torch.manual_seed(seed)
        detector = Detector(cfg.n_keypoints, width=cfg.width, image_size=cfg.image_size).eval()
        for name, x in (("rgb", rgb), ("depth", depth)):
            with torch.no_grad():
                corr, on = follow_figure(detector(x).keypoints, masks)
            print(f"{seed:>4}  {name:<5}  {corr:>29.2f}  {on:>9.3f}")


if __name__ == "__main__":
    main()
