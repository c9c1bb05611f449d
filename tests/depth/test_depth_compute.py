"""`dkp depth DATASET --model DIR` end to end with a tiny random DPT: cache contents, resume, refusal, offline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from depth_helpers import FRAME, MODEL_INPUT
from typer.testing import CliRunner

from dkp_tui.cli import app
from dkp_tui.depth.midas import DepthEstimator
from dkp_tui.formats import depth_cache as cache
from dkp_tui.formats.dataset_dir import manifest_hash, open_split

runner = CliRunner()


def depth(*args: str) -> Any:  # click's Result (click is typer's, not a dependency of ours)
    return runner.invoke(app, ["depth", *args])


def shard_bytes(dataset: Path, tag: str) -> dict[str, bytes]:
    root = cache.depth_root(dataset) / tag
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.glob("*/shard-*.npy"))}


@pytest.fixture
def count_calls(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Counts model calls; ``fail_at`` makes that call raise (an interruption in the middle of a shard)."""
    state = {"calls": 0, "fail_at": 0}
    original = DepthEstimator.forward

    def forward(self: DepthEstimator, pixel_values: torch.Tensor) -> torch.Tensor:
        state["calls"] += 1
        if state["calls"] == state["fail_at"]:
            raise RuntimeError("simulated interruption")
        return original(self, pixel_values)

    monkeypatch.setattr(DepthEstimator, "forward", forward)
    return state


def reference_maps(model_dir: Path, images: np.ndarray) -> np.ndarray:
    """What transformers' own processor + model + bicubic post-processing give, min-max normalised to [0, 1]."""
    from transformers import AutoImageProcessor, AutoModelForDepthEstimation

    processor = AutoImageProcessor.from_pretrained(model_dir, local_files_only=True)
    model = AutoModelForDepthEstimation.from_pretrained(model_dir, local_files_only=True).eval()
    with torch.inference_mode():
        pred = model(**processor(images=list(images), return_tensors="pt")).predicted_depth
    post = processor.post_process_depth_estimation(
        type("Out", (), {"predicted_depth": pred})(), target_sizes=[images.shape[1:3]] * len(images))
    maps = torch.stack([p["predicted_depth"] for p in post]).numpy().astype(np.float64)
    lo = maps.min(axis=(1, 2), keepdims=True)
    hi = maps.max(axis=(1, 2), keepdims=True)
    return (maps - lo) / (hi - lo)


def test_cache_has_the_right_shape_range_and_metadata(tiny_dpt: Path, tiny_data: Path) -> None:
    result = depth(str(tiny_data), "--model", str(tiny_dpt), "--shard-size", "4", "--batch-size", "3", "--json",
                   "--quiet")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["tag"] == "tiny-dpt" and summary["computed"] == 13 and summary["skipped"] == 0
    assert summary["images_per_s"] > 0

    maps = {s: cache.open_depth(tiny_data, s)[:] for s in ("train", "fit", "test")}
    assert maps["train"].shape == (10, FRAME, FRAME) and maps["test"].shape == (3, FRAME, FRAME)
    assert maps["train"].dtype == np.uint16
    assert np.array_equal(maps["fit"], maps["train"])  # same_as: computed once, read through the alias
    flat = np.concatenate([maps["train"], maps["test"]]).reshape(13, -1)
    constant = flat.max(axis=1) == 0
    assert (flat[~constant].max(axis=1) == 65535).all() and (flat[~constant].min(axis=1) == 0).all()
    assert (~constant).any()

    m = cache.read_depth_manifest(tiny_data, "tiny-dpt")
    assert m["source"] == "model" and m["model"]["id"] == "tiny-dpt" and len(m["model"]["weights_sha256"]) == 64
    assert m["input"]["size"] == [MODEL_INPUT, MODEL_INPUT] and m["input"]["resize"] == "stretch"
    assert m["input"]["filter"] == "bicubic" and m["input"]["mean"] == [0.5] * 3 and m["input"]["std"] == [0.5] * 3
    assert m["output"]["size"] == [FRAME, FRAME] and "bicubic" in m["output"]["interpolation"]
    assert "min-max" in m["normalisation"] and "near = 1" in m["polarity"] and "uint16" in m["encoding"]
    assert m["shard_size"] == 4 and m["dataset_manifest_hash"] == manifest_hash(tiny_data)
    assert m["splits"]["train"] == {"count": 10, "constant": int(constant[:10].sum()), "shards": 3}
    assert m["constant_maps"] == int(constant.sum()) and m["same_as"] == {"fit": "train"}
    assert m["compute"]["preprocessing"]["path"] == "batched on device"

    # the values are what transformers' own pipeline gives, normalised
    test_images = np.array(open_split(tiny_data, "test").images)
    expected = reference_maps(tiny_dpt, test_images)
    assert np.abs(maps["test"] / 65535.0 - expected).max() < 2e-3


