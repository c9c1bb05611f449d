"""Stand in for you labelling a `dkp outliers` job in SLEAP: the true joints of each suggested frame, saved.

    python docs/examples/answer_job.py label-next/job.slp truth.json label-next/labelled.slp

``truth.json`` is the COCO file ``labelled_videos.py --truth`` writes (every frame's joints). Each frame SLEAP
would offer as a suggestion gets a user instance with those joints, as if you had dragged the predicted points
onto the figure and saved; `dkp prepare folder --labels` then reads ``labelled.slp`` as the original video frames.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import sleap_io as sio


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("job", type=Path, help="job.slp from dkp outliers")
    ap.add_argument("truth", type=Path, help="every frame's joints (COCO, from labelled_videos.py --truth)")
    ap.add_argument("out", type=Path, help="the labelled .slp to write")
    args = ap.parse_args()
    doc = json.loads(args.truth.read_text())
    names = {im["id"]: im["file_name"] for im in doc["images"]}
    joint_names = doc["categories"][0]["keypoints"]
    truth = {names[a["image_id"]]: np.array(a["keypoints"], dtype=np.float64).reshape(-1, 3)[:, :2]
             for a in doc["annotations"]}
    labels = sio.load_slp(str(args.job))
    skeleton = sio.Skeleton(nodes=joint_names, edges=[(joint_names[a - 1], joint_names[b - 1])
                                                      for a, b in doc["categories"][0]["skeleton"]], name="figure")
    frames = []
    for s in labels.suggestions:
        key = f"{Path(s.video.filename).name}#{s.frame_idx}"
        frames.append(sio.LabeledFrame(video=s.video, frame_idx=s.frame_idx,
                                       instances=[sio.Instance.from_numpy(truth[key], skeleton=skeleton)]))
    sio.save_slp(sio.Labels(labeled_frames=frames, videos=labels.videos, skeletons=[skeleton]), str(args.out))
    print(f"{len(frames)} suggested frames labelled in {args.out}")


if __name__ == "__main__":
    main()
