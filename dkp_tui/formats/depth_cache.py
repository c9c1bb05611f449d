"""The depth cache format: per-split uint16 shards under ``<dataset>/depth/<tag>/``, plus a manifest.

```
<dataset>/depth/<tag>/settings.json                    what the cache is being made with (written before any shard)
<dataset>/depth/<tag>/manifest.json                    schema, dkp version, model id/revision, transform, counts
<dataset>/depth/<tag>/<split>/shard-NNNNN.npy          uint16 n x H x W (n = shard_size, the last may be shorter)
<dataset>/depth/<tag>/<split>/shard-NNNNN.stats.json   per-shard facts (count, constant maps, XXH3-128 hash of the
                                                       array bytes), written before it
```

Value = round(d * 65535) with d the per-image min-max normalised inverse depth (near = 1), stored unflipped at the
data set's storage size; the loader applies each frame's flip. A shard file exists only once it is complete
(atomic rename), so resuming means skipping the shards that exist. ``<tag>`` names the model and settings; a
different model or normalisation gets a different tag and never mixes: ``settings.json`` (written before the first
shard) and the final manifest carry a fingerprint, and a writer with another fingerprint is refused.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from dkp_tui.atomic import atomic_path, write_json
from dkp_tui.errors import DkpError
from dkp_tui.integrity import array_digest, damaged
from dkp_tui.version import __version__

DEPTH_FORMAT = 1
DEPTH_DIR = "depth"  # under the data set
DEFAULT_SHARD_SIZE = 256


def depth_root(dataset: str | Path) -> Path:
    return Path(dataset) / DEPTH_DIR


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
    except OSError as err:
        raise DkpError(f"{path}: unreadable ({err.strerror})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DkpError(f"{path}: corrupt ({err})") from None
    if int(manifest.get("format_version", 0)) > DEPTH_FORMAT:
        raise DkpError(f"{path}: depth cache format {manifest.get('format_version')} is newer than this dkp "
                       f"{__version__} reads ({DEPTH_FORMAT}): upgrade dkp")
    return manifest


def shard_path(dataset: str | Path, tag: str, split: str, index: int) -> Path:
    return depth_root(dataset) / tag / split / f"shard-{index:05d}.npy"


def save_shard_array(path: str | Path, array: np.ndarray) -> None:
    """Atomic ``np.save`` through an open file, so numpy never appends ``.npy`` to the temporary name."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, array, allow_pickle=False)


def encode_depth(d: np.ndarray) -> np.ndarray:
    """[0, 1] floats to the stored uint16."""
    return np.round(np.clip(d, 0.0, 1.0) * 65535.0).astype(np.uint16)


def write_depth_split(dataset: str | Path, tag: str, split: str, depth01: np.ndarray,
                      shard_size: int = DEFAULT_SHARD_SIZE) -> None:
    """Write a whole split's depth (N x H x W floats in [0, 1], already normalised) as shards."""
    for i, start in enumerate(range(0, len(depth01), shard_size)):
        maps = encode_depth(depth01[start:start + shard_size])
        write_shard(dataset, tag, split, i, maps, count_constant(maps))


def verify_shard(dataset: str | Path, tag: str, split: str, index: int, array: np.ndarray) -> None:
    """Compare a shard's bytes with the XXH3-128 hash in its stats file (shards written before dkp hashed them, or whose
    stats file is gone, have nothing to compare with and pass)."""
    try:
        stats = _read_json(stats_path(dataset, tag, split, index))
    except DkpError:
        return
    digest = stats.get("xxh3_128") if stats is not None else None
    if isinstance(digest, str) and array_digest(array) != digest:
        raise damaged(shard_path(dataset, tag, split, index),
                      f"depth shard {index + 1}; `dkp depth {dataset} --force` recomputes the cache")


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
            try:
                self.shards.append(np.load(path, mmap_mode="r", allow_pickle=False))
            except (ValueError, OSError) as err:  # truncated by a full disk or an interrupted copy
                raise DkpError(f"{path}: unreadable depth shard ({err}); rerun `dkp depth {dataset} --force`") \
                    from None
            verify_shard(dataset, tag, split, i, self.shards[-1])
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
    from dkp_tui.formats.dataset_dir import read_manifest

    manifest = read_manifest(dataset)
    tag = resolve_tag(dataset, tag)
    depth_manifest = read_depth_manifest(dataset, tag)
    if split not in manifest.splits:
        raise DkpError(f"{dataset}: data set has no split {split!r}")
    stored = manifest.splits[split].same_as or split
    return DepthArray(dataset, tag, stored, manifest.splits[split].count,
                      int(depth_manifest.get("shard_size", DEFAULT_SHARD_SIZE)))


