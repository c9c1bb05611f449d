"""Can dkp's detector, at a preset's width, find the joints of a data set when it is *told* where they are?

    python benchmarks/supervised_probe.py DATASET [DATASET ...] [--iterations 1000] [--width 0.125] [--depth]

A diagnostic, not a method: it trains the AutoLink detector (one keypoint per labelled joint, the same
soft-argmax) with an L2 loss on the labels of train[2000:], for as many iterations and at the batch size of the
CPU preset, and scores train[1000:2000] (the validation split of benchmarks/validation_split.py; the test split is
not read). If the supervised detector localises the joints on textured rooms about as well as on plain ones, what
stops the self-supervised student is the signal its reconstruction loss gives, not the detector's capacity at this
width and budget (docs/results.md). ``--depth`` feeds the exact depth maps as grey images instead of RGB.
Scores are mean joint error in % of the image side, beside the constant mean pose of the same frames.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from dkp_tui.formats.dataset_dir import open_split
from dkp_tui.formats.depth_cache import open_depth
from dkp_tui.model.detector import Detector


def _inputs(dataset: str, depth: bool) -> tuple[np.ndarray, np.ndarray, float]:
    split = open_split(dataset, "train")
    if split.keypoints is None:
        raise SystemExit(f"{dataset}: the train split has no labels")
    if depth:
        d = open_depth(dataset, "train", "")[:].astype(np.float32) / 65535.0  # (N, H, W), near = 1
        x = np.repeat(d[:, None] * 2.0 - 1.0, 3, axis=1)
    else:
        x = np.asarray(split.images, dtype=np.float32).transpose(0, 3, 1, 2) / 127.5 - 1.0
    return x, np.asarray(split.keypoints, dtype=np.float32), float(split.info.label_scale)


def _error(pred: np.ndarray, gt: np.ndarray) -> float:
    """Mean Euclidean joint error in % of the image side; both (N, J, 2) in [-1, 1]."""
    return float(np.linalg.norm(pred - gt, axis=-1).mean() / 2.0 * 100.0)


def probe(dataset: str, iterations: int, width: float, batch: int, lr: float, depth: bool, seed: int) -> None:
    x, kp, scale = _inputs(dataset, depth)
    target = kp / (scale / 2.0) - 1.0  # (N, J, 2) (y, x) pixels -> [-1, 1], the soft-argmax's frame
    fit, val = slice(2000, None), slice(1000, 2000)
    torch.manual_seed(seed)
    det = Detector(kp.shape[1], width=width, image_size=x.shape[-1])
    opt = torch.optim.AdamW(det.parameters(), lr=lr, weight_decay=1e-3)
    xs, ts = torch.from_numpy(x[fit]), torch.from_numpy(target[fit])
    gen = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    det.train()
    for _ in range(iterations):
        idx = torch.randint(0, len(xs), (batch,), generator=gen)
        loss = (det(xs[idx]).keypoints - ts[idx]).square().sum(-1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    det.eval()
    with torch.no_grad():
        pred = torch.cat([det(torch.from_numpy(x[val][i:i + 200])).keypoints for i in range(0, 1000, 200)]).numpy()
    mean_pose = np.broadcast_to(target[fit].mean(axis=0), target[val].shape)
    err, ref = _error(pred, target[val]), _error(mean_pose, target[val])
    kind = "depth" if depth else "rgb"
    print(f"{dataset}\t{kind}\tsupervised {err:.2f}\tmean pose {ref:.2f}\t{err / ref:.2f} x\t"
          f"{time.perf_counter() - t0:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("datasets", nargs="+")
    parser.add_argument("--iterations", type=int, default=1000)
    parser.add_argument("--width", type=float, default=0.125)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--depth", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    for dataset in args.datasets:
        probe(dataset, args.iterations, args.width, args.batch, args.lr, args.depth, args.seed)


if __name__ == "__main__":
    main()
