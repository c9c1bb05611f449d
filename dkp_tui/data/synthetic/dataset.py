"""The synthetic data set on disk: every split's images, masks, joints and exact depth (tag ``exact``), written
through the one prepare engine (``prepare_common.build``: the lock, reuse of an unchanged set, manifest last).

Why streamed: images are rendered in chunks of one depth shard, in this process or in worker processes, and each
chunk goes to disk as it arrives (``ArrayWriter``, depth shards), so the writer holds a few chunks at a time
whatever the set's size; 400,000 frames need no more memory than 4,000.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, wait
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from dkp_tui.atomic import write_text
from dkp_tui.data.prepare_common import ArrayWriter, Reporter, build
from dkp_tui.data.synthetic.family import Family
from dkp_tui.data.synthetic.figure import (
    BACKGROUNDS,
    DEFAULT,
    GENERATOR_VERSION,
    JOINT_NAMES,
    SKELETON,
    SyntheticParams,
    check_request,
)
from dkp_tui.data.synthetic.registry import DEFAULT_FAMILY, family_params, get, resolve_params, sample_rng
from dkp_tui.errors import DkpError
from dkp_tui.formats import depth_cache as cache
from dkp_tui.formats.dataset_dir import IMAGES, KEYPOINTS, MASKS, NAMES, VISIBLE, Manifest, SplitInfo

DEPTH_TAG = "exact"
CHUNK = cache.DEFAULT_SHARD_SIZE  # images per work unit: one depth shard
PARALLEL_FROM = 2000  # images; below this, starting worker processes costs more than it saves
AHEAD = 2  # chunks rendered ahead per worker: enough to keep them busy, few enough to keep memory flat


def _source(params: SyntheticParams, seed: int, background: str, family: Family,
            variant: dict[str, Any] | None = None) -> dict[str, Any]:
    source = {"generator_version": GENERATOR_VERSION, "seed": seed, "background": background,
              "params": family_params(family.name, params, variant)}
    if family.named:  # the original family's manifests stay as they were before families existed
        source.update(family=family.name, family_version=family.version)
    return source


def _manifest(size: int, counts: dict[str, int], source: dict[str, Any]) -> Manifest:
    splits = {s: SplitInfo(count=n, labelled=True, label_scale=float(size), has_masks=True) for s, n in counts.items()}
    return Manifest(kind="synthetic", image_size=size, splits=splits, joint_names=list(JOINT_NAMES),
                    skeleton=[tuple(e) for e in SKELETON], source=source)


def _identity(manifest: Manifest) -> str:
    """What makes two synthetic sets the same: kind, size, split counts and the requested source (its ``stats``
    are facts of a build). Synthetic manifests carry no stored fingerprint (their bytes predate the engine), so
    the engine compares this one, computed from the manifest, for the existing set and the requested one."""
    requested = {k: v for k, v in manifest.source.items() if k != "stats"}
    key = {"kind": manifest.kind, "image_size": manifest.image_size, "source": requested,
           "counts": {k: v.count for k, v in manifest.splits.items()}}
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode("utf-8")).hexdigest()


def _complete(root: Path, manifest: Manifest) -> bool:
    return DEPTH_TAG in cache.list_tags(root)


def _different(root: Path, have: Manifest) -> str:
    return (f"{root} already holds a different data set ({have.kind}, {have.image_size} px, "
            f"{', '.join(f'{k} {v.count}' for k, v in have.splits.items())}); "
            "use --force to rebuild it, or choose another --out")


def render_chunk(split: str, start: int, stop: int, size: int, background: str, seed: int,
                 params: SyntheticParams, family: str = DEFAULT_FAMILY, variant: dict[str, Any] | None = None
                 ) -> tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """Images [start, stop) of ``split``: (start, rgb, masks, uint16 depth, joints, distractor count).

    A pure function of its arguments, so chunks can be rendered in any process and in any order.
    """
    cv2.setNumThreads(1)  # per-image OpenCV calls are tiny: threads only add overhead
    fam = get(family)
    check_request(size, background)
    drawn_with = resolve_params(family, params, variant)  # once per chunk, not per image
    n = stop - start
    images = np.empty((n, size, size, 3), dtype=np.uint8)
    masks = np.empty((n, size, size), dtype=np.uint8)
    depth = np.empty((n, size, size), dtype=np.uint16)
    joints = np.empty((n, len(JOINT_NAMES), 2), dtype=np.float32)
    clutter = 0
    for k in range(n):
        s = fam.render(sample_rng(seed, split, start + k, family), size, background, drawn_with)
        images[k], masks[k], joints[k] = s.rgb, s.mask, s.joints
        depth[k] = cache.encode_depth(s.depth)
        clutter += s.n_distractors
    return start, images, masks, depth, joints, clutter


Chunk = tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]


def _render_all(jobs: list[tuple[str, int, int]], args: tuple[Any, ...], workers: int,
                store: Callable[[str, Chunk], None]) -> None:
    """Render every (split, start, stop) job and hand each chunk to ``store`` as it is done, in this process or in
    ``workers`` processes with at most ``AHEAD`` chunks per worker in flight or waiting."""
    if workers <= 1:
        for split, a, b in jobs:
            store(split, render_chunk(split, a, b, *args))
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    todo = iter(jobs)
    pending: dict[Future[Chunk], str] = {}
    # spawn: the parent may hold torch/OpenMP threads, which fork does not survive reliably
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        def submit() -> None:
            job = next(todo, None)
            if job is not None:
                pending[pool.submit(render_chunk, *job, *args)] = job[0]

        try:
            for _ in range(AHEAD * workers):
                submit()
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    split = pending.pop(future)
                    store(split, future.result())
                    submit()
        except BaseException:
            for future in pending:
                future.cancel()
            raise


class _SplitWriter:
    """One split's files, filled chunk by chunk in any order: images, masks and joints through ``ArrayWriter``,
    each chunk's depth as its shard; the facts the manifest records are summed on the way."""

    def __init__(self, root: Path, split: str, n: int, size: int) -> None:
        d = root / split
        self.root, self.split, self.n, self.left = root, split, n, n
        self.images = ArrayWriter(d / IMAGES, np.uint8, (n, size, size, 3))
        self.keypoints = ArrayWriter(d / KEYPOINTS, np.float32, (n, len(JOINT_NAMES), 2))
        self.masks = ArrayWriter(d / MASKS, np.uint8, (n, size, size))
        self.clutter = self.figure_pixels = 0

    def add(self, chunk: Chunk) -> None:
        start, images, masks, depth, joints, clutter = chunk
        self.images.write(start, images)
        self.masks.write(start, masks)
        self.keypoints.write(start, joints)
        cache.write_shard(self.root, DEPTH_TAG, self.split, start // CHUNK, depth, cache.count_constant(depth))
        self.clutter += clutter
        self.figure_pixels += int(masks.sum(dtype=np.int64))
        self.left -= len(images)

    def close(self) -> None:
        for writer in (self.images, self.keypoints, self.masks):
            writer.close()


def _finish_split(root: Path, split: str, writer: _SplitWriter) -> dict[str, float]:
    """The split's remaining files once every chunk is in; returns its facts for the manifest."""
    n = writer.n
    for array in (writer.images, writer.keypoints, writer.masks):
        array.finish()
    visible = ArrayWriter(root / split / VISIBLE, bool, (n, len(JOINT_NAMES)))
    for a in range(0, n, CHUNK):
        visible.write(a, np.ones((min(CHUNK, n - a), len(JOINT_NAMES)), dtype=bool))
    visible.finish()
    # as write_json writes the list, without holding it
    write_text(root / split / NAMES, "[" + ", ".join(json.dumps(f"{split}/{i:06d}") for i in range(n)) + "]\n")
    pixels = n * writer.images.shape[1] * writer.images.shape[2]
    return {"mean_distractors": writer.clutter / max(n, 1), "figure_fraction": writer.figure_pixels / pixels}


def _write(root: Path, size: int, counts: dict[str, int], background: str, seed: int, params: SyntheticParams,
           workers: int, family: Family, variant: dict[str, Any] | None, source: dict[str, Any],
           reporter: Reporter) -> Manifest:
    """Render and write every split and the depth cache; returns the manifest (the engine writes it last)."""
    if (cache.depth_root(root) / DEPTH_TAG).is_dir():  # stale depth of the set being replaced
        shutil.rmtree(cache.depth_root(root) / DEPTH_TAG)
    total = sum(counts.values())
    if workers <= 0:
        workers = min(os.cpu_count() or 1, 8) if total >= PARALLEL_FROM else 1
    writers: dict[str, _SplitWriter] = {}
    facts: dict[str, dict[str, float]] = {}
    threads = cv2.getNumThreads()
    try:
        for split, n in counts.items():
            writers[split] = _SplitWriter(root, split, n, size)
        with reporter.task("synthetic", total) as advance:
            def store(split: str, chunk: Chunk) -> None:
                writer = writers[split]
                writer.add(chunk)
                advance(len(chunk[1]))
                if writer.left == 0:
                    facts[split] = _finish_split(root, split, writer)

            jobs = [(split, a, min(n, a + CHUNK)) for split, n in counts.items() for a in range(0, n, CHUNK)]
            _render_all(jobs, (size, background, seed, params, family.name, variant), workers, store)
    finally:
        cv2.setNumThreads(threads)
        for writer in writers.values():
            writer.close()
    facts = {split: facts[split] for split in counts}  # the manifest lists the splits in their order
    source["stats"] = {"mean_distractors": {k: round(v["mean_distractors"], 3) for k, v in facts.items()},
                       "figure_fraction": {k: round(v["figure_fraction"], 4) for k, v in facts.items()}}
    manifest = _manifest(size, counts, source)
    text = json.dumps(manifest.to_dict(), indent=2, sort_keys=False) + "\n"  # what write_manifest writes
    shard = cache.DEFAULT_SHARD_SIZE
    cache.write_depth_manifest(root, DEPTH_TAG, {  # the keys of `dkp depth`'s manifests, where they apply
        "source": "synthetic", "model": "exact-synthetic", "backend": "dkp synthetic renderer",
        "generator_version": GENERATOR_VERSION, "output": {"size": [size, size], "interpolation": "none"},
        "normalisation": "minmax-inverse-depth", "polarity": "near=1", "encoding": "uint16 round(d * 65535)",
        "shard_size": shard, "dataset_manifest_hash": hashlib.sha256(text.encode("utf-8")).hexdigest()[:16],
        "splits": {k: {"count": n, "constant": 0, "shards": (n + shard - 1) // shard} for k, n in counts.items()},
        "images": sum(counts.values()), "constant_maps": 0,
    })
    return manifest


def generate_dataset(root: str | Path, size: int = 64, n_train: int = 4000, n_fit: int = 1000, n_test: int = 500,
                     background: str = "cluttered", seed: int = 0, progress: bool = True, force: bool = False,
                     params: SyntheticParams = DEFAULT, workers: int = 0, family: str = DEFAULT_FAMILY,
                     variant: dict[str, Any] | None = None) -> Manifest:
    """Render the three labelled splits, their exact depth cache (tag ``exact``), and the manifest last.

    Idempotent: the same request on an existing set returns it untouched; a different one needs ``force``.
    """
    return prepare(root, size, n_train, n_fit, n_test, background, seed, progress, force, params, workers,
                   family, variant)[0]


def prepare(root: str | Path, size: int = 64, n_train: int = 4000, n_fit: int = 1000, n_test: int = 500,
            background: str = "cluttered", seed: int = 0, progress: bool = True, force: bool = False,
            params: SyntheticParams = DEFAULT, workers: int = 0, family: str = DEFAULT_FAMILY,
            variant: dict[str, Any] | None = None) -> tuple[Manifest, bool]:
    """``generate_dataset`` that also says whether an existing set was reused (for the CLI's report).

    ``workers``: rendering processes; 0 = one per CPU (at most 8) for sets of 2,000 images or more, else 1. The
    bytes written do not depend on it.
    """
    root = Path(root)
    if background not in BACKGROUNDS:
        raise DkpError(f"unknown background {background!r}; choose {' or '.join(BACKGROUNDS)}")
    if size < 16 or size > 1024:
        raise DkpError(f"--size {size}: choose an image size between 16 and 1024 (64 or 128 are the presets')")
    counts = {"train": n_train, "fit": n_fit, "test": n_test}
    for split, n in counts.items():
        if n < 1:
            raise DkpError(f"--n-{split} must be at least 1 (got {n})")
    fam = get(family)
    source = _source(params, seed, background, fam, variant)
    wanted = _manifest(size, counts, source)
    reporter = Reporter(enabled=progress)
    return build(root, _identity(wanted),
                 lambda: _write(root, size, counts, background, seed, params, workers, fam, variant, source, reporter),
                 force=force, reporter=reporter, identify=_identity, complete=_complete, refusal=_different,
                 reuse_note=f"{root}: synthetic data set already prepared with these parameters; reusing it "
                            "(--force rebuilds)")
