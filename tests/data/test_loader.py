"""The training batch loader: deterministic by (seed, step), every index once per epoch, one flip shared by a frame
and its depth map, DDP slices that add up to the global batch, and the value conventions of the spec."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from dkp_tui.data.loader import BatchLoader, eval_batches, images_to_tensor
from dkp_tui.errors import DkpError
from dkp_tui.formats import dataset_dir
from dkp_tui.formats import depth_cache as cache

N, SIZE = 42, 32


@pytest.fixture(scope="module")
def paired(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Random (asymmetric) frames whose depth map IS the red channel: a flip mismatch cannot go unnoticed."""
    root = tmp_path_factory.mktemp("loader") / "paired"
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (N, SIZE, SIZE, 3), dtype=np.uint8)
    dataset_dir.write_split(root, "train", images)
    cache.write_depth_split(root, "red", "train", images[..., 0].astype(np.float32) / 255.0, shard_size=16)
    cache.write_depth_manifest(root, "red", {"model": "red-channel", "shard_size": 16})
    dataset_dir.write_manifest(root, dataset_dir.Manifest(kind="folder", image_size=SIZE,
                                                     splits={"train": dataset_dir.SplitInfo(count=N)}))
    return root


def _loader(root: Path, **kw: object) -> BatchLoader:
    args = {"split": "train", "image_size": SIZE, "batch_size": 8, "seed": 3, "rgb": True, "depth": True,
            "prefetch": 0, **kw}
    return BatchLoader(root, **args)  # type: ignore[arg-type]


def _close(a: torch.Tensor, b: torch.Tensor, atol: float) -> bool:
    return a.shape == b.shape and float((a - b).abs().max()) <= atol  # (torch.testing imports for seconds)


def _stored(root: Path) -> torch.Tensor:
    return images_to_tensor(np.asarray(dataset_dir.open_split(root, "train").images), SIZE)


def test_deterministic_by_seed_and_step(paired: Path) -> None:
    a, b = _loader(paired), _loader(paired)
    assert torch.equal(a.batch(7).image, b.batch(7).image) and torch.equal(a.batch(7).index, b.batch(7).index)
    assert torch.equal(a.batch(7).flipped, b.batch(7).flipped)
    assert not torch.equal(a.batch(7).index, a.batch(8).index)
    assert not torch.equal(a.batch(7).index, _loader(paired, seed=4).batch(7).index)


def test_each_index_once_per_epoch(paired: Path) -> None:
    loader = _loader(paired)
    assert len(loader) == N // 8
    for epoch in range(2):
        seen = torch.cat([loader.batch(epoch * len(loader) + k).index for k in range(len(loader))]).tolist()
        assert len(seen) == len(set(seen)) == len(loader) * 8
    first = [loader.batch(k).index.tolist() for k in range(len(loader))]
    second = [loader.batch(len(loader) + k).index.tolist() for k in range(len(loader))]
    assert first != second  # a fresh permutation each epoch


def test_values_shapes_and_flips(paired: Path) -> None:
    batch = _loader(paired).batch(2)
    assert batch.image.shape == batch.depth.shape == (8, 3, SIZE, SIZE)
    assert batch.image.dtype == batch.depth.dtype == torch.float32 and batch.index.dtype == torch.int64
    assert batch.image.min() >= -1 and batch.image.max() <= 1 and batch.depth.min() >= -1 and batch.depth.max() <= 1
    stored = _stored(paired)[batch.index]
    expect = torch.where(batch.flipped[:, None, None, None], stored.flip(-1), stored)
    assert torch.equal(batch.image, expect)
    flips = torch.cat([_loader(paired).batch(s).flipped for s in range(20)]).float().mean()
    assert 0.3 < flips < 0.7
    assert not _loader(paired, hflip=False).batch(2).flipped.any()


def test_image_and_depth_share_the_flip(paired: Path) -> None:
    flipped = []
    for step in range(6):
        batch = _loader(paired).batch(step)
        flipped += batch.flipped.tolist()
        assert _close(batch.depth[:, 0], batch.image[:, 0], 1e-6)
        assert torch.equal(batch.depth[:, 0], batch.depth[:, 2])  # replicated to 3 channels
    assert any(flipped) and not all(flipped)


def test_ddp_slices_concatenate_to_the_global_batch(paired: Path) -> None:
    whole = _loader(paired).batch(9)
    parts = [_loader(paired, rank=r, world_size=2).batch(9) for r in range(2)]
    assert all(p.image.shape[0] == 4 for p in parts)
    for name in ("image", "depth", "index", "flipped"):
        assert torch.equal(torch.cat([getattr(p, name) for p in parts]), getattr(whole, name)), name
    with pytest.raises(DkpError, match="multiple"):
        _loader(paired, batch_size=7, world_size=2)


def test_resize_only_when_needed(paired: Path) -> None:
    down = _loader(paired, image_size=16).batch(0)
    up = _loader(paired, image_size=64, depth=False).batch(0)
    assert down.image.shape[-1] == down.depth.shape[-1] == 16 and up.image.shape[-1] == 64 and up.depth is None
    assert _close(down.depth[:, 0], down.image[:, 0], 1e-5)  # same resize, same flip


def test_iterate_prefetches_the_same_batches(paired: Path) -> None:
    loader = _loader(paired, prefetch=2)
    got = list(loader.iterate(3, 9))
    assert [s for s, _ in got] == list(range(3, 9))
    for step, batch in got:
        assert torch.equal(batch.image, loader.batch(step).image)
    for step, _ in loader.iterate(0, 1000):  # stopping early must not hang the prefetch thread
        if step == 2:
            break


def test_eval_batches_in_order_unflipped(paired: Path) -> None:
    chunks = list(eval_batches(paired, "train", SIZE, batch_size=16))
    assert [len(i) for _, i in chunks] == [16, 16, 10]
    images = torch.cat([x for x, _ in chunks])
    assert torch.equal(images, _stored(paired)) and torch.equal(torch.cat([i for _, i in chunks]), torch.arange(N))
    depth = torch.cat([x for x, _ in eval_batches(paired, "train", SIZE, kind="depth")])
    assert _close(depth[:, 1], images[:, 0], 1e-6)


def test_missing_depth_and_too_small_split(paired: Path, tmp_path: Path) -> None:
    root = tmp_path / "nodepth"
    dataset_dir.write_split(root, "train", np.zeros((4, 8, 8, 3), np.uint8))
    dataset_dir.write_manifest(root, dataset_dir.Manifest(kind="folder", image_size=8,
                                                     splits={"train": dataset_dir.SplitInfo(count=4)}))
    with pytest.raises(DkpError, match="depth"):
        BatchLoader(root, "train", 8, 2, 0, depth=True)
    with pytest.raises(DkpError, match="fewer than one batch"):
        BatchLoader(root, "train", 8, 8, 0)


def test_synthetic_set_loads(tiny_dataset: Path) -> None:
    loader = BatchLoader(tiny_dataset, "train", 64, 16, 0, depth=True, prefetch=0)
    batch = loader.batch(0)
    assert batch.image.shape == batch.depth.shape == (16, 3, 64, 64)
    assert batch.depth.max() == 1.0 and batch.depth.min() == -1.0  # min-max normalised, near = 1
