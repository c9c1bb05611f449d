"""Taichi (TaiChi-HD) in the reference layout, planned as a dkp data set.

```
<root>/train/<clip>/<frame>.png          per-clip frame folders (load_videos.py names them "<id>#<start>#<end>.mp4/")
<root>/train/<clip>.mp4                  or whole clips as video files (every frame, decoded with OpenCV)
<root>/landmark/taichi_{train,test}_gt.pkl        (also landmarks/, or a .json copy of either)
<root>/eval_images/taichi-256/{train,test}/<file_name>
```

Splits: ``train`` = the clip frames (unlabelled; the training set), ``fit`` = the 5,000 frames of
``taichi_train_gt`` with their labels, ``test`` = the 300 frames of ``taichi_test_gt``. Labels stay in the
source's units (pixels of the 256-px eval frame, ``label_scale`` 256) in (y, x) order, with the -1 of a missing
joint kept and ``visible`` False; frames are stored at the data set's size (128 by default), which is what the
protocol feeds the detector. The ground truth is read with the restricted unpickler and kept as JSON copies
under ``labels/``.
"""

from __future__ import annotations

from pathlib import Path

from dkp_tui.data import images as im
from dkp_tui.data.prepare_common import Frame, Plan, Problem, Reporter, SplitPlan, read_lines, source_root
from dkp_tui.data.safe_pickle import KNOWN_SHA256, TaichiGT, read_taichi_gt
from dkp_tui.errors import DkpError

# OpenPose COCO-18 order (inferred from the coordinates; no source states it)
TAICHI_JOINTS = ("nose", "neck", "r_shoulder", "r_elbow", "r_wrist", "l_shoulder", "l_elbow", "l_wrist", "r_hip",
                 "r_knee", "r_ankle", "l_hip", "l_knee", "l_ankle", "r_eye", "l_eye", "r_ear", "l_ear")
TAICHI_SKELETON = ((0, 1), (1, 2), (2, 3), (3, 4), (1, 5), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (1, 11),
                   (11, 12), (12, 13), (0, 14), (14, 16), (0, 15), (15, 17))
EVAL_FRAME = 256  # the ground truth is in pixels of the 256-px eval frames
PAPER_TRAIN_CLIPS = 2673
GT_DIRS = ("landmark", "landmarks")


def find_gt(root: Path, which: str) -> Path:
    """``landmark/taichi_<which>_gt.pkl`` (AutoLink's folder), ``landmarks/`` (the source repo's) or a .json copy."""
    for d in GT_DIRS:
        for ext in (".pkl", ".json"):
            p = root / d / f"taichi_{which}_gt{ext}"
            if p.is_file():
                return p
    raise DkpError(f"{root}: no landmark/taichi_{which}_gt.pkl (nor landmarks/, nor a .json copy); the ground "
                   f"truth comes from AliaksandrSiarohin/motion-cosegmentation")


def list_clips(train_dir: Path) -> list[Path]:
    """Clip folders and clip videos, in natural order (hidden entries and other files ignored)."""
    entries = [p for p in train_dir.iterdir() if not p.name.startswith(".")]
    clips = [p for p in entries if p.is_dir() or (p.is_file() and im.is_video(p))]
    return sorted(clips, key=lambda p: im.natural_key(p.name))


def select_clips(clips: list[Path], wanted: list[str], train_dir: Path) -> tuple[list[Path], list[Problem]]:
    """The clips a --clips-from list names (by full name or without its extension), in the list's order."""
    lookup: dict[str, Path] = {}
    for c in clips:
        lookup.setdefault(c.name, c)
        lookup.setdefault(c.name.rsplit(".", 1)[0] if "." in c.name else c.name, c)
    chosen: list[Path] = []
    problems: list[Problem] = []
    seen: set[Path] = set()
    for name in dict.fromkeys(wanted):
        clip = lookup.get(name) or lookup.get(name.rsplit(".", 1)[0])
        if clip is None:
            problems.append(Problem(str(train_dir / name), "clip listed in --clips-from is not in train/", "train"))
        elif clip not in seen:
            seen.add(clip)
            chosen.append(clip)
    return chosen, problems


