"""The engine behind every `dkp prepare` source: check everything, then decode into the layout, manifest last.

A source module (``taichi.py``, ``h36m.py``, ...) only *plans*: it lists each split's frames (an image file, or
a video and a frame index), their labels in (y, x) order, and whatever it already found unusable. This module
does the rest the same way for every source:

1. **Reuse.** The input fingerprint (every file's path, size and mtime, plus the options that change the
   output) is stored in the manifest; a second run on unchanged input returns the existing data set at once.
   ``force`` rebuilds; a directory holding a *different* data set is never overwritten without it.
2. **Check before writing.** Every image's header and end marker, label shapes, sizes of labelled frames and
   free disk space are checked first; with problems and no ``skip_bad``, nothing is written and the error names
   the first bad file and how many more there are.
3. **Decode** into the split's ``images.npy`` through a hidden partial memmap (threads; PIL and OpenCV release
   the GIL), so sets larger than RAM work. A file that only fails here is reported the same way, and the
   partial files are removed.
4. **Write** labels, names, ``prepare_report.json`` and, last, ``dataset.json``: a directory without a manifest
   is an unfinished one, and readers refuse it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dkp_tui.atomic import check_output_dir, write_json
from dkp_tui.data import images as im
from dkp_tui.errors import DkpError
from dkp_tui.formats.dataset_dir import (
    GEOMETRY,
    IMAGES,
    KEYPOINTS,
    LABELS_DIR,
    LAYOUT_VERSION,
    MANIFEST,
    MASKS,
    NAMES,
    REPORT,
    SPLITS,
    VISIBLE,
    Manifest,
    SplitInfo,
    create_image_array,
    finish_array,
    partial_path,
    read_manifest,
    save_array,
    write_manifest,
)
from dkp_tui.formats.depth_cache import DEPTH_DIR
from dkp_tui.locks import remove_dead_temps, writer_lock

OWNED = frozenset({MANIFEST, REPORT, LABELS_DIR, *SPLITS})  # what a rebuild may delete (never depth/)
_CHUNK = 32


# -- what a source plans ---------------------------------------------------------------------------------------


@dataclass(slots=True)
class Frame:
    """One stored frame: an image file, or frame ``video_index`` of a video; ``mask`` for H36M without background."""

    name: str  # written to names.json (source-relative path, "clip.mp4#123" for video frames)
    path: str
    video_index: int = -1
    mask: str = ""


@dataclass
class Problem:
    """An unusable input. ``index`` is the frame it removes under --skip-bad (None: nothing to remove)."""

    path: str
    reason: str
    split: str = ""
    index: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "reason": self.reason, "split": self.split, "index": self.index}


@dataclass
class SplitPlan:
    frames: list[Frame] = field(default_factory=list)
    keypoints: np.ndarray | None = None  # N x J x 2, (y, x) in label units
    visible: np.ndarray | None = None  # N x J bool
    label_scale: float = 1.0
    source_size: int | None = None  # pixel labels: every source image must be source_size x source_size
    require_square: bool = False  # normalised labels: any square size
    crop: str = "center"
    same_as: str | None = None  # e.g. H36M's fit split is the train frames
    geometry: np.ndarray | None = None  # N x 4 (top, left, h, w) stored region in original pixels (folder labels)

    @property
    def labelled(self) -> bool:
        return self.keypoints is not None

    @property
    def has_masks(self) -> bool:
        return any(f.mask for f in self.frames)


@dataclass
class Plan:
    kind: str
    root: Path
    splits: dict[str, SplitPlan]
    joint_names: list[str] = field(default_factory=list)
    skeleton: list[tuple[int, int]] = field(default_factory=list)
    source: dict[str, Any] = field(default_factory=dict)  # JSON facts for the manifest; "options" fingerprinted
    inputs: list[str] = field(default_factory=list)  # label files etc. (frame files are added automatically)
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # told to the user and kept in the report
    extra_json: dict[str, Any] = field(default_factory=dict)  # relative path -> object written with the set
    report: dict[str, Any] = field(default_factory=dict)  # more facts for prepare_report.json (label counts)


@dataclass
class PrepareResult:
    out: Path
    manifest: Manifest
    reused: bool
    skipped: list[Problem]
    notes: list[str]
    seconds: float

    def summary(self) -> dict[str, Any]:
        """What ``--json`` prints: the manifest, where it is, and what happened."""
        return {"out": str(self.out), "reused": self.reused, "skipped": len(self.skipped),
                "seconds": round(self.seconds, 3), "manifest": self.manifest.to_dict()}


# -- progress ----------------------------------------------------------------------------------------------------


class Reporter:
    """Rich progress bars with ETA and notes on stderr; silent when disabled (``--quiet``, tests)."""

    def __init__(self, enabled: bool = True, console: Any = None) -> None:
        self.enabled = enabled
        self._console = console

    @property
    def console(self) -> Any:
        if self._console is None:
            from rich.console import Console

            self._console = Console(stderr=True)
        return self._console

    def note(self, text: str) -> None:
        if self.enabled:
            self.console.print(text, markup=False, highlight=False)

    @contextlib.contextmanager
    def task(self, description: str, total: int) -> Iterator[Callable[[int], None]]:
        if not self.enabled or total <= 0:
            yield lambda n=1: None
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   TextColumn("ETA"), TimeRemainingColumn())
        with Progress(*columns, console=self.console, transient=False) as progress:
            task_id = progress.add_task(description, total=total)
            yield lambda n=1: progress.advance(task_id, n)


# -- fingerprint and the output directory ---------------------------------------------------------------------


def _rel(path: str, root: Path) -> str:
    try:
        return Path(path).relative_to(root).as_posix()
    except ValueError:
        return str(path)


def fingerprint(plan: Plan, image_size: int) -> str:
    """A hash of the options that shape the output and of every input file's path, size and mtime."""
    h = hashlib.sha256()
    head = {"layout": LAYOUT_VERSION, "kind": plan.kind, "image_size": image_size,
            "options": plan.source.get("options", {})}
    h.update(json.dumps(head, sort_keys=True, default=str).encode())
    for name, sp in plan.splits.items():
        h.update(f"[{name}:{sp.same_as or ''}:{len(sp.frames)}]".encode())
        for f in sp.frames:
            h.update(f"{f.name}\0{f.video_index}\n".encode())
    files = {f.path for sp in plan.splits.values() for f in sp.frames}
    files |= {f.mask for sp in plan.splits.values() for f in sp.frames if f.mask}
    files |= set(plan.inputs)
    for path in sorted(files):
        try:
            st = os.stat(path)
            h.update(f"{_rel(path, plan.root)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        except OSError:
            h.update(f"{_rel(path, plan.root)}\0missing\n".encode())
    return h.hexdigest()


def _complete(out: Path, manifest: Manifest) -> bool:
    return all((out / (info.same_as or name) / IMAGES).is_file() for name, info in manifest.splits.items())


def reusable(out: Path, fp: str, force: bool) -> Manifest | None:
    """The existing manifest when ``out`` already holds this exact data set; refuses to clobber anything else."""
    check_output_dir(out, "--out")
    if not out.exists():
        return None
    if (out / MANIFEST).is_file():
        try:
            manifest = read_manifest(out)
        except DkpError:
            if force:
                return None
            raise
        same = manifest.source.get("fingerprint") == fp
        if same and not force and _complete(out, manifest):
            return manifest
        if not force and not same:
            raise DkpError(f"{out} already holds a {manifest.kind} data set prepared from different input or "
                           f"options; pass --force to rebuild it (depth caches are kept) or choose another --out")
        return None
    refuse_foreign(out, force)
    return None


def refuse_foreign(out: Path, force: bool) -> None:
    """A folder that holds something other than a data set is written into only with --force."""
    foreign = sorted(p.name for p in out.iterdir() if p.name not in OWNED | {DEPTH_DIR} and not p.name.startswith("."))
    if foreign and not force:
        raise DkpError(f"--out {out} is not empty and is not a dkp data set (it holds {foreign[0]}"
                       f"{f' and {len(foreign) - 1} more' if len(foreign) > 1 else ''}); choose an empty or new "
                       f"directory, or pass --force to write into it anyway")


def _clear(out: Path) -> None:
    """Remove what a previous (finished or interrupted) prepare wrote; the manifest goes first."""
    (out / MANIFEST).unlink(missing_ok=True)
    for name in sorted(OWNED - {MANIFEST}):
        p = out / name
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()


# -- checking ---------------------------------------------------------------------------------------------------


def _check_frame(sp: SplitPlan, split: str, i: int) -> list[Problem]:
    f = sp.frames[i]
    out: list[Problem] = []
    if f.video_index < 0:
        try:
            w, h = im.quick_check(f.path)
        except im.BadInput as err:
            return [Problem(f.path, str(err), split, i)]
        if sp.source_size and (w, h) != (sp.source_size, sp.source_size):
            out.append(Problem(f.path, f"is {w}x{h}; its labels are pixels of a {sp.source_size}x"
                                       f"{sp.source_size} frame", split, i))
        elif sp.require_square and w != h:
            out.append(Problem(f.path, f"is {w}x{h}; its normalised labels need a square frame", split, i))
    if f.mask:
        try:
            im.quick_check(f.mask)
        except im.BadInput as err:
            out.append(Problem(f.mask, f"mask: {err}", split, i))
    return out


def _parallel(jobs: Sequence[Callable[[], tuple[list[Problem], int]]], workers: int,
              advance: Callable[[int], None]) -> list[Problem]:
    """Run jobs on a thread pool, collecting their problems; cancels the rest on Ctrl-C or a crash."""
    problems: list[Problem] = []
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures: list[Future[tuple[list[Problem], int]]] = [pool.submit(job) for job in jobs]
        try:
            for fut in as_completed(futures):
                found, n = fut.result()
                problems.extend(found)
                advance(n)
        except BaseException:
            for fut in futures:
                fut.cancel()
            raise
    return problems


def check(plan: Plan, workers: int, reporter: Reporter) -> list[Problem]:
    """Every frame and mask header, in parallel; plus the problems the source found while planning."""
    problems = list(plan.problems)
    for split, sp in plan.splits.items():
        idx = [i for i, f in enumerate(sp.frames) if f.video_index < 0 or f.mask]
        if not idx:
            continue

        def job(chunk: list[int], sp: SplitPlan = sp, split: str = split) -> tuple[list[Problem], int]:
            return [p for i in chunk for p in _check_frame(sp, split, i)], len(chunk)

        jobs = [lambda c=idx[k:k + 256]: job(c) for k in range(0, len(idx), 256)]
        with reporter.task(f"checking {split}", len(idx)) as advance:
            problems.extend(_parallel(jobs, workers, advance))
    order = {s: k for k, s in enumerate(plan.splits)}
    return sorted(problems, key=lambda p: (order.get(p.split, -1), -1 if p.index is None else p.index))


def failure_message(problems: Sequence[Problem], out: Path) -> str:
    """One line: the first bad file, its reason, and how many other files are bad."""
    paths = list(dict.fromkeys(p.path for p in problems))
    first, more = problems[0], len(paths) - 1
    tail = f" (and {more} more bad file{'s' if more != 1 else ''})" if more else ""
    return (f"{first.path}: {first.reason}{tail}; nothing was written. Fix the input, or pass --skip-bad to "
            f"leave bad files out (they are listed in {out / REPORT})")


def _drop(sp: SplitPlan, bad: set[int]) -> SplitPlan:
    keep = [i for i in range(len(sp.frames)) if i not in bad]
    sp.frames = [sp.frames[i] for i in keep]
    if sp.keypoints is not None:
        sp.keypoints = sp.keypoints[keep]
    if sp.visible is not None:
        sp.visible = sp.visible[keep]
    if sp.geometry is not None:
        sp.geometry = sp.geometry[keep]
    return sp


def _check_space(out: Path, plan: Plan, size: int) -> None:
    need = sum(len(sp.frames) * size * size * (4 if sp.has_masks else 3) for sp in plan.splits.values())
    probe = out if out.exists() else next((p for p in out.parents if p.exists()), Path("."))
    free = shutil.disk_usage(probe).free
    if need > free:
        raise DkpError(f"{out}: the frames need {need / 1e9:.1f} GB at {size} px but only {free / 1e9:.1f} GB are "
                       f"free; free some space or choose a smaller --size")


# -- decoding ---------------------------------------------------------------------------------------------------


@dataclass
class _Target:
    images: np.ndarray
    masks: np.ndarray | None
    ok: np.ndarray  # N bool: row filled


def _store_image(sp: SplitPlan, t: _Target, i: int, rgb: np.ndarray, size: int) -> None:
    f = sp.frames[i]
    if f.mask:
        mask = im.load_mask(f.mask)
        rgb = im.composite(rgb, mask)
        assert t.masks is not None
        t.masks[i] = im.resize_mask(im.cropped(mask, sp.crop), size)
    t.images[i] = im.to_storage(rgb, size, sp.crop)
    t.ok[i] = True


def _image_job(sp: SplitPlan, split: str, t: _Target, chunk: list[int], size: int) -> tuple[list[Problem], int]:
    problems = []
    for i in chunk:
        try:
            _store_image(sp, t, i, im.load_rgb(sp.frames[i].path), size)
        except im.BadInput as err:
            problems.append(Problem(sp.frames[i].path, str(err), split, i))
    return problems, len(chunk)


def _video_job(sp: SplitPlan, split: str, t: _Target, path: str, rows: list[int], size: int,
               notes: list[str]) -> tuple[list[Problem], int]:
    by_index = {sp.frames[i].video_index: i for i in rows}
    try:
        for vi, rgb in im.read_video_frames(path, list(by_index)):
            _store_image(sp, t, by_index[vi], rgb, size)
    except im.BadInput as err:
        return [Problem(path, str(err), split, i) for i in rows if not t.ok[i]], len(rows)
    short = [i for i in rows if not t.ok[i]]
    if len(short) == len(rows):
        return [Problem(path, "no frame could be decoded", split, i) for i in rows], len(rows)
    if short:  # containers often over-count by a frame or two: drop the tail, say so, do not fail
        notes.append(f"{path}: the stream ends before frame {sp.frames[short[0]].video_index} the header promised; "
                     f"{len(short)} sampled frame(s) past the end left out")
    return [], len(rows)


def _decode_split(split: str, sp: SplitPlan, out: Path, size: int, workers: int, reporter: Reporter,
                  notes: list[str]) -> tuple[list[Problem], _Target]:
    n = len(sp.frames)
    d = out / split
    images = create_image_array(d / IMAGES, n, size)
    masks = (np.lib.format.open_memmap(partial_path(d / MASKS), mode="w+", dtype=np.uint8, shape=(n, size, size))
             if sp.has_masks else None)
    t = _Target(images, masks, np.zeros(n, dtype=bool))
    still = [i for i, f in enumerate(sp.frames) if f.video_index < 0]
    videos: dict[str, list[int]] = {}
    for i, f in enumerate(sp.frames):
        if f.video_index >= 0:
            videos.setdefault(f.path, []).append(i)
    jobs: list[Callable[[], tuple[list[Problem], int]]] = [
        lambda c=still[k:k + _CHUNK]: _image_job(sp, split, t, c, size) for k in range(0, len(still), _CHUNK)]
    jobs += [lambda p=p, r=r: _video_job(sp, split, t, p, r, size, notes) for p, r in videos.items()]
    with reporter.task(f"decoding {split} ({n} frames)", n) as advance:
        problems = _parallel(jobs, workers, advance)
    return sorted(problems, key=lambda p: p.index or 0), t


def _compact(split: str, sp: SplitPlan, out: Path, t: _Target, size: int) -> _Target:
    """Rewrite the partial arrays without the rows that could not be decoded."""
    keep = np.flatnonzero(t.ok)
    d = out / split
    old_masks = t.masks
    moved = partial_path(d / IMAGES).with_suffix(".old.npy")
    t.images.flush()
    partial_path(d / IMAGES).replace(moved)
    src = np.load(moved, mmap_mode="r")
    images = create_image_array(d / IMAGES, len(keep), size)
    masks = None
    if old_masks is not None:
        masks = np.lib.format.open_memmap(partial_path(d / MASKS).with_suffix(".new.npy"), mode="w+",
                                          dtype=np.uint8, shape=(len(keep), size, size))
    for k in range(0, len(keep), 1024):
        rows = keep[k:k + 1024]
        images[k:k + len(rows)] = src[rows]
        if masks is not None and old_masks is not None:
            masks[k:k + len(rows)] = old_masks[rows]
    del src
    moved.unlink()
    if masks is not None:
        masks.flush()
        del old_masks
        partial_path(d / MASKS).with_suffix(".new.npy").replace(partial_path(d / MASKS))
        masks = np.load(partial_path(d / MASKS), mmap_mode="r+")
    _drop(sp, set(np.flatnonzero(~t.ok).tolist()))
    return _Target(images, masks, np.ones(len(keep), dtype=bool))


def _remove_partials(out: Path) -> None:
    for split in SPLITS:
        d = out / split
        if d.is_dir():
            for p in d.glob(".*.npy"):
                p.unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                d.rmdir()  # only if empty


# -- the whole run ----------------------------------------------------------------------------------------------


def default_workers() -> int:
    return max(1, min(8, os.cpu_count() or 1))


def prepare(plan: Plan, out: str | Path, image_size: int, *, force: bool = False, skip_bad: bool = False,
            workers: int = 0, reporter: Reporter | None = None) -> PrepareResult:
    """Check, decode and write ``plan`` as a dkp data set in ``out`` (see the module docstring)."""
    start = time.monotonic()
    out = Path(out)
    reporter = reporter or Reporter(enabled=False)
    workers = workers or default_workers()
    if image_size < 8:
        raise DkpError(f"--size {image_size} is too small (at least 8 px)")
    _check_apart(out, plan.root)
    for note in plan.notes:
        reporter.note(note)
    fp = fingerprint(plan, image_size)
    check_output_dir(out, "--out")
    with writer_lock(out, f"data set {out}", clean=False):  # a second prepare of the folder is refused at once
        return _prepare_locked(plan, out, image_size, fp, force, skip_bad, workers, reporter, start)


def _prepare_locked(plan: Plan, out: Path, image_size: int, fp: str, force: bool, skip_bad: bool, workers: int,
                    reporter: Reporter, start: float) -> PrepareResult:
    existing = reusable(out, fp, force)
    if existing is not None:
        reporter.note(f"{out}: already prepared from this input; reusing it (--force rebuilds)")
        return PrepareResult(out, existing, True, [], list(plan.notes), time.monotonic() - start)

    problems = check(plan, workers, reporter)
    if problems and not skip_bad:
        raise DkpError(failure_message(problems, out))
    _drop_problems(plan, problems)
    _check_space(out, plan, image_size)

    out.mkdir(parents=True, exist_ok=True)
    _clear(out)
    remove_dead_temps(out)  # of a killed prepare; the folder passed its checks above
    notes = list(plan.notes)
    try:
        counts: dict[str, int] = {}
        for split, sp in plan.splits.items():
            if sp.same_as:
                continue
            found, target = _decode_split(split, sp, out, image_size, workers, reporter, notes)
            if found and not skip_bad:
                raise DkpError(failure_message(found, out))
            problems.extend(found)
            if not target.ok.all():
                target = _compact(split, sp, out, target, image_size)
            if not sp.frames:
                raise DkpError(f"{plan.root}: no usable frames left in the {split} split")
            _write_split(out, split, sp, target)
            counts[split] = len(sp.frames)
        for rel, obj in plan.extra_json.items():
            write_json(out / rel, obj, indent=None)
        manifest = _manifest(plan, image_size, fp, len(problems))
        write_json(out / REPORT, {"kind": plan.kind, "root": str(plan.root), "counts": counts,
                                  "skipped": [p.to_dict() for p in problems], "notes": notes, **plan.report})
        write_manifest(out, manifest)
    except BaseException:
        _remove_partials(out)
        raise
    for note in notes[len(plan.notes):]:
        reporter.note(note)
    if problems:
        reporter.note(f"left out {len(problems)} bad input(s); see {out / REPORT}")
    return PrepareResult(out, manifest, False, problems, notes, time.monotonic() - start)


def _check_apart(out: Path, root: Path) -> None:
    """The output may not be the input's folder or hold it: the default --out of a preset (data/taichi) is also a
    natural home for the download, and a rebuild clears train/, fit/, test/ and labels/ under --out."""
    target, source = out.resolve(), Path(root).resolve()
    if target == source or target in source.parents:
        where = "is the input folder" if target == source else f"holds the input folder {root}"
        raise DkpError(f"--out {out} {where}; writing the data set there would replace the input's own train/ "
                       "(and more): choose another --out, e.g. data/<name>-prepared")


def _drop_problems(plan: Plan, problems: Sequence[Problem]) -> None:
    by_split: dict[str, set[int]] = {}
    for p in problems:
        if p.index is not None:
            by_split.setdefault(p.split, set()).add(p.index)
    for split, bad in by_split.items():
        _drop(plan.splits[split], bad)
    for split, sp in plan.splits.items():
        if not sp.same_as and not sp.frames:
            raise DkpError(f"{plan.root}: no usable frames in the {split} split")


def _write_split(out: Path, split: str, sp: SplitPlan, t: _Target) -> None:
    d = out / split
    finish_array(d / IMAGES, t.images)
    if t.masks is not None:
        finish_array(d / MASKS, t.masks)
    if sp.keypoints is not None:
        visible = sp.visible if sp.visible is not None else np.ones(sp.keypoints.shape[:2], dtype=bool)
        save_array(d / KEYPOINTS, np.ascontiguousarray(sp.keypoints, dtype=np.float32))
        save_array(d / VISIBLE, np.ascontiguousarray(visible, dtype=bool))
    if sp.geometry is not None:
        save_array(d / GEOMETRY, np.ascontiguousarray(sp.geometry, dtype=np.float32))
    write_json(d / NAMES, [f.name for f in sp.frames], indent=None)


def _manifest(plan: Plan, size: int, fp: str, n_skipped: int) -> Manifest:
    splits: dict[str, SplitInfo] = {}
    for name, sp in plan.splits.items():
        src = plan.splits[sp.same_as] if sp.same_as else sp
        splits[name] = SplitInfo(count=len(src.frames), labelled=src.labelled, label_scale=float(src.label_scale),
                                 has_masks=src.has_masks, same_as=sp.same_as)
    source = {**plan.source, "root": str(plan.root), "fingerprint": fp, "skipped": n_skipped}
    return Manifest(kind=plan.kind, image_size=size, splits=splits, joint_names=list(plan.joint_names),
                    skeleton=[tuple(e) for e in plan.skeleton], source=source)


def source_root(root: str | Path, what: str) -> Path:
    """The download's folder; an archive or other file given in its place is named as such."""
    root = Path(root)
    if root.is_file():
        raise DkpError(f"{root}: is a file, not a folder ({what}); unpack the download and give its folder")
    if not root.is_dir():
        raise DkpError(f"{root}: no such directory ({what})")
    return root


def read_lines(path: str | Path) -> list[str]:
    """Non-empty lines of a list file, ``#`` comments removed."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DkpError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise DkpError(f"{path}: unreadable ({err})") from None
    return [s for s in (line.split("#", 1)[0].strip() for line in text.splitlines()) if s]