# --- resumable writing (`dkp depth`, `dkp depth --import`) ----------------------------------------------------------

SETTINGS = "settings.json"
MANIFEST = "manifest.json"
# What makes two caches interchangeable; everything else in the settings (paths, device, timings) is information.
FINGERPRINT_KEYS = ("source", "model", "import", "input", "output", "normalisation", "polarity", "encoding",
                    "shard_size", "dataset_manifest_hash")
_NOT_TAG = re.compile(r"[^A-Za-z0-9._-]+")


def clean_tag(name: str) -> str:
    """A directory-safe tag from a model name (other characters become '-')."""
    tag = _NOT_TAG.sub("-", name).strip("-.")
    if not tag:
        raise DkpError(f"cannot make a depth-cache tag from {name!r}; pass --tag NAME")
    return tag


def check_tag(tag: str) -> str:
    if tag != clean_tag(tag):
        raise DkpError(f"--tag {tag!r}: use letters, digits, '.', '_' and '-' only (e.g. {clean_tag(tag)!r})")
    return tag


def tag_dir(dataset: str | Path, tag: str) -> Path:
    return depth_root(dataset) / tag


def stats_path(dataset: str | Path, tag: str, split: str, index: int) -> Path:
    return depth_root(dataset) / tag / split / f"shard-{index:05d}.stats.json"


def n_shards(count: int, shard_size: int) -> int:
    return (count + shard_size - 1) // shard_size