def _clip_frames(clip: Path, train_dir: Path, split: SplitPlan, problems: list[Problem]) -> None:
    rel = clip.relative_to(train_dir).as_posix()
    if clip.is_dir():
        files = sorted((p for p in clip.iterdir() if p.is_file() and im.is_image(p) and not p.name.startswith(".")),
                       key=lambda p: im.natural_key(p.name))
        if not files:
            problems.append(Problem(str(clip), "clip folder holds no frames", "train"))
        split.frames.extend(Frame(f"{rel}/{f.name}", str(f)) for f in files)
        return
    try:
        info = im.video_info(clip)
    except im.BadInput as err:
        problems.append(Problem(str(clip), str(err), "train"))
        return
    split.frames.extend(Frame(f"{rel}#{k}", str(clip), video_index=k) for k in range(info.frames))


def _eval_split(gt: TaichiGT, image_dir: Path) -> SplitPlan:
    frames = [Frame(name, str(image_dir / name)) for name in gt.file_names]
    return SplitPlan(frames=frames, keypoints=gt.keypoints_yx(), visible=gt.visible(), label_scale=EVAL_FRAME,
                     source_size=EVAL_FRAME, crop="none")


def _gt_facts(gt: TaichiGT, path: Path) -> dict[str, object]:
    return {"file": str(path), "sha256": gt.sha256, "published": gt.sha256 in KNOWN_SHA256, "frames": len(gt),
            "missing_values": gt.missing_values}


def plan_taichi(root: str | Path, clips_from: str | Path | None = None, gt_train: str | Path | None = None,
                gt_test: str | Path | None = None, reporter: Reporter | None = None) -> Plan:
    """Find the clips, read the ground truth safely and list every frame of the three splits."""
    root = source_root(root, "the Taichi data root")
    reporter = reporter or Reporter(enabled=False)
    train_dir = root / "train"
    if not train_dir.is_dir():
        raise DkpError(f"{root}: no train/ folder (one frame folder or .mp4 per clip)")
    eval_dir = root / "eval_images" / "taichi-256"
    for which in ("train", "test"):
        if not (eval_dir / which).is_dir():
            raise DkpError(f"{eval_dir / which}: missing folder (the eval frames come as eval_images.tar.gz, "
                           f"linked from the motion-cosegmentation README)")
    gt_paths = {"train": Path(gt_train) if gt_train else find_gt(root, "train"),
                "test": Path(gt_test) if gt_test else find_gt(root, "test")}
    gts = {which: read_taichi_gt(p) for which, p in gt_paths.items()}

    clips = list_clips(train_dir)
    problems: list[Problem] = []
    inputs = [str(p) for p in gt_paths.values()]
    if clips_from is not None:
        clips, problems = select_clips(clips, read_lines(clips_from), train_dir)
        inputs.append(str(clips_from))
    if not clips:
        raise DkpError(f"{train_dir}: no clips (expected one folder of frames or one video file per clip)")
    train = SplitPlan(crop="center")
    with reporter.task(f"scanning {len(clips)} clips", len(clips)) as advance:
        for clip in clips:
            _clip_frames(clip, train_dir, train, problems)
            advance(1)

    notes = [w for gt in gts.values() for w in gt.warnings]
    notes.append(f"taichi: {len(clips)} train clips ({len(train.frames)} frames; the paper used "
                 f"{PAPER_TRAIN_CLIPS}), fit {len(gts['train'])} and test {len(gts['test'])} labelled frames")
    return Plan(
        kind="taichi",
        root=root,
        splits={"train": train, "fit": _eval_split(gts["train"], eval_dir / "train"),
                "test": _eval_split(gts["test"], eval_dir / "test")},
        joint_names=list(TAICHI_JOINTS),
        skeleton=list(TAICHI_SKELETON),
        source={"clips": [c.name for c in clips], "n_clips": len(clips), "paper_train_clips": PAPER_TRAIN_CLIPS,
                "clips_from": str(clips_from) if clips_from else None,
                "gt": {w: _gt_facts(gt, gt_paths[w]) for w, gt in gts.items()},
                "label_units": "pixels of the 256-px eval frame, (y, x); -1 = missing (visible False)",
                "options": {}},
        inputs=inputs,
        problems=problems,
        notes=notes,
        extra_json={f"labels/taichi_{w}_gt.json": gt.to_json() for w, gt in gts.items()},
    )
