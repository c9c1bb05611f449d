"""The synthetic generator"s output, pinned byte for byte: every family x background, as samples and as a data set.

Why: the generator is versioned (``GENERATOR_VERSION``, each family"s version). Reorganising its code must not
change one byte of what it writes; a change that is meant to change the output bumps a version and the digests
below together. The digests were computed from the code as it stood before the move into a subpackage.

Every file the data-set writer leaves is hashed (images, masks, labels, names, the depth shards and their stats,
both manifests). The dkp version is written into the manifests; it is replaced by a placeholder before hashing so
that a release does not look like a generator change (the depth manifest"s hash of ``dataset.json`` is checked
against the file itself instead).

The digests hold for the float maths of the build they were computed on (numpy 2.4, OpenCV 5.1, x86-64 with
AVX-512); a numpy or CPU whose float32 sin/exp round differently would change them without any change here.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from dkp_tui.data.synthetic import BACKGROUNDS, FAMILIES, generate_dataset, render_family, sample_rng
from dkp_tui.version import __version__

SAMPLE_DIGESTS = {
    ("figures", "cluttered"): "1318ee3f819f73e93c5b039873a5f1a3d3deabfdfddd6eaed2e0995b5dd1e24d",
    ("figures", "clean"): "5745b10f588a129dda510ccfde6758e8f8f59f7405195008d76b9b08964bf7fa",
    ("room", "cluttered"): "5541b526ebc8e6dee47d733870907fa7bdf61774c0329943e649dd16a5832a63",
    ("room", "clean"): "a676c707401e65388dc03dc8b6a8c60834f50e43496ed9d91f7b835624a0279a",
    ("stage", "cluttered"): "23fab4d4273525f40453b4538f857d0ebec1955503ed3219f41b517a4eee198e",
    ("stage", "clean"): "c7253f90bb0530ce1d5de141adfd0990a92e3c21f1faefc6fe4503d3fa3eea3d",
}
DATASET_DIGESTS = {
    ("figures", "cluttered"): "b64c9b876db2cf2bc5a9993b6eeeffc4f710ba772ac533b9beb27f81a872438d",
    ("figures", "clean"): "21e4c1c269511837a9df214679a76265a5ab8bcdb89a3425dfde75a255dd84b3",
    ("room", "cluttered"): "0416dc8bb2d115185dc1f563222898b4b56e0923c2778c4747c1cced38bbb443",
    ("room", "clean"): "5c7df762067735ab47bee1e2765a15b5f589245c8686bf921c034ea17b667e76",
    ("stage", "cluttered"): "afb1672bbafe7c04a07a17a1bf7c12e923e176395576cc193bac97dface30c13",
    ("stage", "clean"): "9029eac19babc3a1adad245fda4520b1d64764efe46f6893e166399fd475602f",
    "long": "555d4307833132ea7ab63c1e4b0f3402cc2a83922688ab6d0efb151646d71a20",
}
SIZE = 32  # small, and not a preset"s size
COUNTS = {"n_train": 5, "n_fit": 3, "n_test": 2}
LONG_TRAIN = 256 + 4  # one more depth shard (and work chunk) than fits in the first


def sample_digest(family: str, background: str) -> str:
    """Every array and fact of a few samples, at two sizes."""
    h = hashlib.sha256()
    for size in (SIZE, 48):
        for index in range(3):
            s = render_family(family, sample_rng(7, "fit", index, family), size, background)
            for array in (s.rgb, s.depth, s.mask, s.joints):
                h.update(f"{array.dtype}{array.shape}".encode())
                h.update(np.ascontiguousarray(array).tobytes())
            h.update(json.dumps({"n": s.n_distractors, **s.extras}, sort_keys=True).encode())
    return h.hexdigest()


def tree_digest(root: Path) -> str:
    """Every file under ``root`` by relative path, the dkp version in the manifests made neutral."""
    h = hashlib.sha256()
    manifest_text = (root / "dataset.json").read_bytes()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root).as_posix()
        data = path.read_bytes()
        if rel.endswith("manifest.json") and rel.startswith("depth/"):
            depth = json.loads(data)
            assert depth["dataset_manifest_hash"] == hashlib.sha256(manifest_text).hexdigest()[:16]
            data = data.replace(depth["dataset_manifest_hash"].encode(), b"<manifest hash>")
        if rel.endswith(".json"):
            data = data.replace(json.dumps(__version__).encode(), b'"<dkp version>"')
        h.update(f"{rel}\0{len(data)}\0".encode())
        h.update(data)
    return h.hexdigest()


@pytest.mark.parametrize("background", BACKGROUNDS)
@pytest.mark.parametrize("family", FAMILIES)
def test_samples_are_byte_identical(family: str, background: str) -> None:
    assert sample_digest(family, background) == SAMPLE_DIGESTS[family, background]


@pytest.mark.parametrize("background", BACKGROUNDS)
@pytest.mark.parametrize("family", FAMILIES)
def test_dataset_files_are_byte_identical(tmp_path: Path, family: str, background: str) -> None:
    root = tmp_path / "ds"
    generate_dataset(root, size=SIZE, seed=3, background=background, family=family, progress=False, workers=1,
                     **COUNTS)
    assert tree_digest(root) == DATASET_DIGESTS[family, background]


def test_a_set_longer_than_one_shard_is_byte_identical(tmp_path: Path) -> None:
    root = tmp_path / "long"
    generate_dataset(root, size=16, n_train=LONG_TRAIN, n_fit=2, n_test=2, seed=5, progress=False, workers=1)
    assert (root / "depth" / "exact" / "train" / "shard-00001.npy").is_file()
    assert tree_digest(root) == DATASET_DIGESTS["long"]
