"""A synthetic set exported as a user's labelled footage: PNG files of non-square frames (padded, so that
`dkp prepare folder`'s centre crop gives the stored frames back pixel for pixel), with COCO keypoints JSON,
DeepLabCut CSV and plain CSV label files made from its labels (x, y order, 1-based COCO skeleton)."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from dkp_tui.formats.dataset_dir import open_split, read_manifest

PAD = 8  # columns added each side of the "wide" frames, rows (PAD - 2) each side of the "tall" ones


@dataclass
class Exported:
    folder: Path  # the PNGs
    names: list[str]  # file names, in export order
    origin: list[tuple[str, int]]  # (synthetic split, index) of each file
    xy: np.ndarray  # N x J x 2 labels in the PNGs' pixels, (x, y)
    present: np.ndarray  # N x J bool: labelled in the files
    joint_names: list[str]
    skeleton: list[tuple[int, int]]  # 0-based


def export_labelled(synthetic: Path, folder: Path, n_per_split: int | None = None) -> Exported:
    """The fit and test frames of ``synthetic`` as PNGs padded to 64 x 80 (even files) or 76 x 64 (odd files).

    One label of file 0 is moved into the padding (outside the crop: stored as missing), and joint 1 of file 1
    is left unlabelled (missing in the file)."""
    manifest = read_manifest(synthetic)
    folder.mkdir(parents=True)
    names, origin, xys, present = [], [], [], []
    for split in ("fit", "test"):
        arrays = open_split(synthetic, split, manifest)
        n = len(arrays) if n_per_split is None else n_per_split
        for i in range(n):
            k = len(names)
            image = np.asarray(arrays.images[i])
            yx = np.asarray(arrays.keypoints[i], dtype=np.float64)
            if k % 2 == 0:
                padded = np.pad(image, ((0, 0), (PAD, PAD), (0, 0)), constant_values=90)
                xy = np.stack([yx[:, 1] + PAD, yx[:, 0]], axis=-1)
            else:
                padded = np.pad(image, ((PAD - 2, PAD - 2), (0, 0), (0, 0)), constant_values=90)
                xy = np.stack([yx[:, 1], yx[:, 0] + PAD - 2], axis=-1)
            name = f"img{k}.png"
            Image.fromarray(padded).save(folder / name)
            vis = np.asarray(arrays.visible[i], dtype=bool).copy()
            names.append(name)
            origin.append((split, i))
            xys.append(xy)
            present.append(vis)
    xy_all, present_all = np.array(xys), np.array(present)
    xy_all[0, 0] = (2.0, 10.0)  # in the left padding of a wide frame: outside the stored crop
    present_all[1, 1] = False
    return Exported(folder, names, origin, xy_all, present_all, list(manifest.joint_names),
                    [tuple(e) for e in manifest.skeleton])


def write_coco(ex: Exported, path: Path) -> Path:
    images, annotations = [], []
    for k, name in enumerate(ex.names):
        h, w = (64, 80) if k % 2 == 0 else (64 + 2 * (PAD - 2), 64)
        images.append({"id": 100 + k, "file_name": name, "width": w, "height": h})
        kp: list[float] = []
        for (x, y), v in zip(ex.xy[k], ex.present[k], strict=True):
            kp += [float(x), float(y), 2] if v else [0.0, 0.0, 0]
        annotations.append({"id": k, "image_id": 100 + k, "category_id": 1, "keypoints": kp,
                            "num_keypoints": int(ex.present[k].sum())})
    doc = {"images": images, "annotations": annotations,
           "categories": [{"id": 1, "name": "figure", "keypoints": ex.joint_names,
                           "skeleton": [[a + 1, b + 1] for a, b in ex.skeleton]}]}
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def write_dlc(ex: Exported, path: Path, scorer: str = "me") -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["scorer"] + [scorer] * (2 * len(ex.joint_names)))
        w.writerow(["bodyparts"] + [n for n in ex.joint_names for _ in range(2)])
        w.writerow(["coords"] + ["x", "y"] * len(ex.joint_names))
        for k, name in enumerate(ex.names):
            cells = []
            for (x, y), v in zip(ex.xy[k], ex.present[k], strict=True):
                cells += [repr(float(x)), repr(float(y))] if v else ["", ""]
            w.writerow([f"labeled-data/{ex.folder.name}/{name}"] + cells)
    return path


def write_plain(ex: Exported, path: Path) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["image", "joint", "x", "y"])
        for k, name in enumerate(ex.names):
            for j, ((x, y), v) in enumerate(zip(ex.xy[k], ex.present[k], strict=True)):
                if v:
                    w.writerow([name, ex.joint_names[j], repr(float(x)), repr(float(y))])
    return path
