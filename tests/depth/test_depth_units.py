"""The pieces of the depth cache: normalisation maths, fingerprints, tags, model location, input transform."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

from dkp_tui.depth.normalise import encode_unit, invert_depth, minmax_normalise, resize_maps
from dkp_tui.depth.weights import resolve_model, weights_sha256
from dkp_tui.errors import DkpError
from dkp_tui.formats import depth_cache as cache


def test_minmax_normalise_keeps_polarity_and_zeros_constant_maps() -> None:
    maps = torch.stack([torch.linspace(2.0, 5.0, 16).reshape(4, 4), torch.full((4, 4), 3.0),
                        torch.zeros(4, 4), torch.tensor([[1.0, float("nan")], [0.0, 0.0]]).repeat(2, 2)])
    d, constant, finite = minmax_normalise(maps)
    assert d[0, 0, 0] == 0 and d[0, 3, 3] == 1 and torch.all(d[0].flatten().diff() > 0)  # larger -> nearer
    assert constant.tolist()[:3] == [False, True, True] and (d[1:3] == 0).all()
    assert finite.tolist() == [True, True, True, False]


def test_encoding_matches_the_cache_encoder() -> None:
    rng = np.random.default_rng(0)
    d = np.concatenate([rng.random(10000), np.arange(0, 65536) / 65535.0, [0.5 / 65535, 1.5 / 65535, 1.0, 0.0]])
    d = d.astype(np.float32).reshape(1, 1, -1)
    assert np.array_equal(encode_unit(torch.from_numpy(d)).numpy().astype(np.uint16), cache.encode_depth(d))


def test_resize_maps_and_inverse_depth() -> None:
    maps = torch.rand(2, 8, 8)
    assert resize_maps(maps, (8, 8)) is maps and resize_maps(maps, (16, 12)).shape == (2, 16, 12)
    inv = invert_depth(torch.tensor([0.0, 2.0, -1.0, 4.0]))
    assert inv.tolist() == [0.0, 0.5, 0.0, 0.25]


def test_fingerprint_diff_and_tags() -> None:
    old = {"model": {"id": "a", "revision": None}, "input": {"size": (384, 384)}, "shard_size": 256}
    assert cache.fingerprint_diff(old, {**old, "input": {"size": [384, 384]}}) == []
    diff = cache.fingerprint_diff(old, {**old, "model": {"id": "b", "revision": None}, "shard_size": 64})
    assert diff == ["model.id 'a' -> 'b'", "shard_size 256 -> 64"]
    assert cache.fingerprint({"model": 1, "model_path": "/x", "compute": {}}) == {"model": 1}
    assert cache.clean_tag("Intel/dpt swinv2:large") == "Intel-dpt-swinv2-large"
    assert cache.check_tag("dpt-swinv2-large-384") == "dpt-swinv2-large-384"
    with pytest.raises(DkpError):
        cache.check_tag("../x")


def _fake_hub_cache(hub: Path, repo: str, commit: str, weights: bytes) -> str:
    """The layout huggingface_hub writes: blobs named by their SHA-256, snapshots of symlinks, refs/main."""
    root = hub / f"models--{repo.replace('/', '--')}"
    sha = hashlib.sha256(weights).hexdigest()
    (root / "blobs").mkdir(parents=True)
    (root / "blobs" / sha).write_bytes(weights)
    snapshot = root / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    (snapshot / "model.safetensors").symlink_to(root / "blobs" / sha)
    (root / "refs").mkdir()
    (root / "refs" / "main").write_text(commit)
    return sha


def test_resolve_model_finds_cached_hub_models_and_local_dirs(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    missing = resolve_model("Intel/dpt-swinv2-tiny-256")
    assert missing.directory is None and missing.name == "dpt-swinv2-tiny-256"

    commit = "0123456789abcdef0123456789abcdef01234567"
    sha = _fake_hub_cache(tmp_path / "hf" / "hub", "Intel/dpt-swinv2-tiny-256", commit, b"weights")
    found = resolve_model("Intel/dpt-swinv2-tiny-256")
    assert found.directory is not None and found.revision == commit and found.repo_id == "Intel/dpt-swinv2-tiny-256"
    assert weights_sha256(found.directory) == sha  # taken from the blob's name, not re-hashed

    snapshot_dir = resolve_model(str(found.directory))  # a snapshot passed as a directory keeps the model's name
    assert snapshot_dir.name == "dpt-swinv2-tiny-256" and snapshot_dir.repo_id is None

    local = tmp_path / "my-model"
    local.mkdir()
    (local / "config.json").write_text("{}")
    (local / "model.safetensors").write_bytes(b"abc")
    source = resolve_model(str(local))
    assert source.name == "my-model" and source.directory == local.resolve()
    assert weights_sha256(local) == hashlib.sha256(b"abc").hexdigest()

    for bad in (str(tmp_path / "nothing"), "./relative/missing", "not a model id!"):
        with pytest.raises(DkpError):
            resolve_model(bad)
    with pytest.raises(DkpError, match="no config.json"):
        resolve_model(str(tmp_path))


@pytest.mark.parametrize("resample, keep, multiple", [(3, False, 1), (2, True, 32), (0, False, 1)])
def test_batched_transform_reproduces_the_processor(resample: int, keep: bool, multiple: int) -> None:
    import transformers
    from transformers.models.dpt.image_processing_dpt import get_resize_output_image_size

    from dkp_tui.depth.midas import InputTransform

    # the torch processor dkp reproduces: DPTImageProcessor in transformers 5, DPTImageProcessorFast in 4.x (where
    # DPTImageProcessor is the PIL one; 5 keeps the Fast name only as a deprecated alias)
    major = int(transformers.__version__.split(".")[0])
    DPTImageProcessor = transformers.DPTImageProcessor if major >= 5 else transformers.DPTImageProcessorFast

    processor = DPTImageProcessor(size={"height": 96, "width": 96}, resample=resample, keep_aspect_ratio=keep,
                                  ensure_multiple_of=multiple)
    transform = InputTransform.from_processor(processor)
    assert not transform.problems
    images = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (2, 3, 40, 56), dtype=np.uint8))
    expected = get_resize_output_image_size(images, (96, 96), keep, multiple)
    if hasattr(expected, "height"):  # transformers 5 returns a SizeDict, 4.x a (height, width) tuple
        expected = (expected.height, expected.width)
    assert transform.output_size(40, 56) == tuple(expected)
    reference = processor(images=images, return_tensors="pt")["pixel_values"]
    assert torch.equal(transform.apply(images), reference)
