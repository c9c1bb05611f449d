"""Storage format for prepared frames: one memory-mapped uint8 ``.npy`` per split vs one image file per frame.

Times what a training step asks of storage: a random batch of 64 frames at 128 px, turned into a float tensor
in [-1, 1] with a random horizontal flip (the training augmentation), on ONE core. Per-file variants decode PNG or
JPEG with PIL (what dkp would use) and OpenCV; "png256+resize" is the reference loaders' path (256-px PNG frames,
resized to 128 per sample). Prints images/s and the ratio to the memmap. Used by docs/data-layout.md.

    python benchmarks/storage.py                  # 1,024 frames, 40 batches per variant
    python benchmarks/storage.py --n 4096 --batches 80 --json
    python benchmarks/storage.py --cold           # also drop the page cache of the files first (fadvise)

The frames are synthetic but photo-like (smooth shading, edges, sensor noise), so PNG/JPEG sizes and decode times
are realistic: random noise would make PNG look worse than it is, flat colour better.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dkp_tui.formats.dataset_dir import create_image_array, finish_array  # noqa: E402

BATCH = 64


def photo_like(rng: np.random.Generator, size: int) -> np.ndarray:
    """Low-frequency colour fields + a few hard-edged shapes + noise: compresses like a real frame."""
    coarse = rng.random((6, 6, 3)).astype(np.float32)
    img = cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC) * 200 + 20
    for _ in range(5):
        c = tuple(int(v) for v in rng.integers(0, 255, 3))
        x, y = (int(v) for v in rng.integers(0, size, 2))
        r = int(rng.integers(size // 16, size // 4))
        cv2.circle(img, (x, y), r, c, -1) if rng.random() < 0.5 else cv2.rectangle(img, (x, y), (x + r, y + 2 * r), c, -1)
    img += rng.normal(0, 4, img.shape).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def build(root: Path, n: int, size: int, seed: int) -> dict[str, object]:
    rng = np.random.default_rng(seed)
    arr = create_image_array(root / "images.npy", n, size)
    for d in ("png", "jpg", "png256"):
        (root / d).mkdir()
    for i in range(n):
        big = photo_like(rng, 2 * size)
        small = np.asarray(Image.fromarray(big).resize((size, size), Image.BILINEAR))
        arr[i] = small
        Image.fromarray(small).save(root / "png" / f"{i:06d}.png")
        Image.fromarray(small).save(root / "jpg" / f"{i:06d}.jpg", quality=95)
        Image.fromarray(big).save(root / "png256" / f"{i:06d}.png")
    finish_array(root / "images.npy", arr)

    def mean_kb(d: str) -> float:
        files = list((root / d).iterdir())
        return sum(f.stat().st_size for f in files) / len(files) / 1024

    return {"npy_kb_per_image": size * size * 3 / 1024, "png_kb": mean_kb("png"), "jpg_kb": mean_kb("jpg"),
            "png256_kb": mean_kb("png256")}


def augment(batch: np.ndarray, rng: np.random.Generator) -> torch.Tensor:
    """uint8 B x H x W x 3 -> float B x 3 x H x W in [-1, 1], each image flipped with p = 0.5."""
    x = torch.from_numpy(batch).permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)
    flip = torch.from_numpy(rng.random(len(batch)) < 0.5)
    x[flip] = x[flip].flip(-1)
    return x


def drop_cache(paths: list[Path]) -> None:
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def variants(root: Path, size: int) -> dict[str, tuple[Callable[[np.ndarray], np.ndarray], list[Path]]]:
    arr = np.load(root / "images.npy", mmap_mode="r")

    def pil(d: str, resize: bool = False) -> Callable[[np.ndarray], np.ndarray]:
        ext = "jpg" if d == "jpg" else "png"

        def load(idx: np.ndarray) -> np.ndarray:
            out = np.empty((len(idx), size, size, 3), np.uint8)
            for k, i in enumerate(idx):
                with Image.open(root / d / f"{i:06d}.{ext}") as im:
                    im = im.convert("RGB")
                    if resize:
                        im = im.resize((size, size), Image.BILINEAR)
                    out[k] = np.asarray(im)
            return out
        return load

    def ocv(d: str) -> Callable[[np.ndarray], np.ndarray]:
        ext = "jpg" if d == "jpg" else "png"

        def load(idx: np.ndarray) -> np.ndarray:
            out = np.empty((len(idx), size, size, 3), np.uint8)
            for k, i in enumerate(idx):
                out[k] = cv2.cvtColor(cv2.imread(str(root / d / f"{i:06d}.{ext}")), cv2.COLOR_BGR2RGB)
            return out
        return load

    def files(d: str) -> list[Path]:
        return sorted((root / d).iterdir())

    return {
        "memmap .npy gather": (lambda idx: arr[np.sort(idx)], [root / "images.npy"]),
        "PNG 128 (PIL)": (pil("png"), files("png")),
        "PNG 128 (OpenCV)": (ocv("png"), files("png")),
        "JPEG q95 128 (PIL)": (pil("jpg"), files("jpg")),
        "JPEG q95 128 (OpenCV)": (ocv("jpg"), files("jpg")),
        "PNG 256 + resize (PIL, reference)": (pil("png256", resize=True), files("png256")),
    }


def time_variant(load: Callable[[np.ndarray], np.ndarray], n: int, batches: int, seed: int,
                 with_augment: bool) -> float:
    """images/s for random batches: reading (and decoding) only, or up to the augmented float tensor."""
    rng = np.random.default_rng(seed)
    augment(load(rng.integers(0, n, BATCH)), rng)  # warm-up: imports, allocator
    t0 = time.perf_counter()
    for _ in range(batches):
        batch = load(rng.integers(0, n, BATCH))
        if with_augment:
            batch = augment(batch, rng)
        assert batch.shape[0] == BATCH
    return batches * BATCH / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1024, help="frames in the test set")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--batches", type=int, default=40, help="timed batches of 64 per variant")
    ap.add_argument("--cold", action="store_true", help="drop each variant's files from the page cache first")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    with tempfile.TemporaryDirectory(prefix="dkp-storage-") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        sizes = build(root, args.n, args.size, args.seed)
        build_s = time.perf_counter() - t0
        read: dict[str, float] = {}
        full: dict[str, float] = {}
        for name, (load, paths) in variants(root, args.size).items():
            if args.cold:
                drop_cache(paths)
            read[name] = time_variant(load, args.n, args.batches, args.seed, with_augment=False)
            full[name] = time_variant(load, args.n, args.batches, args.seed + 1, with_augment=True)
    base_read, base_full = read["memmap .npy gather"], full["memmap .npy gather"]
    report = {"n": args.n, "size": args.size, "batch": BATCH, "batches": args.batches, "cold": args.cold,
              "threads": 1, "build_s": round(build_s, 1), "sizes_kb": {k: round(v, 1) for k, v in sizes.items()},
              "read_images_per_s": {k: round(v) for k, v in read.items()},
              "augmented_images_per_s": {k: round(v) for k, v in full.items()},
              "memmap_speedup_read": {k: round(base_read / v, 1) for k, v in read.items()},
              "memmap_speedup_augmented": {k: round(base_full / v, 1) for k, v in full.items()}}
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"{args.n} photo-like frames at {args.size} px, random batches of {BATCH}, 1 thread, "
          f"{'page cache dropped first (first pass)' if args.cold else 'warm page cache'}")
    print(f"bytes per frame: npy {sizes['npy_kb_per_image']:.1f} KiB, PNG {sizes['png_kb']:.1f} KiB, "
          f"JPEG q95 {sizes['jpg_kb']:.1f} KiB, PNG 256 {sizes['png256_kb']:.1f} KiB")
    print(f"{'variant':36s} {'read img/s':>11s} {'memmap is':>9s} {'+flip+float img/s':>18s} {'memmap is':>9s}")
    for name in read:
        print(f"{name:36s} {read[name]:11.0f} {base_read / read[name]:8.1f}x {full[name]:18.0f} "
              f"{base_full / full[name]:8.1f}x")


if __name__ == "__main__":
    main()
