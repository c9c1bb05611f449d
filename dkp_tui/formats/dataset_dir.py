"""The data-set directory format that every `dkp prepare` source writes and every stage reads.

```
<dataset>/dataset.json                 manifest (format version, kind, image size, splits, skeleton, dkp version)
<dataset>/<split>/images.npy           uint8  N x H x W x 3, RGB, memory-mapped by readers
<dataset>/<split>/keypoints.npy        float32 N x J x 2, (y, x) = (row, col) in the split's label units
<dataset>/<split>/visible.npy          bool   N x J, False where a joint is missing
<dataset>/<split>/masks.npy            uint8  N x H x W, figure mask (optional; synthetic, H36M)
<dataset>/<split>/names.json           list of N source ids (file names, clip/frame), optional
<dataset>/<split>/geometry.npy         float32 N x 4, stored region (top, left, h, w) in source px (labelled folders)
<dataset>/labels/                      the source's label files as given (labelled folders)
<dataset>/prepare_report.json          what `dkp prepare` counted and left out
<dataset>/depth/<tag>/manifest.json    depth cache manifest (see dkp_tui.formats.depth_cache)
<dataset>/depth/<tag>/<split>/shard-NNNNN.npy   uint16 n x H x W, round(d * 65535), near = 65535
```

A split's manifest entry may say ``"same_as": "<other split>"`` (H36M's regression fit uses the training frames)
so that nothing is stored twice. Label units: ``label_scale`` is the frame size in the label's units (256 for
Taichi and DeepFashion pixel labels at 256 px, 1.0 for H36M's normalised labels, the stored size for synthetic);
protocols read labels in those native units so that scores are comparable with the paper.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dkp_tui.atomic import write_json, write_with
from dkp_tui.errors import DkpError
from dkp_tui.version import __version__

LAYOUT_VERSION = 1
MANIFEST = "dataset.json"
SPLITS = ("train", "fit", "test")
IMAGES = "images.npy"
KEYPOINTS = "keypoints.npy"
VISIBLE = "visible.npy"
MASKS = "masks.npy"
NAMES = "names.json"
GEOMETRY = "geometry.npy"
REPORT = "prepare_report.json"
LABELS_DIR = "labels"


@dataclass
class SplitInfo:
    count: int
    labelled: bool = False
    label_scale: float = 1.0
    has_masks: bool = False
    same_as: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"count": self.count, "labelled": self.labelled, "label_scale": self.label_scale,
                             "has_masks": self.has_masks}
        if self.same_as:
            d["same_as"] = self.same_as
        return d


@dataclass
class Manifest:
    kind: str  # synthetic | taichi | h36m | deepfashion | folder
    image_size: int  # stored frames are image_size x image_size
    splits: dict[str, SplitInfo]
    joint_names: list[str] = field(default_factory=list)
    skeleton: list[tuple[int, int]] = field(default_factory=list)
    source: dict[str, Any] = field(default_factory=dict)  # source-specific facts (paths, clip counts, params)
    format_version: int = LAYOUT_VERSION
    dkp_version: str = __version__

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": self.format_version,
            "dkp_version": self.dkp_version,
            "kind": self.kind,
            "image_size": self.image_size,
            "splits": {k: v.to_dict() for k, v in self.splits.items()},
            "joint_names": list(self.joint_names),
            "skeleton": [list(e) for e in self.skeleton],
            "source": self.source,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = MANIFEST) -> Manifest:
        version = d.get("format_version")
        if not isinstance(version, int):
            raise DkpError(f"{where}: no format_version; not a dkp data set")
        if version > LAYOUT_VERSION:
            raise DkpError(
                f"{where}: data-set format {version} was written by a newer dkp ({d.get('dkp_version')}); "
                f"this dkp {__version__} reads format {LAYOUT_VERSION}: upgrade dkp"
            )
        try:
            splits = {k: SplitInfo(**v) for k, v in d["splits"].items()}
            return cls(kind=d["kind"], image_size=int(d["image_size"]), splits=splits,
                       joint_names=list(d.get("joint_names", [])),
                       skeleton=[tuple(e) for e in d.get("skeleton", [])],
                       source=dict(d.get("source", {})), format_version=version,
                       dkp_version=str(d.get("dkp_version", "?")))
        except (KeyError, TypeError, ValueError) as err:
            raise DkpError(f"{where}: malformed manifest ({err})") from None


def read_manifest(root: str | Path) -> Manifest:
    path = Path(root) / MANIFEST
    if not path.is_file():
        raise DkpError(f"{root}: not a dkp data set (no {MANIFEST}); create one with `dkp prepare`")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise DkpError(f"{path}: unreadable ({err.strerror})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DkpError(f"{path}: corrupt manifest ({err})") from None
    return Manifest.from_dict(data, str(path))


def write_manifest(root: str | Path, manifest: Manifest) -> None:
    """Written last by every writer: a directory without a manifest is an unfinished one."""
    write_json(Path(root) / MANIFEST, manifest.to_dict())


def manifest_hash(root: str | Path) -> str:
    return hashlib.sha256((Path(root) / MANIFEST).read_bytes()).hexdigest()[:16]


def split_dir(root: str | Path, manifest: Manifest, split: str) -> Path:
    """The directory that physically holds ``split`` (following ``same_as``)."""
    if split not in manifest.splits:
        raise DkpError(f"{root}: data set has no split {split!r} (has {', '.join(manifest.splits)})")
    info = manifest.splits[split]
    return Path(root) / (info.same_as or split)


def _load(path: Path, mmap: bool) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except FileNotFoundError:
        raise DkpError(f"missing file {path}; the data set is incomplete: rerun `dkp prepare --force`") from None
    except (ValueError, EOFError, OSError) as err:  # truncated, not an .npy, a directory, unreadable
        raise DkpError(f"{path}: unreadable array ({err}); rerun `dkp prepare --force`") from None


@dataclass
class SplitArrays:
    """One split, memory-mapped: nothing is decoded or copied until indexed."""

    images: np.ndarray  # N x H x W x 3 uint8
    keypoints: np.ndarray | None  # N x J x 2 float32 (y, x) in label units
    visible: np.ndarray | None  # N x J bool
    masks: np.ndarray | None  # N x H x W uint8
    names: list[str] | None
    info: SplitInfo

    def __len__(self) -> int:
        return int(self.images.shape[0])


def open_split(root: str | Path, split: str, manifest: Manifest | None = None) -> SplitArrays:
    manifest = manifest or read_manifest(root)
    d = split_dir(root, manifest, split)
    info = manifest.splits[split]
    images = _load(d / IMAGES, mmap=True)
    if images.ndim != 4 or images.shape[3] != 3 or images.dtype != np.uint8 or images.shape[0] != info.count:
        raise DkpError(f"{d / IMAGES}: expected uint8 {info.count}xHxWx3, got {images.dtype} {images.shape}")
    keypoints = visible = masks = None
    if info.labelled:
        keypoints = _load(d / KEYPOINTS, mmap=False).astype(np.float32, copy=False)
        visible = _load(d / VISIBLE, mmap=False).astype(bool, copy=False)
        if keypoints.shape[0] != info.count or keypoints.shape[:2] != visible.shape:
            raise DkpError(f"{d}: labels do not match the images ({keypoints.shape}, {visible.shape})")
    if info.has_masks:
        masks = _load(d / MASKS, mmap=True)
    names = None
    if (d / NAMES).is_file():
        try:
            names = json.loads((d / NAMES).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError, UnicodeDecodeError) as err:
            raise DkpError(f"{d / NAMES}: corrupt ({err}); rerun `dkp prepare --force`") from None
    return SplitArrays(images, keypoints, visible, masks, names, info)


def save_array(path: str | Path, array: np.ndarray) -> None:
    """Atomic ``np.save`` (never pickles: object arrays are refused)."""
    if array.dtype == object:
        raise TypeError("object arrays would need pickle; refusing")
    def _write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:  # a file object, so numpy never appends ".npy" to the temporary name
            np.save(fh, array, allow_pickle=False)

    write_with(Path(path), _write)


def partial_path(path: str | Path) -> Path:
    """Where an array is filled before its rename to ``path``: hidden, so readers and rebuilds pass it by."""
    path = Path(path)
    return path.with_name(f".{path.name}.partial.npy")


def create_image_array(path: str | Path, n: int, size: int) -> np.memmap:
    """An ``.npy`` memmap to fill frame by frame (for sets too large for RAM); call ``finish_array`` after."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return np.lib.format.open_memmap(partial_path(path), mode="w+", dtype=np.uint8, shape=(n, size, size, 3))


