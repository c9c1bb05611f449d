"""`dkp depth DATASET --import DIR`: depth maps the user already has (sensor depth, another estimator) into the cache.

Accepted files: greyscale 8- or 16-bit PNG, or ``.npy`` (2-D, or H x W x 1; integer or float; never pickled), one
per frame and exactly the frame size of the data set. Matching, per split:

* the maps for split ``S`` are in ``DIR/S/`` when that folder exists, else in ``DIR`` itself;
* with the split's ``names.json``, frame ``name`` takes ``<base>/<name without its image extension>.png`` (or
  ``.npy``), relative folders kept, e.g. ``clip01/0001.png`` -> ``DIR/train/clip01/0001.png`` or ``.npy``;
* without ``names.json``, all ``.png``/``.npy`` files under the base, sorted by relative path (so number files
  with zero padding), one per frame in order; the count must match.

Every file is checked (existence, size, type) before the first shard is written. Values are normalised exactly
like model output: per-image min-max to [0, 1] with near = 1. ``--polarity depth`` says the files hold depth
(far = large, e.g. millimetres from a sensor): they are inverted first, zeros meaning "no reading" (far).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from dkp_tui.depth.normalise import (
    ENCODING,
    NORMALISATION,
    POLARITY,
    encode_unit,
    invert_depth,
    minmax_normalise,
)
from dkp_tui.depth.runner import SplitPlan, Timer, physical_splits, plan_jobs, run_jobs, summary
from dkp_tui.errors import DkpError
from dkp_tui.formats import depth_cache as cache
from dkp_tui.formats.dataset_dir import manifest_hash, open_split, read_manifest

SUFFIXES = (".png", ".npy")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".npy", ".exr"}
PNG_MODES = {"L": 8, "I;16": 16, "I;16B": 16, "I;16L": 16, "I": 16}
POLARITIES = ("inverse", "depth")
DEFAULT_TAG = "imported"


def _split_base(source: Path, split: str, single: bool) -> Path:
    if (source / split).is_dir():
        return source / split
    if single:
        return source
    raise DkpError(f"--import {source}: no folder {split}/ in it; with several splits each needs its own folder "
                   f"(or import one split at a time with --splits {split})")


def _stem(name: str) -> str:
    rel = Path(name.lstrip("/"))
    return str(rel.with_suffix("")) if rel.suffix.lower() in IMAGE_SUFFIXES else str(rel)


def match_files(source: Path, split: str, names: list[str] | None, count: int, single: bool) -> tuple[list[Path], str]:
    """One depth file per frame of ``split``, in frame order, and how they were matched."""
    if names is not None:
        bases = [source / split, source] if (source / split).is_dir() else [source]
        files, missing = [], []
        for name in names:
            stem = _stem(name)
            found = next((b / f"{stem}{s}" for b in bases for s in SUFFIXES if (b / f"{stem}{s}").is_file()), None)
            if found is None:
                missing.append(f"{stem}.png")
            else:
                files.append(found)
        if missing:
            raise DkpError(f"--import {source}: no depth map for {len(missing)} of {count} {split} frames "
                           f"(matched by names.json), e.g. {bases[0] / missing[0]} (or .npy)")
        return files, "names.json"
    base = _split_base(source, split, single)
    files = sorted((p for p in base.rglob("*") if p.suffix.lower() in SUFFIXES and p.is_file()),
                   key=lambda p: p.relative_to(base).as_posix())
    if len(files) != count:
        raise DkpError(f"--import {base}: found {len(files)} depth maps (.png/.npy) for the {count} frames of "
                       f"split {split}; without names.json they are matched one to one in sorted order")
    return files, "sorted order"


def probe(path: Path) -> tuple[int, int]:
    """(H, W) of a depth file, reading only its header; anything but a greyscale map is refused."""
    if path.suffix.lower() == ".png":
        from PIL import Image, UnidentifiedImageError

        from dkp_tui.data.images import BadInput, quick_check

        try:
            quick_check(path)  # and its end marker: an interrupted copy cuts the end off, not the header
        except BadInput as err:
            raise DkpError(f"{path}: {err}") from None
        try:
            with Image.open(path) as im:
                mode, (w, h) = im.mode, im.size
        except (OSError, UnidentifiedImageError) as err:
            raise DkpError(f"{path}: unreadable PNG ({err})") from None
        if mode not in PNG_MODES:
            raise DkpError(f"{path}: PNG mode {mode}; expected a greyscale 8- or 16-bit depth map "
                           "(colour-mapped depth, e.g. MiDaS's inferno PNGs, cannot be inverted)")
        return h, w
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError) as err:
        raise DkpError(f"{path}: unreadable .npy ({err})") from None
    if arr.dtype.kind not in "fiu" or not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] == 1)):
        raise DkpError(f"{path}: {arr.dtype} {arr.shape}; expected a 2-D (or H x W x 1) numeric depth map")
    return int(arr.shape[0]), int(arr.shape[1])


def read_map(path: Path) -> np.ndarray:
    """The whole map; ``probe`` read only the header, so damage further in shows up here, as one line."""
    try:
        if path.suffix.lower() == ".png":
            from PIL import Image

            with Image.open(path) as im:
                return np.asarray(im, dtype=np.float32)
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        raise DkpError(f"{path}: unreadable depth map ({err})") from None
    return (arr[..., 0] if arr.ndim == 3 else arr).astype(np.float32)


class ImportBackend:
    """Files into normalised codes; all on the CPU (reading dominates)."""

    def __init__(self, files: dict[str, list[Path]], polarity: str) -> None:
        self.files = files
        self.polarity = polarity

    def load(self, split: str, start: int, stop: int) -> tuple[torch.Tensor, list[Path]]:
        paths = self.files[split][start:stop]
        return torch.from_numpy(np.stack([read_map(p) for p in paths])), paths

    def submit(self, loaded: tuple[torch.Tensor, list[Path]], frame_hw: tuple[int, int]) -> Any:
        maps, paths = loaded
        if self.polarity == "depth":
            maps = invert_depth(maps)
        d, constant, finite = minmax_normalise(maps)
        if not bool(finite.all()):
            bad = paths[int(torch.nonzero(~finite)[0, 0])]
            raise DkpError(f"{bad}: depth map holds NaN or inf; replace missing readings with 0 (--polarity depth) "
                           "or a finite value")
        return _Done(encode_unit(d).numpy().astype(np.uint16), int(constant.sum()))


class _Done:
    def __init__(self, codes: np.ndarray, constant: int) -> None:
        self.codes, self.constant = codes, constant

    def result(self) -> tuple[np.ndarray, int]:
        return self.codes, self.constant


def import_depth(dataset: str | Path, source: str | Path, *, splits: str | None = None, tag: str = DEFAULT_TAG,
                 force: bool = False, polarity: str = "inverse", batch_size: int = 64,
                 shard_size: int = cache.DEFAULT_SHARD_SIZE, quiet: bool = False) -> dict[str, Any]:
    """Validate every file, then write ``<dataset>/depth/<tag>`` like `dkp depth` would; returns the run summary."""
    timer = Timer()
    dataset, source = Path(dataset), Path(source).expanduser()
    if polarity not in POLARITIES:
        raise DkpError(f"--polarity {polarity}: choose inverse (larger = nearer, like MiDaS) or depth (far = large)")
    if batch_size < 1 or shard_size < 1:
        raise DkpError("--batch-size and --shard-size must be at least 1")
    if not source.is_dir():
        what = "is a file; give the folder of depth maps (unpack an archive first)" if source.exists() \
            else "no such directory"
        raise DkpError(f"--import {source}: {what}")
    tag = cache.check_tag(tag or DEFAULT_TAG)
    data_manifest = read_manifest(dataset)
    plans, aliases = physical_splits(dataset, data_manifest, splits)
    files: dict[str, list[Path]] = {}
    matched: dict[str, str] = {}
    for plan in plans:
        names = open_split(dataset, plan.split, data_manifest).names
        if names is not None and len(names) != plan.count:
            raise DkpError(f"{dataset}/{plan.split}/names.json lists {len(names)} names for {plan.count} frames")
        files[plan.split], matched[plan.split] = match_files(source, plan.split, names, plan.count, len(plans) == 1)
        _check_sizes(files[plan.split], plan)
    settings: dict[str, Any] = {
        "source": "imported",
        "import": {"dir": str(source.resolve()), "polarity": polarity},
        "output": {"size": [data_manifest.image_size, data_manifest.image_size], "interpolation": "none"},
        "normalisation": NORMALISATION,
        "polarity": POLARITY,
        "encoding": ENCODING,
        "shard_size": shard_size,
        "dataset_manifest_hash": manifest_hash(dataset),
    }
    cache.open_tag(dataset, tag, settings, force, [p.split for p in plans])
    jobs, skipped = plan_jobs(dataset, tag, plans, shard_size)
    totals = run_jobs(dataset, tag, jobs, plans, ImportBackend(files, polarity), batch_size, f"import {tag}", quiet)
    previous = cache.read_depth_manifest(dataset, tag) if tag in cache.list_tags(dataset) else {}
    extra = {"same_as": {**(previous.get("same_as") or {}), **aliases},
             "matched_by": {**(previous.get("matched_by") or {}), **matched},
             "compute": {"images": totals["images"], "seconds": round(timer.seconds, 3)}}
    manifest = cache.finish_tag(dataset, tag, settings, {p.split: p.count for p in plans}, extra)
    return summary(dataset, tag, manifest, totals, skipped, timer.seconds)


def _check_sizes(files: list[Path], plan: SplitPlan) -> None:
    for path in files:
        hw = probe(path)
        if hw != plan.frame_hw:
            raise DkpError(f"{path}: depth map is {hw[0]}x{hw[1]} (HxW) but the {plan.split} frames are "
                           f"{plan.frame_hw[0]}x{plan.frame_hw[1]}; resize the maps to the data set's frame size")
