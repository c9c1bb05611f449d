"""Any folder of images and/or videos (a user's own footage) planned as an unlabelled dkp data set.

Images are taken as they are; videos are sampled at ``fps`` frames per second. Each frame is cropped to its
centred square (``crop="center"``, the default: people are usually in the middle) or resized whole to a square
(``crop="none"``: nothing is cut off, the aspect ratio changes; no padding is invented), then resized to the data
set's size. Sub-folders are searched; hidden files and folders are skipped. There are no labels, so only a
``train`` split is written, plus a ``test`` split of whole files when ``test_fraction`` > 0 (frames of one video
never straddle the two).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from dkp_tui.data import images as im
from dkp_tui.data.prepare_common import Frame, Plan, Problem, Reporter, SplitPlan
from dkp_tui.errors import DkpError

DEFAULT_FPS = 5.0


def find_media(path: Path) -> list[Path]:
    """Image and video files under ``path`` (or ``path`` itself), in natural order of their relative paths."""
    if path.is_file():
        if not (im.is_image(path) or im.is_video(path)):
            raise DkpError(f"{path}: not an image or video file (extensions: "
                           f"{', '.join(sorted(im.IMAGE_EXTS | im.VIDEO_EXTS))})")
        return [path]
    files = [p for p in path.rglob("*")
             if p.is_file() and (im.is_image(p) or im.is_video(p))
             and not any(part.startswith(".") for part in p.relative_to(path).parts)]
    return sorted(files, key=lambda p: im.natural_key(p.relative_to(path).as_posix()))


def split_files(files: list[Path], test_fraction: float, seed: int) -> tuple[list[Path], list[Path]]:
    """(train, test) by whole file, test chosen at random (seeded); at least one file stays in train."""
    if test_fraction <= 0 or len(files) < 2:
        return files, []
    n_test = min(len(files) - 1, max(1, round(test_fraction * len(files))))
    chosen = set(np.random.default_rng(seed).permutation(len(files))[:n_test].tolist())
    return ([f for i, f in enumerate(files) if i not in chosen], [f for i, f in enumerate(files) if i in chosen])


def _frames(files: list[Path], base: Path, fps: float | None, split: str, sp: SplitPlan,
            problems: list[Problem], notes: list[str], advance: object) -> None:
    for f in files:
        rel = f.relative_to(base).as_posix() if f != base else f.name
        if im.is_image(f):
            sp.frames.append(Frame(rel, str(f)))
        else:
            try:
                info = im.video_info(f)
            except im.BadInput as err:
                problems.append(Problem(str(f), str(err), split))
            else:
                idx = im.sample_indices(info.frames, info.fps, fps)
                sp.frames.extend(Frame(f"{rel}#{k}", str(f), video_index=k) for k in idx)
                rate = f"{info.fps:.3g} fps" if info.fps > 0 else "unknown rate: every frame"
                notes.append(f"folder: {rel}: {info.frames} frames at {rate}, {info.width}x{info.height}; "
                             f"{len(idx)} sampled")
        advance(1)  # type: ignore[operator]


def plan_folder(path: str | Path, fps: float | None = DEFAULT_FPS, crop: str = "center", test_fraction: float = 0.0,
                seed: int = 0, reporter: Reporter | None = None) -> Plan:
    """Every image, and every video's frames at ``fps``, as the ``train`` (and optional ``test``) split."""
    path = Path(path)
    reporter = reporter or Reporter(enabled=False)
    if not path.exists():
        raise DkpError(f"{path}: no such file or directory")
    if crop not in im.CROP_MODES:
        raise DkpError(f"--crop {crop!r}: choose {' or '.join(im.CROP_MODES)}")
    if fps is not None and (not math.isfinite(fps) or fps <= 0):
        raise DkpError(f"--fps {fps}: must be a positive number of frames per second")
    if not 0.0 <= test_fraction < 1.0:
        raise DkpError(f"--test-fraction {test_fraction}: must be in [0, 1)")
    files = find_media(path)
    if not files:
        raise DkpError(f"{path}: no images or videos found (extensions: "
                       f"{', '.join(sorted(im.IMAGE_EXTS | im.VIDEO_EXTS))})")
    base = path if path.is_dir() else path.parent
    train_files, test_files = split_files(files, test_fraction, seed)
    problems: list[Problem] = []
    notes: list[str] = []
    splits = {"train": SplitPlan(crop=crop)}
    if test_files:
        splits["test"] = SplitPlan(crop=crop)
    with reporter.task(f"scanning {len(files)} files", len(files)) as advance:
        _frames(train_files, base, fps, "train", splits["train"], problems, notes, advance)
        if test_files:
            _frames(test_files, base, fps, "test", splits["test"], problems, notes, advance)
    n_images = sum(im.is_image(f) for f in files)
    counts = ", ".join(f"{k} {len(v.frames)} frames" for k, v in splits.items())
    notes.append(f"folder: {n_images} images and {len(files) - n_images} videos; {counts}")
    return Plan(
        kind="folder",
        root=base,
        splits=splits,
        source={"path": str(path), "n_images": n_images, "n_videos": len(files) - n_images,
                "test_files": [f.relative_to(base).as_posix() for f in test_files],
                "options": {"fps": fps, "crop": crop, "test_fraction": test_fraction, "seed": seed}},
        problems=problems,
        notes=notes,
    )