def fingerprint(settings: dict[str, Any]) -> dict[str, Any]:
    return {k: settings[k] for k in FINGERPRINT_KEYS if k in settings}


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def fingerprint_diff(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Readable differences between two fingerprints (JSON round-tripped, so tuples and lists compare equal)."""
    a = _flatten(json.loads(json.dumps(old)))
    b = _flatten(json.loads(json.dumps(new)))
    return [f"{k} {a.get(k, '(none)')!r} -> {b.get(k, '(none)')!r}" for k in sorted(set(a) | set(b))
            if a.get(k, "(none)") != b.get(k, "(none)")]


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DkpError(f"{path}: corrupt ({err}); --force recomputes the cache") from None
    if not isinstance(data, dict):
        raise DkpError(f"{path}: not a JSON object; --force recomputes the cache")
    return data


def _has_shards(directory: Path) -> bool:
    return directory.is_dir() and any(directory.glob("*/shard-*.npy"))


def open_tag(dataset: str | Path, tag: str, settings: dict[str, Any], force: bool, splits: list[str]) -> None:
    """Make ``tag`` ready to take shards made with ``settings``, recording them before the first shard.

    A cache made with another fingerprint (by ``settings.json`` of an unfinished run, or the final manifest) is
    refused unless ``force``, which then removes the whole tag so that nothing mixes; ``force`` on a matching cache
    removes only the manifest and the shards of ``splits``, which are recomputed.
    """
    d = tag_dir(dataset, check_tag(tag))
    new = fingerprint(settings)
    problems: list[str] = []
    seen = False
    for name in (SETTINGS, MANIFEST):
        prev = _read_json(d / name)
        if prev is None:
            continue
        seen = True
        problems = fingerprint_diff(fingerprint(prev), new)
        if problems:
            break
    if not seen and _has_shards(d):
        problems = ["shards of unknown origin (no settings.json or manifest.json)"]
    if problems:
        if not force:
            more = f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""
            raise DkpError(f"{d} was made with other settings: {'; '.join(problems[:3])}{more}. "
                           f"Choose another --tag, or pass --force to delete and recompute it")
        shutil.rmtree(d)
    elif force:
        (d / MANIFEST).unlink(missing_ok=True)
        for split in splits:
            if (d / split).is_dir():
                shutil.rmtree(d / split)
    if d.is_dir():  # temporary files of a killed writer
        for tmp in d.glob("*/.shard-*.tmp*"):
            tmp.unlink(missing_ok=True)
    write_json(d / SETTINGS, settings)


def finished_shards(dataset: str | Path, tag: str, split: str, count: int, shard_size: int,
                    frame_hw: tuple[int, int]) -> list[bool]:
    """Which shards of ``split`` exist (a shard exists only complete); one of the wrong shape is refused."""
    done = []
    for i in range(n_shards(count, shard_size)):
        path = shard_path(dataset, tag, split, i)
        if not path.is_file():
            done.append(False)
            continue
        want = (min(shard_size, count - i * shard_size), *frame_hw)
        try:
            arr = np.load(path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError) as err:
            raise DkpError(f"{path}: unreadable shard ({err}); --force recomputes the cache") from None
        if arr.shape != want or arr.dtype != np.uint16:
            raise DkpError(f"{path}: holds {arr.dtype} {arr.shape}, expected uint16 {want}; "
                           f"--force recomputes the cache")
        verify_shard(dataset, tag, split, i, arr)
        done.append(True)
    return done


def write_shard(dataset: str | Path, tag: str, split: str, index: int, maps: np.ndarray, constant: int) -> None:
    """Stats first, then the shard: a shard that exists always has its stats (a rerun rewrites both). The stats
    carry the XXH3-128 hash of the shard's array bytes, checked whenever the shard is opened."""
    if maps.dtype != np.uint16 or maps.ndim != 3:
        raise ValueError(f"a depth shard is uint16 n x H x W, got {maps.dtype} {maps.shape}")
    maps = np.ascontiguousarray(maps)
    write_json(stats_path(dataset, tag, split, index), {"count": int(len(maps)), "constant": int(constant),
                                                        "xxh3_128": array_digest(maps)})
    save_shard_array(shard_path(dataset, tag, split, index), maps)


def count_constant(maps: np.ndarray) -> int:
    """Constant maps are stored as all zeros; every other map reaches 65535."""
    return int((maps.reshape(len(maps), -1).max(axis=1, initial=0) == 0).sum())


def split_summary(dataset: str | Path, tag: str, split: str, count: int, shard_size: int) -> dict[str, int] | None:
    """Counts of a complete split (None while a shard is missing), from the stats files or, failing that, the maps."""
    constant = 0
    total = n_shards(count, shard_size)
    for i in range(total):
        path = shard_path(dataset, tag, split, i)
        if not path.is_file():
            return None
        n = min(shard_size, count - i * shard_size)
        try:
            stats = _read_json(stats_path(dataset, tag, split, i))
        except DkpError:
            stats = None
        if stats is not None and stats.get("count") == n and isinstance(stats.get("constant"), int):
            constant += stats["constant"]
        else:
            constant += count_constant(np.load(path, mmap_mode="r", allow_pickle=False))
    return {"count": count, "constant": constant, "shards": total}


def finish_tag(dataset: str | Path, tag: str, settings: dict[str, Any], counts: dict[str, int],
               extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write the manifest (last) over every complete split: this run's and those an earlier run finished."""
    shard_size = int(settings["shard_size"])
    previous = _read_json(tag_dir(dataset, tag) / MANIFEST) or {}
    wanted = {s: int(v["count"]) for s, v in previous.get("splits", {}).items()
              if isinstance(v, dict) and "count" in v}
    wanted.update(counts)
    splits: dict[str, dict[str, int]] = {}
    for split, count in wanted.items():
        summary = split_summary(dataset, tag, split, count, shard_size)
        if summary is not None:
            splits[split] = summary
    manifest = {**settings, **(extra or {}), "splits": splits,
                "images": sum(v["count"] for v in splits.values()),
                "constant_maps": sum(v["constant"] for v in splits.values())}
    write_depth_manifest(dataset, tag, manifest)
    return manifest
