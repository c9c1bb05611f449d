"""A labelling job from `dkp outliers`' picks: a SLEAP project, the frames as PNGs, and a JSON list.

``job.slp`` references the user's own videos (their images as one image sequence) with the picks as SLEAP
suggestions (its "label these next" list) and the model's points on them as predicted instances to correct, so
the labels saved from SLEAP name the original frames and `dkp prepare folder --labels job.slp` finds them in the
source folder. ``frames/<source stem>-<frame>.png`` are the same frames for tools that label images, and
``picks.json`` lists each pick with its scores, and under ``review`` the labelled frames whose labels the
regression of the model's keypoints misses most (check those labels).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from dkp_tui.extras import require
from dkp_tui.inference.outliers import Pick, Review

JOB = "job.slp"
FRAMES = "frames"
PICKS = "picks.json"


def _frame_image(source: str, frame: int) -> Any:
    from dkp_tui.data.images import is_video
    from dkp_tui.inference.infer import read_image

    if not is_video(Path(source)):
        return read_image(Path(source))
    import cv2

    cap = cv2.VideoCapture(source)
    try:
        cap.set(cv2.CAP_PROP_POS_FRAMES, frame)
        ok, bgr = cap.read()
    finally:
        cap.release()
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB) if ok else None


def _num(value: float, digits: int) -> float | None:
    return round(value, digits) if math.isfinite(value) else None


def write_job(meta: dict[str, Any], frames: list[dict[str, Any]], picks: list[Pick], out: Path,
              stride: int = 1, to_review: list[Review] | None = None) -> dict[str, Any]:
    """Write the job into ``out`` (each file complete or absent); returns the summary `--json` prints."""
    from dkp_tui.atomic import atomic_path, write_json
    from dkp_tui.inference.predictions_sleapio import to_labels
    from dkp_tui.viz import save_png

    sio = require("sleap_io", extra="labels")
    out.mkdir(parents=True, exist_ok=True)
    chosen = [frames[p.index] for p in picks]
    labels = to_labels(meta, chosen)
    for lf in labels.labeled_frames:
        labels.suggestions.append(sio.SuggestionFrame(video=lf.video, frame_idx=lf.frame_idx))
    with atomic_path(out / JOB, suffix=".slp") as tmp:
        tmp.unlink()
        sio.save_slp(labels, str(tmp))
    (out / FRAMES).mkdir(exist_ok=True)
    listed = []
    for p in picks:
        image = _frame_image(p.source, p.frame)
        png = out / FRAMES / f"{Path(p.source).stem}-{p.frame:06d}.png"
        if image is not None:
            save_png(str(png), image)
        listed.append({"source": p.source, "frame": p.frame, "image": str(png), "score": round(p.score, 4),
                       "low_confidence": round(p.low_confidence, 4), "jump": round(p.jump, 5),
                       "residual": _num(p.residual, 5)})
    reviewed = [{"source": r.source, "frame": r.frame, "residual": round(r.residual, 5),
                 "residual_px": round(r.residual_px, 2)} for r in to_review or []]
    summary = {"job": str(out / JOB), "frames": str(out / FRAMES), "n": len(picks), "scored": len(frames),
               "stride": stride, "picks": listed, "review": reviewed}
    write_json(out / PICKS, summary)
    return summary
