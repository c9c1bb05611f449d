"""Make a small "own footage" example: a few short videos and a COCO keypoints file labelling some of their frames.

    python docs/examples/labelled_videos.py videos/ labels.json

The frames are dkp's synthetic figures (cluttered background), padded to a wide 4:3-ish frame and scaled up 2x,
written as mp4 clips at 10 fps; every second frame is labelled with the figure's 16 joints, as a labelling tool
(CVAT, Label Studio) would export them: COCO keypoints, x, y, v in pixels of the video frame, frames named
``clip<k>.mp4#<frame>``, the 1-based skeleton in ``categories[0]``. It stands in for your own videos in the README's
"Your own videos" walk-through.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import cv2
import numpy as np

from dkp_tui.data.synthetic import generate_dataset
from dkp_tui.formats.dataset_dir import open_split, read_manifest

PAD = 10  # columns of background added each side: the stored centre crop cuts them off again
SCALE = 2


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("videos", type=Path, help="folder to write the clips to")
    ap.add_argument("labels", type=Path, help="COCO keypoints JSON to write")
    ap.add_argument("--clips", type=int, default=5)
    ap.add_argument("--frames", type=int, default=40, help="frames per clip")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    n = args.clips * args.frames
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "synthetic"
        generate_dataset(root, size=64, n_train=4, n_fit=n, n_test=4, seed=args.seed, progress=False)
        manifest = read_manifest(root)
        split = open_split(root, "fit", manifest)
        images, keypoints = np.asarray(split.images), np.asarray(split.keypoints, dtype=np.float64)
    args.videos.mkdir(parents=True, exist_ok=True)
    coco_images, annotations = [], []
    h, w = 64 * SCALE, (64 + 2 * PAD) * SCALE
    for c in range(args.clips):
        name = f"clip{c}.mp4"
        writer = cv2.VideoWriter(str(args.videos / name), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (w, h))
        for k in range(args.frames):
            i = c * args.frames + k
            frame = np.pad(images[i], ((0, 0), (PAD, PAD), (0, 0)), mode="edge")
            frame = cv2.resize(frame, (w, h), interpolation=cv2.INTER_NEAREST)
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
            if k % 2 == 0:
                y, x = keypoints[i, :, 0], keypoints[i, :, 1] + PAD
                xy = np.stack([(x + 0.5) * SCALE - 0.5, (y + 0.5) * SCALE - 0.5], axis=-1)
                image_id = len(coco_images) + 1
                coco_images.append({"id": image_id, "file_name": f"{name}#{k}", "width": w, "height": h})
                kp = [v for px, py in xy.tolist() for v in (round(px, 3), round(py, 3), 2)]
                annotations.append({"id": image_id, "image_id": image_id, "category_id": 1, "keypoints": kp,
                                    "num_keypoints": len(xy)})
        writer.release()
    doc = {"images": coco_images, "annotations": annotations,
           "categories": [{"id": 1, "name": "figure", "keypoints": list(manifest.joint_names),
                           "skeleton": [[a + 1, b + 1] for a, b in manifest.skeleton]}]}
    args.labels.write_text(json.dumps(doc), encoding="utf-8")
    print(f"{args.clips} clips of {args.frames} frames ({w}x{h}) in {args.videos}; {len(coco_images)} labelled "
          f"frames in {args.labels}")


if __name__ == "__main__":
    main()
