"""Training batches from a dkp data set: memory-mapped frames, paired depth, one shared flip, deterministic by step.

Why not torch's DataLoader: every batch here is a pure function of ``(seed, step)`` (the epoch's permutation from
``(seed, epoch)``, each sample's flip from ``(seed, step, position)``), so a resumed run sees exactly the batches
an uninterrupted one would, and under DDP each rank takes its contiguous slice of the same global batch. Frames are
already decoded (uint8 memmaps), so one background thread that gathers, converts and resizes is enough to keep a
training step from waiting (see benchmarks/loader.py).

Value conventions: RGB ``x / 127.5 - 1``; depth ``d = uint16 / 65535`` (near = 1), then ``(d - 0.5) / 0.5``,
replicated to 3 channels. A frame and its depth map always share the flip draw (spec: otherwise the KD target is
mirrored).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from dkp_tui.errors import DkpError
from dkp_tui.formats.dataset_dir import open_split, read_manifest
from dkp_tui.formats.depth_cache import open_depth

_PERM_STREAM, _FLIP_STREAM = 0, 1  # independent RNG streams under one seed


@dataclass
class Batch:
    image: torch.Tensor | None  # (B, 3, S, S) float32 in [-1, 1], RGB
    depth: torch.Tensor | None  # (B, 3, S, S) float32 in [-1, 1], the depth map replicated to 3 channels
    index: torch.Tensor  # (B,) int64 data-set indices
    flipped: torch.Tensor  # (B,) bool, horizontally flipped (image and depth alike)

    def to(self, device: torch.device | str, non_blocking: bool = True) -> Batch:
        def move(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.to(device, non_blocking=non_blocking)

        return Batch(move(self.image), move(self.depth), self.index, self.flipped)


# -- pure conversions (shared by training and evaluation) ----------------------------------------------------

def _resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear, antialiased when shrinking; a no-op at the stored size."""
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    down = x.shape[-1] > size or x.shape[-2] > size
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=down)


def images_to_tensor(frames: np.ndarray, size: int) -> torch.Tensor:
    """uint8 (B, H, W, 3) -> float32 (B, 3, size, size) in [-1, 1]: x / 127.5 - 1.

    The conversion runs in numpy (one core, GIL released), so the prefetch thread never competes with the
    training step for torch's intra-op threads; torch only resizes, when the stored size differs.
    """
    out = np.empty((frames.shape[0], 3, frames.shape[1], frames.shape[2]), dtype=np.float32)
    np.multiply(frames.transpose(0, 3, 1, 2), np.float32(1.0 / 127.5), out=out)
    out -= np.float32(1.0)
    return _resize(torch.from_numpy(out), size).contiguous()


def depth_to_tensor(maps: np.ndarray, size: int, channels: int = 1) -> torch.Tensor:
    """uint16 (B, H, W), near = 65535 -> float32 (B, channels, size, size) in [-1, 1]: (d - 0.5) / 0.5 with
    d = uint16 / 65535; the teacher's input is the map replicated to 3 channels."""
    n, h, w = maps.shape
    resize = h != size or w != size
    out = np.empty((n, 1 if resize else channels, h, w), dtype=np.float32)
    np.multiply(maps, np.float32(2.0 / 65535.0), out=out[:, 0])
    out[:, 0] -= np.float32(1.0)
    if resize:
        x = _resize(torch.from_numpy(out), size)
        return x.expand(-1, channels, -1, -1).contiguous() if channels > 1 else x
    for c in range(1, channels):
        out[:, c] = out[:, 0]
    return torch.from_numpy(out)


def _flip(rows: np.ndarray, flips: np.ndarray) -> np.ndarray:
    """Mirror the flagged frames left-right, in place on the gathered (uint8/uint16, N x H x W [x C]) copy."""
    k = np.flatnonzero(flips)
    if len(k):
        rows[k] = rows[k, :, ::-1]
    return rows


def _gather(array: Any, idx: np.ndarray) -> np.ndarray:
    """array[idx] reading the memmap in ascending order (sequential I/O), returned in idx's order (a copy)."""
    order = np.argsort(idx, kind="stable")
    rows = np.asarray(array[idx[order]])
    out = np.empty_like(rows)
    out[order] = rows
    return out


# -- training batches --------------------------------------------------------------------------------------------

