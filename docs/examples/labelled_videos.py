"""Make a small "own footage" example: a few short videos of moving figures and a COCO file labelling some frames.

    python docs/examples/labelled_videos.py videos/ labels.json

Each clip is one synthetic figure (dkp's generator, cluttered background) whose pose, size and place change
smoothly over time in front of a still background: every random draw of the figure is replaced by a value that
drifts along a slow sine (its own period of 3-6 s and phase), so that joints move continuously, as in real
footage, and temporal filtering (`dkp infer --smooth`) has something to work on. Frames are padded to a wide
frame, scaled up 2x and written as mp4 clips at 10 fps; every ``--label-every``-th frame is labelled with the
figure's 16 joints, as a labelling tool (CVAT, Label Studio) would export them: COCO keypoints, x, y, v in pixels
of the video frame, frames named ``clip<k>.mp4#<frame>``, the 1-based skeleton in ``categories[0]``. With
``--truth FILE`` every frame's joints are also written (the same COCO form), for scoring trajectories. It stands
in for your own videos in the README's "Your own videos" walk-through.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from dkp_tui.data.synthetic import DEFAULT, JOINT_NAMES, SKELETON, render_sample

PAD = 10  # columns of background added each side: the stored centre crop cuts them off again
SCALE = 2
FPS = 10.0
SIZE = 64
DRIFT = 0.2  # how far (of each draw's range) a drifting draw swings either side of its base value
PERIOD_S = (3.0, 6.0)  # each draw's own period


class Drift:
    """Stands in for the figure's ``numpy.random.Generator``: ``uniform`` draws drift smoothly with the time ``t``
    (each call its own base value, period and phase, the same in every frame because the calls come in the same
    order), ``random`` and ``integers`` draws (choices: sleeves, textures, hues) stay fixed, so that the figure
    keeps its clothes while it moves."""

    def __init__(self, seed: int, t: float) -> None:
        self._fixed = np.random.default_rng(seed)
        self._motion = np.random.default_rng(seed + 1)
        self._t = t

    def uniform(self, low: Any = 0.0, high: Any = 1.0, size: Any = None) -> Any:
        base = self._fixed.random(size)
        period = self._motion.uniform(*PERIOD_S, size)
        phase = self._motion.uniform(0.0, 2.0 * np.pi, size)
        u = base + DRIFT * np.sin(2.0 * np.pi * self._t / period + phase)
        u = np.abs(np.mod(u + 1.0, 2.0) - 1.0)  # folded back into [0, 1] (a mirror at each end keeps it smooth)
        return low + (np.asarray(high) - low) * u if size is not None else float(low + (high - low) * u)

    def random(self, size: Any = None) -> Any:
        return self._fixed.random(size)

    def integers(self, *args: Any, **kwargs: Any) -> Any:
        return self._fixed.integers(*args, **kwargs)


class Clip:
    """The top-level generator ``render_sample`` splits: a drifting figure, a still wall and still clutter."""

    def __init__(self, seed: int, t: float) -> None:
        self._seed, self._t = seed, t

    def spawn(self, n: int) -> list[Any]:
        wall, clutter = np.random.default_rng(self._seed).spawn(2)
        return [Drift(self._seed + 7, self._t), wall, clutter][:n]


def frame_xy(joints_yx: np.ndarray) -> np.ndarray:
    """Stored (y, x) joints of the 64-px render -> (x, y) pixels of the padded, scaled video frame."""
    y, x = joints_yx[:, 0], joints_yx[:, 1] + PAD
    return np.stack([(x + 0.5) * SCALE - 0.5, (y + 0.5) * SCALE - 0.5], axis=-1)


def coco(frames: list[tuple[str, np.ndarray]], w: int, h: int) -> dict[str, Any]:
    images, annotations = [], []
    for name, xy in frames:
        image_id = len(images) + 1
        images.append({"id": image_id, "file_name": name, "width": w, "height": h})
        kp = [v for px, py in xy.tolist() for v in (round(px, 3), round(py, 3), 2)]
        annotations.append({"id": image_id, "image_id": image_id, "category_id": 1, "keypoints": kp,
                            "num_keypoints": len(xy)})
    return {"images": images, "annotations": annotations,
            "categories": [{"id": 1, "name": "figure", "keypoints": list(JOINT_NAMES),
                            "skeleton": [[a + 1, b + 1] for a, b in SKELETON]}]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("videos", type=Path, help="folder to write the clips to")
    ap.add_argument("labels", type=Path, help="COCO keypoints JSON to write")
    ap.add_argument("--clips", type=int, default=5)
    ap.add_argument("--frames", type=int, default=40, help="frames per clip")
    ap.add_argument("--label-every", type=int, default=2, help="label every N-th frame")
    ap.add_argument("--truth", type=Path, help="also write every frame's joints here (COCO)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    args.videos.mkdir(parents=True, exist_ok=True)
    h, w = SIZE * SCALE, (SIZE + 2 * PAD) * SCALE
    labelled, truth = [], []
    for c in range(args.clips):
        name = f"clip{c}.mp4"
        writer = cv2.VideoWriter(str(args.videos / name), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (w, h))
        for k in range(args.frames):
            sample = render_sample(Clip(1000 * args.seed + c, k / FPS), SIZE, "cluttered", DEFAULT)  # type: ignore[arg-type]
            frame = np.pad(sample.rgb, ((0, 0), (PAD, PAD), (0, 0)), mode="edge")
            frame = cv2.resize(frame, (w, h), interpolation=cv2.INTER_NEAREST)
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
            xy = frame_xy(np.asarray(sample.joints, dtype=np.float64))
            truth.append((f"{name}#{k}", xy))
            if k % args.label_every == 0:
                labelled.append((f"{name}#{k}", xy))
        writer.release()
    args.labels.write_text(json.dumps(coco(labelled, w, h)), encoding="utf-8")
    if args.truth is not None:
        args.truth.write_text(json.dumps(coco(truth, w, h)), encoding="utf-8")
    print(f"{args.clips} clips of {args.frames} frames ({w}x{h}, {FPS:g} fps) in {args.videos}; {len(labelled)} "
          f"labelled frames in {args.labels}")


if __name__ == "__main__":
    main()
