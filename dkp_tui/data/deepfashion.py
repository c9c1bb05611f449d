"""DeepFashion (In-shop subset, the split and AlphaPose keypoints of unsupervised-disentangling) as a dkp data set.

```
<root>/data_{train,test}.csv    header "id,filename"; e.g. WOMEN/Dresses/id_00005746/06_1_front.jpg
<root>/data_{train,test}.json   list of {image_path, keypoints (17 x [x, y] px of the 256-px image), ...}
<root>/img/<filename>           256 x 256 (AutoLink reads img/; the split's README says images/: both work)
```

The reference pairs CSV row i with JSON entry i by position and splits CSV lines on commas; dkp parses the CSV
properly and refuses the set when a filename and the paired ``image_path`` disagree. ``train`` holds the 10,604
training images with their labels and is also the regression ``fit`` split (``same_as``); ``test`` the 1,179.
Labels: pixels of the 256-px image (``label_scale`` 256), (y, x) order, all visible.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np

from dkp_tui.data.prepare_common import Frame, Plan, Problem, SplitPlan, source_root
from dkp_tui.errors import DkpError

COCO17 = ("nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
          "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
          "right_knee", "left_ankle", "right_ankle")
COCO17_SKELETON = ((15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7), (6, 8),
                   (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6))
N_JOINTS = 17
IMAGE_SIZE = 256
IMAGE_DIRS = ("img", "images")


def read_csv_filenames(path: Path) -> list[str]:
    """The ``filename`` column of a split CSV (a real CSV parse: quoted commas survive)."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
    except FileNotFoundError:
        raise DkpError(f"{path}: missing (the split files come from theRealSuperMario/unsupervised-disentangling, "
                       f"branch reproducing_baselines)") from None
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise DkpError(f"{path}: unreadable CSV ({err})") from None
    if not rows:
        raise DkpError(f"{path}: empty")
    header = [h.strip().lower() for h in rows[0]]
    if "filename" not in header:
        raise DkpError(f"{path}: no 'filename' column in the header {rows[0]}")
    col = header.index("filename")
    names = []
    for k, row in enumerate(rows[1:], start=2):
        if not row or not any(c.strip() for c in row):
            continue
        if len(row) <= col or not row[col].strip():
            raise DkpError(f"{path}: line {k} has no filename")
        names.append(row[col].strip())
    return names


def read_label_json(path: Path) -> list[dict[str, Any]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DkpError(f"{path}: missing (it holds the AlphaPose keypoints of the split)") from None
    except OSError as err:
        raise DkpError(f"{path}: unreadable ({err.strerror})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DkpError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(data, list) or not all(isinstance(e, dict) for e in data):
        raise DkpError(f"{path}: expected a list of objects with image_path and keypoints")
    return data


def _same_image(csv_name: str, image_path: Any) -> bool:
    if not isinstance(image_path, str):
        return False
    p = image_path.replace("\\", "/").removeprefix("./")
    return p == csv_name or p.endswith("/" + csv_name)


def _joint_names(entries: list[dict[str, Any]]) -> list[str]:
    order = entries[0].get("joint_order") if entries else None
    if isinstance(order, list) and len(order) == N_JOINTS and all(isinstance(n, str) for n in order):
        return list(order)
    return list(COCO17)


def _plan_split(root: Path, image_dir: Path, split: str, problems: list[Problem]) -> tuple[SplitPlan, list[str]]:
    csv_path, json_path = root / f"data_{split}.csv", root / f"data_{split}.json"
    names = read_csv_filenames(csv_path)
    entries = read_label_json(json_path)
    if len(names) != len(entries):
        raise DkpError(f"{csv_path} lists {len(names)} images but {json_path} has {len(entries)} entries; the "
                       f"labels are paired with the images by position, so they must agree")
    bad = [i for i, (n, e) in enumerate(zip(names, entries, strict=True)) if not _same_image(n, e.get("image_path"))]
    if bad:
        i = bad[0]
        raise DkpError(f"{json_path}: entry {i} image_path {entries[i].get('image_path')!r} does not match "
                       f"{csv_path.name} data row {i + 1} {names[i]!r} (and {len(bad) - 1} more); the labels would "
                       f"belong to other images")
    kps = np.full((len(names), N_JOINTS, 2), np.nan, dtype=np.float32)
    for i, e in enumerate(entries):
        try:
            kp = np.asarray(e.get("keypoints"), dtype=np.float64)
        except (TypeError, ValueError):
            kp = np.empty(0)
        if kp.shape != (N_JOINTS, 2):
            problems.append(Problem(f"{json_path}#{i}", f"keypoints of {names[i]} are {kp.shape}, expected "
                                                        f"{N_JOINTS}x2", split, i))
        elif not np.isfinite(kp).all():
            problems.append(Problem(f"{json_path}#{i}", f"keypoints of {names[i]} hold NaN or infinity", split, i))
        else:
            kps[i] = kp[:, ::-1]  # (x, y) -> (y, x)
    sp = SplitPlan(frames=[Frame(n, str(image_dir / n)) for n in names], keypoints=kps,
                   visible=np.ones(kps.shape[:2], dtype=bool), label_scale=IMAGE_SIZE, source_size=IMAGE_SIZE,
                   crop="none")
    return sp, _joint_names(entries)


def plan_deepfashion(root: str | Path) -> Plan:
    """Pair the CSV lists with the JSON keypoints (refusing any disagreement) and list both splits' images."""
    root = source_root(root, "the DeepFashion root with data_train.csv and img/")
    image_dir = next((root / d for d in IMAGE_DIRS if (root / d).is_dir()), None)
    if image_dir is None:
        raise DkpError(f"{root}: no img/ (or images/) folder with the In-shop images")
    problems: list[Problem] = []
    train, names = _plan_split(root, image_dir, "train", problems)
    test, _ = _plan_split(root, image_dir, "test", problems)
    return Plan(
        kind="deepfashion",
        root=root,
        splits={"train": train, "fit": SplitPlan(same_as="train"), "test": test},
        joint_names=names,
        skeleton=list(COCO17_SKELETON),
        source={"image_dir": image_dir.name,
                "label_units": "pixels of the 256-px image, (y, x); AlphaPose estimates, all visible",
                "options": {}},
        inputs=[str(root / f"data_{s}.{e}") for s in ("train", "test") for e in ("csv", "json")],
        problems=problems,
        notes=[f"deepfashion: train/fit {len(train.frames)} images, test {len(test.frames)} images ({image_dir})"],
    )