class BatchLoader:
    """Deterministic, DDP-aware batches of RGB and/or depth for the training loop."""

    def __init__(self, dataset: str | Path, split: str, image_size: int, batch_size: int, seed: int,
                 hflip: bool = True, rgb: bool = True, depth: bool = False, depth_tag: str = "", rank: int = 0,
                 world_size: int = 1, prefetch: int = 2, pin_memory: bool | None = None) -> None:
        if not rgb and not depth:
            raise DkpError("the loader needs rgb, depth or both")
        if world_size < 1 or not 0 <= rank < world_size:
            raise DkpError(f"rank {rank} of world size {world_size} is not valid")
        if batch_size < 1 or batch_size % world_size:
            raise DkpError(f"batch size {batch_size} (global) must be a positive multiple of {world_size} ranks")
        manifest = read_manifest(dataset)
        arrays = open_split(dataset, split, manifest)
        self.images = arrays.images if rgb else None
        self.depth = open_depth(dataset, split, depth_tag) if depth else None
        self.count = len(arrays)
        if self.depth is not None and self.depth.shape[1:] != arrays.images.shape[1:3]:
            raise DkpError(f"{dataset}: depth maps are {self.depth.shape[1:]}, frames {arrays.images.shape[1:3]}")
        self.image_size, self.batch_size, self.seed, self.hflip = image_size, batch_size, seed, hflip
        self.rank, self.world_size, self.local_size = rank, world_size, batch_size // world_size
        self.prefetch = prefetch
        self.pin_memory = torch.cuda.is_available() if pin_memory is None else pin_memory
        self.batches_per_epoch = self.count // batch_size
        if self.batches_per_epoch == 0:
            raise DkpError(f"{dataset}: split {split!r} has {self.count} images, fewer than one batch of "
                           f"{batch_size}; lower train.batch_size or prepare more images")
        self._perm: tuple[int, np.ndarray] | None = None
        self._lock = threading.Lock()

    def __len__(self) -> int:
        """Batches per epoch (the incomplete last batch is dropped)."""
        return self.batches_per_epoch

    def permutation(self, epoch: int) -> np.ndarray:
        with self._lock:
            if self._perm is None or self._perm[0] != epoch:
                rng = np.random.default_rng([self.seed, _PERM_STREAM, epoch])
                self._perm = (epoch, rng.permutation(self.count))
            return self._perm[1]

    def indices(self, step: int) -> tuple[np.ndarray, np.ndarray]:
        """(data-set indices, flips) of this rank's part of the global batch at ``step``."""
        epoch, k = divmod(step, self.batches_per_epoch)
        glob = self.permutation(epoch)[k * self.batch_size:(k + 1) * self.batch_size]
        if self.hflip:
            flips = np.random.default_rng([self.seed, _FLIP_STREAM, step]).random(self.batch_size) < 0.5
        else:
            flips = np.zeros(self.batch_size, dtype=bool)
        part = slice(self.rank * self.local_size, (self.rank + 1) * self.local_size)
        return glob[part].astype(np.int64), flips[part]

    def batch(self, step: int) -> Batch:
        idx, flips = self.indices(step)
        image = depth = None
        if self.images is not None:
            image = images_to_tensor(_flip(_gather(self.images, idx), flips), self.image_size)
        if self.depth is not None:  # the same flips: one draw per sample for the frame and its depth map
            depth = depth_to_tensor(_flip(_gather(self.depth, idx), flips), self.image_size, channels=3)
        if self.pin_memory:
            image = image.pin_memory() if image is not None else None
            depth = depth.pin_memory() if depth is not None else None
        return Batch(image, depth, torch.from_numpy(idx), torch.from_numpy(flips))

    def iterate(self, start_step: int, end_step: int) -> Iterator[tuple[int, Batch]]:
        """Batches for steps [start_step, end_step), prepared ``prefetch`` ahead by a background thread."""
        if self.prefetch <= 0:
            for step in range(start_step, end_step):
                yield step, self.batch(step)
            return
        q: queue.Queue[tuple[int, Batch | None, BaseException | None]] = queue.Queue(maxsize=self.prefetch)
        stop = threading.Event()

        def put(item: tuple[int, Batch | None, BaseException | None]) -> bool:
            while not stop.is_set():
                try:
                    q.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        def work() -> None:
            try:
                for step in range(start_step, end_step):
                    if not put((step, self.batch(step), None)):
                        return
            except BaseException as err:  # handed to the consumer, raised there
                put((-1, None, err))
                return
            put((end_step, None, None))

        thread = threading.Thread(target=work, name="dkp-batch-prefetch", daemon=True)
        thread.start()
        try:
            while True:
                step, batch, err = q.get()
                if err is not None:
                    raise err
                if batch is None:
                    return
                yield step, batch
        finally:
            stop.set()
            thread.join(timeout=5.0)


# -- evaluation batches ------------------------------------------------------------------------------------------

def eval_batches(dataset: str | Path, split: str, image_size: int, batch_size: int = 64, kind: str = "rgb",
                 depth_tag: str = "") -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The whole split in order, unflipped: (images (b, 3, S, S) in [-1, 1], indices (b,) int64); the last
    batch may be short. ``kind="depth"`` gives the depth maps replicated to 3 channels."""
    if kind not in ("rgb", "depth"):
        raise DkpError(f"kind must be rgb or depth (got {kind!r})")
    if batch_size < 1:
        raise DkpError("batch size must be >= 1")
    manifest = read_manifest(dataset)
    source: Any = open_split(dataset, split, manifest).images if kind == "rgb" else open_depth(dataset, split, depth_tag)
    count = len(source)
    for start in range(0, count, batch_size):
        stop = min(count, start + batch_size)
        rows = np.asarray(source[start:stop])
        if kind == "rgb":
            x = images_to_tensor(rows, image_size)
        else:
            x = depth_to_tensor(rows, image_size, channels=3)
        yield x, torch.arange(start, stop, dtype=torch.int64)
