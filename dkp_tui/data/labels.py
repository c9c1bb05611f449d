"""Keypoint labels a user made in a labelling tool, read into one form: named joints, pixels of the original frame.

Three formats are read here (by content, or as ``--label-format`` says), and every other format sleap-io reads
that holds single-person keypoints (SLEAP ``.slp``, NWB, Label Studio, Ultralytics YOLO pose) through
``dkp_tui.data.labels_sleapio``, which says why these three stay here:

* **COCO keypoints JSON** (CVAT, Label Studio, SLEAP and most tools export it): ``images[].file_name``,
  ``annotations[].keypoints`` as flat (x, y, v) triples, one person per image; the joint names and the 1-based
  skeleton come from ``categories[0]``; ``v = 0`` is a missing joint.
* **DeepLabCut** ``CollectedData_<scorer>.csv``: three header rows (scorer / bodyparts / coords), then one row per
  image (its path in one column, or DeepLabCut 2.2's three columns ``labeled-data, <video>, <image>``); an empty
  or NaN cell is a missing joint. Multi-animal files (an ``individuals`` header row) are refused.
* **plain CSV** ``image,joint,x,y``: one row per labelled joint; a joint without a row is missing.

Video frames are named as the data-set layout names them, ``clip.mp4#<frame index>``. Everything is checked here,
before `dkp prepare` writes anything, and every error names the file and the offending entry.

The second half maps labels through the crop and resize `dkp prepare` applies to the pixels (``to_stored``), with
the half-pixel-centre convention of the resize: (0, 0) is the centre of the top-left pixel in both frames.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dkp_tui.data import labels_sleapio
from dkp_tui.data.images import crop_box
from dkp_tui.errors import DkpError

OWN_FORMATS = ("coco", "dlc", "csv")
FORMATS = ("auto", *OWN_FORMATS, *labels_sleapio.FORMATS)
PLAIN_HEADER = ("image", "joint", "x", "y")


@dataclass
class LabelSet:
    """Labels of one file: per image (its name as written in the file), (x, y) per joint and which are present."""

    path: str
    format: str
    joint_names: list[str]
    skeleton: list[tuple[int, int]] = field(default_factory=list)  # 0-based joint pairs
    xy: dict[str, np.ndarray] = field(default_factory=dict)  # name -> J x 2 float64 (x, y), original pixels
    present: dict[str, np.ndarray] = field(default_factory=dict)  # name -> J bool

    @property
    def n_joints(self) -> int:
        return len(self.joint_names)


def _fail(path: str | Path, entry: str, reason: str) -> DkpError:
    return DkpError(f"{path}: {entry}: {reason}")


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise DkpError(f"{path}: no such label file") from None
    except IsADirectoryError:
        raise DkpError(f"{path}: is a directory, not a label file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise DkpError(f"{path}: unreadable label file ({err})") from None


def detect_format(text: str) -> str:
    """coco | labelstudio | dlc | csv from the content: a JSON object (COCO) or list (Label Studio's export, a list
    of tasks), a ``scorer`` first row, or an ``image,joint,x,y`` header."""
    head = text.lstrip()
    if head.startswith("{"):
        return "coco"
    if head.startswith("["):
        return "labelstudio"
    first = next(csv.reader(io.StringIO(head)), [])
    cells = [c.strip().lower() for c in first]
    if cells and cells[0] == "scorer":
        return "dlc"
    if tuple(cells[:4]) == PLAIN_HEADER:
        return "csv"
    return ""


def read_labels(path: str | Path, fmt: str = "auto") -> LabelSet:
    """Read a label file; ``fmt`` auto detects it by content."""
    path = Path(path)
    if fmt not in FORMATS:
        raise DkpError(f"--label-format {fmt!r}: choose {', '.join(FORMATS)}")
    kind = labels_sleapio.sniff(path) if fmt == "auto" else fmt
    text = "" if kind in labels_sleapio.FORMATS else _read_text(path)
    kind = kind or detect_format(text)
    if not kind:
        raise DkpError(f"{path}: not a label file dkp knows (COCO keypoints JSON, DeepLabCut CollectedData CSV, a "
                       f"CSV with the header {','.join(PLAIN_HEADER)}, SLEAP .slp, NWB .nwb, Label Studio JSON or an "
                       "Ultralytics data.yaml); name the format with --label-format")
    if kind in labels_sleapio.FORMATS:
        names, skeleton, xy, present = labels_sleapio.read(path, kind)
        labels = LabelSet(str(path), kind, names, skeleton, xy, present)
    else:
        labels = {"coco": _coco, "dlc": _dlc, "csv": _plain}[kind](path, text)
    if not labels.xy:
        raise DkpError(f"{path}: no labelled images")
    return labels


def read_label_files(paths: list[Path], fmt: str = "auto") -> LabelSet:
    """Several label files as one set (the first labels, then the frames labelled next): the same joints in each
    (the first file's order is kept), the first skeleton given, and no frame name in two files."""
    sets = [read_labels(p, fmt) for p in paths]
    if len(sets) == 1:
        return sets[0]
    first = sets[0]
    merged = LabelSet(" + ".join(s.path for s in sets), "+".join(dict.fromkeys(s.format for s in sets)),
                      list(first.joint_names), next((s.skeleton for s in sets if s.skeleton), []))
    for other in sets:
        if sorted(other.joint_names) != sorted(first.joint_names):
            raise DkpError(f"{other.path}: joints {', '.join(other.joint_names)} differ from {first.path}'s "
                           f"{', '.join(first.joint_names)}")
        order = [other.joint_names.index(n) for n in first.joint_names]
        for name in other.xy:
            if name in merged.xy:
                raise _fail(other.path, repr(name), "also labelled in an earlier --labels file")
            merged.xy[name] = other.xy[name][order]
            merged.present[name] = other.present[name][order]
    return merged


def _number(value: Any, path: Path, entry: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _fail(path, entry, f"{value!r} is not a finite number")
    return float(value)


def _coco(path: Path, text: str) -> LabelSet:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as err:
        raise DkpError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(doc, dict) or not all(isinstance(doc.get(k), list) for k in ("images", "annotations")):
        raise DkpError(f"{path}: not a COCO keypoints file (needs the lists images and annotations)")
    cats = doc.get("categories")
    if not isinstance(cats, list) or not cats or not isinstance(cats[0], dict) or \
            not isinstance(cats[0].get("keypoints"), list) or not cats[0]["keypoints"]:
        raise DkpError(f"{path}: categories[0].keypoints (the joint names) is missing")
    names = [str(n) for n in cats[0]["keypoints"]]
    if len(set(names)) != len(names):
        raise _fail(path, "categories[0].keypoints", "a joint name is repeated")
    skeleton: list[tuple[int, int]] = []
    for k, edge in enumerate(cats[0].get("skeleton") or []):
        if not (isinstance(edge, list) and len(edge) == 2 and all(isinstance(e, int) and 1 <= e <= len(names)
                                                                   for e in edge)):
            raise _fail(path, f"categories[0].skeleton[{k}]", f"{edge!r} is not a pair of 1-based joint numbers "
                        f"(1..{len(names)})")
        skeleton.append((edge[0] - 1, edge[1] - 1))
    files: dict[Any, str] = {}
    seen: set[str] = set()
    for k, image in enumerate(doc["images"]):
        if not isinstance(image, dict) or "id" not in image or not isinstance(image.get("file_name"), str):
            raise _fail(path, f"images[{k}]", "needs an id and a file_name")
        name = image["file_name"]
        if name in seen:
            raise _fail(path, f"images[{k}] {name!r}", "duplicate image")
        if image["id"] in files:
            raise _fail(path, f"images[{k}] id {image['id']!r}", "duplicate image id")
        seen.add(name)
        files[image["id"]] = name
    out = LabelSet(str(path), "coco", names, skeleton)
    j = len(names)
    for k, ann in enumerate(doc["annotations"]):
        entry = f"annotations[{k}]"
        if not isinstance(ann, dict) or ann.get("image_id") not in files:
            raise _fail(path, entry, f"image_id {ann.get('image_id') if isinstance(ann, dict) else ann!r} is not "
                        "in images")
        name = files[ann["image_id"]]
        kp = ann.get("keypoints")
        if not isinstance(kp, list) or len(kp) % 3:
            raise _fail(path, f"{entry} ({name})", "keypoints must be a flat list of x, y, v triples")
        if len(kp) != 3 * j:
            raise _fail(path, f"{entry} ({name})", f"{len(kp) // 3} joints, but categories[0] names {j}")
        if name in out.xy:
            raise _fail(path, f"{entry} ({name})", "a second annotation of the same image (one person per image "
                        "is read)")
        vals = np.array([_number(v, path, f"{entry} ({name})") for v in kp], dtype=np.float64).reshape(j, 3)
        out.xy[name] = vals[:, :2].copy()
        out.present[name] = vals[:, 2] > 0
    return out


def _cell(value: str) -> float | None:
    value = value.strip()
    if not value or value.lower() == "nan":
        return None
    return float(value)


def _dlc(path: Path, text: str) -> LabelSet:
    rows = [r for r in csv.reader(io.StringIO(text)) if r]
    if len(rows) < 3:
        raise DkpError(f"{path}: a DeepLabCut CSV needs the header rows scorer, bodyparts and coords")
    tags = [r[0].strip().lower() if r else "" for r in rows[:4]]
    if "individuals" in tags:
        raise DkpError(f"{path}: a multi-animal DeepLabCut file (it has an individuals row); dkp reads one animal "
                       "per image: export a single-animal CollectedData file")
    if tags[1] != "bodyparts" or tags[2] != "coords":
        raise DkpError(f"{path}: the rows after scorer must be bodyparts and coords (got {rows[1][0]!r}, "
                       f"{rows[2][0]!r})")
    coords = [c.strip() for c in rows[2]]
    start = next((i for i, c in enumerate(coords) if c in ("x", "y")), None)
    if start is None:
        raise DkpError(f"{path}: the coords row has no x, y columns")
    width = len(rows[0])
    value_cols = coords[start:]
    if len(value_cols) % 2 or any(value_cols[i:i + 2] != ["x", "y"] for i in range(0, len(value_cols), 2)):
        raise DkpError(f"{path}: the coords row must repeat x, y (a likelihood column is not a label)")
    parts = [c.strip() for c in rows[1][start::2]]
    if len(set(parts)) != len(parts):
        raise _fail(path, "bodyparts", "a body part is repeated")
    out = LabelSet(str(path), "dlc", parts)
    for k, row in enumerate(rows[3:], start=4):
        name = "/".join(c.strip() for c in row[:start] if c.strip())
        entry = f"row {k} ({name or '?'})"
        if len(row) != width:
            raise _fail(path, entry, f"{(len(row) - start) // 2} joints, but the header names {len(parts)}")
        if not name:
            raise _fail(path, entry, "no image path")
        if name in out.xy:
            raise _fail(path, entry, "duplicate image")
        try:
            vals = [_cell(v) for v in row[start:]]
        except ValueError as err:
            raise _fail(path, entry, f"not a number ({err})") from None
        xy = np.array([np.nan if v is None else v for v in vals], dtype=np.float64).reshape(-1, 2)
        if not np.all(np.isfinite(xy) | np.isnan(xy)):
            raise _fail(path, entry, "a coordinate is infinite")
        out.xy[name] = np.nan_to_num(xy)
        out.present[name] = ~np.isnan(xy).any(axis=1)
    return out


def _plain(path: Path, text: str) -> LabelSet:
    reader = csv.reader(io.StringIO(text))
    header = [c.strip().lower() for c in next(reader, [])]
    if tuple(header[:4]) != PLAIN_HEADER:
        raise DkpError(f"{path}: the first row must be the header {','.join(PLAIN_HEADER)}")
    rows: list[tuple[str, str, float, float]] = []
    for k, row in enumerate(reader, start=2):
        if not row or not any(c.strip() for c in row):
            continue
        if len(row) != len(header):
            raise _fail(path, f"row {k}", f"{len(row)} columns, the header has {len(header)}")
        image, joint = row[0].strip(), row[1].strip()
        try:
            x, y = float(row[2]), float(row[3])
        except ValueError:
            raise _fail(path, f"row {k} ({image}, {joint})", f"x, y {row[2]!r}, {row[3]!r} are not numbers") from None
        if not (image and joint and math.isfinite(x) and math.isfinite(y)):
            raise _fail(path, f"row {k} ({image}, {joint})", "needs an image, a joint and finite x, y")
        rows.append((image, joint, x, y))
    names = list(dict.fromkeys(r[1] for r in rows))
    index = {n: i for i, n in enumerate(names)}
    out = LabelSet(str(path), "csv", names)
    for k, (image, joint, x, y) in enumerate(rows, start=2):
        if image not in out.xy:
            out.xy[image] = np.zeros((len(names), 2))
            out.present[image] = np.zeros(len(names), dtype=bool)
        if out.present[image][index[joint]]:
            raise _fail(path, f"row {k} ({image}, {joint})", "duplicate image and joint")
        out.xy[image][index[joint]] = (x, y)
        out.present[image][index[joint]] = True
    return out


# -- matching label names to the source's frames -----------------------------------------------------------------


def match_names(labels: LabelSet, files: dict[str, int | None]) -> dict[str, tuple[str, int]]:
    """Label name -> (source file, video frame index or -1) for ``files`` (relative path -> frame count of a
    video, None for an image).

    A file matches exactly, or by its path's tail (``labeled-data/clip/img1.png`` matches ``clip/img1.png`` or
    ``img1.png`` when that tail is unique); video frames are ``clip.mp4#<index>``. A name that matches nothing, a
    frame past a video's end, or two names for one frame is an error naming the entry."""
    by_tail: dict[str, list[str]] = {}
    for name in files:
        parts = name.split("/")
        for i in range(len(parts)):
            by_tail.setdefault("/".join(parts[i:]), []).append(name)
    out: dict[str, tuple[str, int]] = {}
    taken: dict[tuple[str, int], str] = {}
    for raw in labels.xy:
        name, hash_, frame = raw.replace("\\", "/").partition("#")
        while name.startswith("./"):
            name = name[2:]
        found = name if name in files else None
        if found is None:
            parts = name.split("/")
            for i in range(len(parts)):
                cands = by_tail.get("/".join(parts[i:]), [])
                if len(cands) == 1:
                    found = cands[0]
                    break
                if len(cands) > 1:
                    raise _fail(labels.path, repr(raw), f"matches {len(cands)} files ({cands[0]}, {cands[1]}, ...); "
                                "give its path relative to the source folder")
        if found is None:
            raise _fail(labels.path, repr(raw), "no such image or video in the source folder")
        n_frames = files[found]
        if n_frames is None:
            if hash_:
                raise _fail(labels.path, repr(raw), f"{found} is an image, not a video: no #frame")
            key = (found, -1)
        else:
            if not frame.isdigit():
                raise _fail(labels.path, repr(raw), f"{found} is a video: name the frame as {found}#<frame index>")
            if int(frame) >= n_frames:
                raise _fail(labels.path, repr(raw), f"{found} has {n_frames} frames (0..{n_frames - 1})")
            key = (found, int(frame))
        if key in taken:
            raise _fail(labels.path, repr(raw), f"duplicate image (also labelled as {taken[key]!r})")
        taken[key] = raw
        out[raw] = key
    return out


# -- geometry: original frame <-> stored square ------------------------------------------------------------------


def crop_region(width: int, height: int, crop: str) -> tuple[float, float, float, float]:
    """(top, left, h, w) of the part of a frame that is stored (``images.crop_box``, which crops the pixels)."""
    top, left, h, w = crop_box(height, width, crop)
    return float(top), float(left), float(h), float(w)


def to_stored(xy: np.ndarray, region: np.ndarray | tuple[float, ...], size: int) -> np.ndarray:
    """(..., J, 2) original (x, y) -> (..., J, 2) stored (y, x), the layout's order (half-pixel-centre resize);
    ``region`` (..., 4) is each frame's (top, left, h, w)."""
    top, left, h, w = (np.asarray(region, dtype=np.float64)[..., i, None] for i in range(4))
    xy = np.asarray(xy, dtype=np.float64)
    x = (xy[..., 0] - left + 0.5) * size / w - 0.5
    y = (xy[..., 1] - top + 0.5) * size / h - 0.5
    return np.stack([y, x], axis=-1)


def to_original(yx: np.ndarray, region: np.ndarray | tuple[float, ...], size: int) -> np.ndarray:
    """Inverse of ``to_stored``: (..., J, 2) stored (y, x) -> (..., J, 2) original (x, y)."""
    top, left, h, w = (np.asarray(region, dtype=np.float64)[..., i, None] for i in range(4))
    yx = np.asarray(yx, dtype=np.float64)
    x = left + (yx[..., 1] + 0.5) * w / size - 0.5
    y = top + (yx[..., 0] + 0.5) * h / size - 0.5
    return np.stack([x, y], axis=-1)


def inside(yx: np.ndarray, size: int) -> np.ndarray:
    """(...) bool: the stored point lies on the stored frame (within its outer pixel edges)."""
    yx = np.asarray(yx)
    return np.all((yx >= -0.5) & (yx <= size - 0.5), axis=-1)