def finish_array(path: str | Path, array: np.memmap) -> None:
    path = Path(path)
    array.flush()
    del array
    partial_path(path).replace(path)


def write_split(root: str | Path, split: str, images: np.ndarray, keypoints: np.ndarray | None = None,
                visible: np.ndarray | None = None, masks: np.ndarray | None = None,
                names: list[str] | None = None) -> None:
    """Write one split's arrays (atomically, file by file). The manifest is written by the caller, last."""
    d = Path(root) / split
    if images.ndim != 4 or images.shape[3] != 3 or images.dtype != np.uint8:
        raise ValueError(f"images must be uint8 NxHxWx3, got {images.dtype} {images.shape}")
    save_array(d / IMAGES, images)
    if keypoints is not None:
        if visible is None:
            visible = np.ones(keypoints.shape[:2], dtype=bool)
        save_array(d / KEYPOINTS, keypoints.astype(np.float32))
        save_array(d / VISIBLE, visible.astype(bool))
    if masks is not None:
        save_array(d / MASKS, masks.astype(np.uint8))
    if names is not None:
        write_json(d / NAMES, list(names), indent=None)


def load_geometry(split_dir: Path, n: int, size: int) -> np.ndarray:
    """The stored regions of a labelled folder split; a set without them (synthetic) is its own frame."""
    path = Path(split_dir) / GEOMETRY
    if not path.is_file():
        return np.tile(np.array([0.0, 0.0, size, size]), (n, 1))
    try:
        geo = np.load(path, allow_pickle=False).astype(np.float64)
    except (ValueError, OSError, EOFError) as err:
        raise DkpError(f"{path}: unreadable ({err}); rerun `dkp prepare --force`") from None
    if geo.shape != (n, 4) or not np.all(np.isfinite(geo)) or np.any(geo[:, 2:] <= 0):
        raise DkpError(f"{path}: expected {n} x 4 positive regions, got {geo.shape}; rerun `dkp prepare --force`")
    return geo
