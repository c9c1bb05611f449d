"""The depth cache format: per-split uint16 shards under ``<dataset>/depth/<tag>/``, plus a manifest.

```
<dataset>/depth/<tag>/manifest.json               schema, dkp version, model id/revision, transform, counts
<dataset>/depth/<tag>/<split>/shard-NNNNN.npy     uint16 n x H x W (n = shard_size, the last may be shorter)
```

Value = round(d * 65535) with d the per-image min-max normalised inverse depth (near = 1), stored unflipped at the
data set's storage size; the loader applies each frame's flip. A shard file exists only once it is complete
(atomic rename), so resuming means skipping the shards that exist. ``<tag>`` names the model and settings; a
different model or normalisation gets a different tag and never mixes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from dkp_tui.atomic import write_json
from dkp_tui.data.layout import save_array
from dkp_tui.errors import DkpError
from dkp_tui.version import __version__

DEPTH_FORMAT = 1
DEFAULT_SHARD_SIZE = 256


def depth_root(dataset: str | Path) -> Path:
    return Path(dataset) / "depth"


def list_tags(dataset: str | Path) -> list[str]:
    root = depth_root(dataset)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / "manifest.json").is_file())


def resolve_tag(dataset: str | Path, tag: str = "") -> str:
    """The requested tag, or the only complete cache present; a clear error otherwise."""
    tags = list_tags(dataset)
    if tag:
        if tag not in tags:
            raise DkpError(f"{dataset}: no depth cache {tag!r} (present: {', '.join(tags) or 'none'}); "
                           f"run `dkp depth {dataset}`")
        return tag
    if not tags:
        raise DkpError(f"{dataset}: no depth cache; run `dkp depth {dataset}` first (the teacher trains on depth)")
    if len(tags) > 1:
        raise DkpError(f"{dataset}: several depth caches ({', '.join(tags)}); choose one with --set data.depth_tag=TAG")
    return tags[0]


def read_depth_manifest(dataset: str | Path, tag: str) -> dict[str, Any]:
    path = depth_root(dataset) / tag / "manifest.json"
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DkpError(f"{path}: missing; the depth cache is incomplete") from None
    except json.JSONDecodeError as err:
        raise DkpError(f"{path}: corrupt ({err})") from None
    if int(manifest.get("format_version", 0)) > DEPTH_FORMAT:
        raise DkpError(f"{path}: depth cache format {manifest.get('format_version')} is newer than this dkp "
                       f"{__version__} reads ({DEPTH_FORMAT}): upgrade dkp")
    return manifest


def shard_path(dataset: str | Path, tag: str, split: str, index: int) -> Path:
    return depth_root(dataset) / tag / split / f"shard-{index:05d}.npy"


def encode_depth(d: np.ndarray) -> np.ndarray:
    """[0, 1] floats to the stored uint16."""
    return np.round(np.clip(d, 0.0, 1.0) * 65535.0).astype(np.uint16)


def write_depth_split(dataset: str | Path, tag: str, split: str, depth01: np.ndarray,
                      shard_size: int = DEFAULT_SHARD_SIZE) -> None:
    """Write a whole split's depth (N x H x W floats in [0, 1], already normalised) as shards."""
    for i, start in enumerate(range(0, len(depth01), shard_size)):
        save_array(shard_path(dataset, tag, split, i), encode_depth(depth01[start:start + shard_size]))


def write_depth_manifest(dataset: str | Path, tag: str, manifest: dict[str, Any]) -> None:
    """Written last: a tag directory without a manifest is an unfinished cache."""
    base = {"format_version": DEPTH_FORMAT, "dkp_version": __version__, "tag": tag}
    write_json(depth_root(dataset) / tag / "manifest.json", {**base, **manifest})


class DepthArray:
    """Read-only N x H x W uint16 view over a split's shards (memory-mapped), indexable like an array."""

    def __init__(self, dataset: str | Path, tag: str, split: str, count: int, shard_size: int) -> None:
        self.shard_size = shard_size
        self.count = count
        n_shards = (count + shard_size - 1) // shard_size
        self.shards: list[np.ndarray] = []
        for i in range(n_shards):
            path = shard_path(dataset, tag, split, i)
            if not path.is_file():
                raise DkpError(f"{path}: missing depth shard ({i + 1} of {n_shards}); "
                               f"finish the cache with `dkp depth {dataset}`")
            self.shards.append(np.load(path, mmap_mode="r", allow_pickle=False))
        total = sum(len(s) for s in self.shards)
        if total != count:
            raise DkpError(f"{dataset}: depth cache {tag}/{split} holds {total} maps for {count} images")

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.count, *self.shards[0].shape[1:]) if self.shards else (0,)

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: Any) -> np.ndarray:
        idx = np.arange(self.count)[index]
        if np.ndim(idx) == 0:
            i = int(idx)
            return np.asarray(self.shards[i // self.shard_size][i % self.shard_size])
        out = np.empty((len(idx), *self.shards[0].shape[1:]), dtype=np.uint16)
        for j, i in enumerate(idx):
            out[j] = self.shards[i // self.shard_size][i % self.shard_size]
        return out


def open_depth(dataset: str | Path, split: str, tag: str = "") -> DepthArray:
    """The depth maps of ``split`` (following the data set's ``same_as``), refusing an incomplete cache."""
    from dkp_tui.data.layout import read_manifest

    manifest = read_manifest(dataset)
    tag = resolve_tag(dataset, tag)
    depth_manifest = read_depth_manifest(dataset, tag)
    if split not in manifest.splits:
        raise DkpError(f"{dataset}: data set has no split {split!r}")
    stored = manifest.splits[split].same_as or split
    return DepthArray(dataset, tag, stored, manifest.splits[split].count,
                      int(depth_manifest.get("shard_size", DEFAULT_SHARD_SIZE)))
