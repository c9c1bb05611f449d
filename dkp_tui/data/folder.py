"""Any folder of images and/or videos (a user's own footage) planned as an unlabelled dkp data set.

Images are taken as they are; videos are sampled at ``fps`` frames per second. Each frame is cropped to its
centred square (``crop="center"``, the default: people are usually in the middle) or resized whole to a square
(``crop="none"``: nothing is cut off, the aspect ratio changes; no padding is invented), then resized to the data
set's size. Sub-folders are searched; hidden files and folders are skipped. Without labels only a ``train``
split is written, plus a ``test`` split of whole files when ``test_fraction`` > 0 (frames of one video never
straddle the two).

With a label file (``labels``, read by ``dkp_tui.data.labels``) the labelled frames form the ``fit`` and ``test``
splits, drawn by whole file (a video's labelled frames all go to one side, so neighbouring frames never straddle
the split); the test files' frames are left out of ``train``. Labels go through the same crop and resize as the
pixels and are stored in pixels of the stored frame (``label_scale`` = the size); each labelled frame's stored
region in the original frame is kept in ``geometry.npy`` so that scores and named joints come back in original
pixels. A label outside the stored crop is stored as missing and counted in ``prepare_report.json``.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from dkp_tui.data import images as im
from dkp_tui.data import labels as lb
from dkp_tui.data.prepare_common import Frame, Plan, Problem, Reporter, SplitPlan
from dkp_tui.errors import DkpError

DEFAULT_FPS = 5.0
LABELLED_TEST_FRACTION = 0.2
MIN_LABELLED = 2  # per split: fewer cannot fit a mean, let alone score one


def find_media(path: Path) -> list[Path]:
    """Image and video files under ``path`` (or ``path`` itself), in natural order of their relative paths."""
    if path.is_file():
        if not (im.is_image(path) or im.is_video(path)):
            raise DkpError(f"{path}: not an image or video file (extensions: "
                           f"{', '.join(sorted({*im.IMAGE_EXTS, *im.VIDEO_EXTS}))})")
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


def _media(path: Path, fps: float | None, crop: str, test_fraction: float) -> tuple[list[Path], Path]:
    """The options checked, and the media files under ``path`` with the folder names are relative to."""
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
                       f"{', '.join(sorted({*im.IMAGE_EXTS, *im.VIDEO_EXTS}))})")
    return files, (path if path.is_dir() else path.parent)


def plan_folder(path: str | Path, fps: float | None = DEFAULT_FPS, crop: str = "center",
                test_fraction: float | None = None, seed: int = 0, reporter: Reporter | None = None,
                labels: str | Path | list[Path] | None = None, label_format: str = "auto", size: int = 0) -> Plan:
    """Every image, and every video's frames at ``fps``, as the ``train`` (and optional ``test``) split; with
    ``labels``, the labelled frames as ``fit`` and ``test`` (``size``: the stored size the labels are mapped to)."""
    if labels:  # one file or several (their frames together)
        files = [Path(f) for f in labels] if isinstance(labels, list) else [Path(labels)]
        return _plan_labelled(Path(path), fps, crop, LABELLED_TEST_FRACTION if test_fraction is None
                              else test_fraction, seed, reporter or Reporter(enabled=False), files,
                              label_format, size)
    test_fraction = test_fraction or 0.0
    path = Path(path)
    reporter = reporter or Reporter(enabled=False)
    files, base = _media(path, fps, crop, test_fraction)
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


# -- labelled footage -------------------------------------------------------------------------------------------


def _rel(f: Path, base: Path) -> str:
    return f.relative_to(base).as_posix() if f != base else f.name


def split_groups(groups: list[str], test_fraction: float, seed: int) -> set[str]:
    """The groups (source files) whose labelled frames form the test split: a seeded draw of whole files, at
    least one, never all."""
    if test_fraction <= 0 or len(groups) < 2:
        return set()
    n_test = min(len(groups) - 1, max(1, round(test_fraction * len(groups))))
    order = np.random.default_rng(seed).permutation(len(groups))[:n_test]
    return {groups[i] for i in order.tolist()}


def _frame_size(f: Path, problems_at: str) -> tuple[int, int]:
    try:
        return im.oriented_size(f) if im.is_image(f) else (lambda i: (i.width, i.height))(im.video_info(f))
    except im.BadInput as err:
        raise DkpError(f"{f}: {err} (it has labels in {problems_at}); fix or remove it") from None


def _plan_labelled(path: Path, fps: float | None, crop: str, test_fraction: float, seed: int, reporter: Reporter,
                   label_files: list[Path], label_format: str, size: int) -> Plan:
    files, base = _media(path, fps, crop, test_fraction)
    if size < 8:
        raise DkpError(f"--size {size}: labels need the stored size (at least 8 px)")
    labels = lb.read_label_files(label_files, label_format)
    label_file = Path(labels.path)  # "a.json + b.slp" for several: names them in messages
    infos: dict[str, im.VideoInfo] = {}
    counts: dict[str, int | None] = {}
    for f in files:
        rel = _rel(f, base)
        if im.is_video(f):
            try:
                infos[rel] = im.video_info(f)
            except im.BadInput:
                counts[rel] = 0  # reported by the train split's scan; any label on it is past its end
                continue
            counts[rel] = infos[rel].frames
        else:
            counts[rel] = None
    matched = lb.match_names(labels, counts)
    by_file: dict[str, list[tuple[int, str]]] = {}
    for raw, (rel, k) in matched.items():
        by_file.setdefault(rel, []).append((k, raw))
    groups = sorted(by_file, key=im.natural_key)
    test_groups = split_groups(groups, test_fraction, seed)
    sides = {"fit": [g for g in groups if g not in test_groups], "test": [g for g in groups if g in test_groups]}
    n_side = {s: sum(len(by_file[g]) for g in gs) for s, gs in sides.items()}
    if min(n_side.values()) < MIN_LABELLED:
        raise DkpError(f"{label_file}: {len(matched)} labelled frames in {len(groups)} files give fit {n_side['fit']}"
                       f" and test {n_side['test']} frames; each split needs at least {MIN_LABELLED} (label frames "
                       f"in more files, or change --test-fraction)")
    splits: dict[str, SplitPlan] = {}
    outside = 0
    by_path = {_rel(f, base): f for f in files}
    for split, gs in sides.items():
        frames: list[Frame] = []
        xy, present, regions = [], [], []
        for g in gs:
            f = by_path[g]
            w, h = _frame_size(f, str(label_file))
            region = lb.crop_region(w, h, crop)
            for k, raw in sorted(by_file[g]):
                frames.append(Frame(g if k < 0 else f"{g}#{k}", str(f), video_index=k))
                xy.append(labels.xy[raw])
                present.append(labels.present[raw])
                regions.append(region)
        geometry = np.array(regions, dtype=np.float64)
        yx = lb.to_stored(np.array(xy), geometry, size)
        vis = np.array(present, dtype=bool)
        on = lb.inside(yx, size)
        outside += int((vis & ~on).sum())
        vis &= on
        yx[~vis] = 0.0
        splits[split] = SplitPlan(frames=frames, keypoints=yx.astype(np.float32), visible=vis,
                                  label_scale=float(size), crop=crop, geometry=geometry.astype(np.float32))
    train = SplitPlan(crop=crop)
    problems: list[Problem] = []
    notes: list[str] = []
    train_files = [f for f in files if _rel(f, base) not in test_groups]
    with reporter.task(f"scanning {len(train_files)} files", len(train_files)) as advance:
        _frames(train_files, base, fps, "train", train, problems, notes, advance)
    splits = {"train": train, **splits}
    n_labels = int(sum(p.sum() for p in labels.present.values()))
    notes.append(f"labels: {label_file.name} ({labels.format}): {len(matched)} frames, {labels.n_joints} joints; fit "
                 f"{n_side['fit']} frames from {len(sides['fit'])} files, test {n_side['test']} from "
                 f"{len(sides['test'])} files (left out of train); {outside} of {n_labels} joint labels fall outside "
                 f"the stored {'square crop' if crop == 'center' else 'frame'} and are stored as missing")
    n_images = sum(im.is_image(f) for f in files)
    label_facts = {"file": str(label_file), "format": labels.format, "frames": len(matched),
                   "joint_labels": n_labels, "outside_crop": outside, "fit_files": sides["fit"],
                   "test_files": sides["test"]}
    return Plan(
        kind="folder",
        root=base,
        splits=splits,
        joint_names=list(labels.joint_names),
        skeleton=list(labels.skeleton),
        source={"path": str(path), "n_images": n_images, "n_videos": len(files) - n_images,
                "test_files": sides["test"], "labels": label_facts,
                "options": {"fps": fps, "crop": crop, "test_fraction": test_fraction, "seed": seed,
                            "labels": str(label_file), "label_format": labels.format}},
        inputs=[str(f) for f in label_files],
        problems=problems,
        notes=notes,
        report={"labels": label_facts},
    )