def test_resume_skips_finished_shards_and_gives_the_same_bytes(
        tiny_dpt: Path, tiny_dpt_other_mean: Path, tiny_data: Path, count_calls: dict[str, int]) -> None:
    common = ["--model", str(tiny_dpt), "--shard-size", "4", "--batch-size", "2", "--quiet"]
    assert depth(str(tiny_data), *common, "--tag", "clean").exit_code == 0
    assert count_calls["calls"] == 7  # train shards of 4, 4, 2 -> 2 + 2 + 1 batches; test 3 -> 2 batches

    count_calls.update(calls=0, fail_at=4)  # dies in the second batch of train shard 1
    result = depth(str(tiny_data), *common)
    assert isinstance(result.exception, RuntimeError)
    tag_dir = cache.tag_dir(tiny_data, "tiny-dpt")
    assert (tag_dir / "train" / "shard-00000.npy").is_file()
    assert not (tag_dir / "train" / "shard-00001.npy").exists() and not (tag_dir / "manifest.json").exists()
    assert "tiny-dpt" not in cache.list_tags(tiny_data)  # unfinished: readers refuse it

    # an unfinished cache made with another normalisation is refused (its settings.json was written first)
    result = depth(str(tiny_data), "--model", str(tiny_dpt_other_mean), "--tag", "tiny-dpt", "--quiet")
    assert result.exit_code == 2 and "input.mean" in result.output

    count_calls.update(calls=0, fail_at=0)
    assert depth(str(tiny_data), *common).exit_code == 0
    assert count_calls["calls"] == 5  # shard 0 (2 batches) skipped
    clean, resumed = shard_bytes(tiny_data, "clean"), shard_bytes(tiny_data, "tiny-dpt")
    assert clean.keys() == resumed.keys() and len(clean) == 4 and clean == resumed

    count_calls.update(calls=0)
    result = depth(str(tiny_data), *common, "--json")
    assert result.exit_code == 0 and count_calls["calls"] == 0
    assert json.loads(result.stdout)["skipped"] == 13

    # a finished cache with another normalisation: refused, then replaced with --force
    result = depth(str(tiny_data), "--model", str(tiny_dpt_other_mean), "--tag", "tiny-dpt", "--quiet")
    assert result.exit_code == 2 and "other settings" in result.output and "--force" in result.output
    result = depth(str(tiny_data), "--model", str(tiny_dpt_other_mean), "--tag", "tiny-dpt", "--quiet", "--force")
    assert result.exit_code == 0
    assert cache.read_depth_manifest(tiny_data, "tiny-dpt")["input"]["mean"] == [0.45] * 3


def test_offline_missing_model_fails_fast_with_one_line(tiny_data: Path, tmp_path: Path) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    env.pop("HF_HUB_CACHE", None)
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "dkp_tui", "depth", str(tiny_data), "--model",
                           "Intel/dpt-swinv2-tiny-256"], env=env, capture_output=True, text=True, timeout=60)
    elapsed = time.perf_counter() - start
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Intel/dpt-swinv2-tiny-256" in lines[0] and "HF_HOME" in lines[0] and "--model PATH" in lines[0]
    assert elapsed < 15  # ~1.5 s here: no transformers import, no network
    assert not (tiny_data / "depth").exists()


def test_unreachable_hub_fails_fast(tiny_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens: refused at once
    for proxy in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(proxy, raising=False)
    start = time.perf_counter()
    result = depth(str(tiny_data), "--model", "Intel/dpt-swinv2-tiny-256")
    assert result.exit_code == 2 and "Intel/dpt-swinv2-tiny-256" in result.output
    assert "127.0.0.1:9" in result.output  # the probe answered the question, not 90 s of retries
    assert time.perf_counter() - start < 10


@pytest.mark.parametrize("args, message", [
    (["--model", "./no/such/dir"], "no such directory"),
    (["--splits", "train,nope"], "no split nope"),
    (["--batch-size", "0"], "--batch-size"),
    (["--polarity", "depth"], "--polarity"),
])
def test_bad_arguments_are_one_line_errors(tiny_data: Path, args: list[str], message: str) -> None:
    result = depth(str(tiny_data), *args)
    assert result.exit_code == 2 and message in result.output


def test_not_a_dataset(tmp_path: Path) -> None:
    result = depth(str(tmp_path / "missing"))
    assert result.exit_code == 2 and "not a dkp data set" in result.output
