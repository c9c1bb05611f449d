"""`dkp depth --nproc N` (torchrun, gloo on CPU) against one process: the same shard bytes, whatever N did before.

Every process runs one torch thread (OMP_NUM_THREADS=1 for the ranks, tests/conftest.py for this one), since the
claim is byte equality on the same model, device and threads per process.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from dkp_tui.depth.compute import compute_depth
from dkp_tui.depth.runner import ShardJob, rank_share
from dkp_tui.formats import depth_cache as cache

SHARD = 2  # train 10 frames -> 5 shards, test 3 -> 2: 7 shards to deal to the ranks
TIMEOUT_S = 240


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")}
    return {**env, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}


def _ranks(dataset: Path, model: Path, nproc: int) -> dict:
    cmd = [sys.executable, "-m", "dkp_tui", "depth", str(dataset), "--model", str(model), "--device", "cpu",
           "--shard-size", str(SHARD), "--batch-size", "3", "--nproc", str(nproc), "--json", "--quiet"]
    # its own session, so that a timeout ends torchrun's ranks too, and the message shows what they printed
    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        _kill_tree(proc.pid)  # torchrun's ranks too (they hold the pipes open)
        out, err = proc.communicate(timeout=30)
        pytest.fail(f"dkp depth --nproc {nproc} ran past {TIMEOUT_S} s:\n{out[-2000:]}\n{err[-6000:]}")
    assert proc.returncode == 0, f"dkp depth --nproc {nproc} failed:\n{out[-2000:]}\n{err[-4000:]}"
    return json.loads(out)  # rank 0 alone prints, and the launcher's line goes to stderr


def _kill_tree(pid: int) -> None:
    import psutil

    try:
        parent = psutil.Process(pid)
        family = [*parent.children(recursive=True), parent]
    except psutil.NoSuchProcess:
        return
    for p in family:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.send_signal(signal.SIGKILL)


def _one_process(dataset: Path, model: Path) -> dict:
    return compute_depth(dataset, str(model), device="cpu", shard_size=SHARD, batch_size=3, quiet=True)


def _shards(dataset: Path) -> dict[str, bytes]:
    root = cache.tag_dir(dataset, "tiny-dpt")
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.glob("*/shard-*"))}


def _kill_shards(dataset: Path, names: list[str]) -> None:
    """What a killed run leaves: some shards (and their stats) missing, no manifest."""
    root = cache.tag_dir(dataset, "tiny-dpt")
    for name in names:
        (root / name).unlink()
        (root / name.replace(".npy", ".stats.json")).unlink()
    (root / cache.MANIFEST).unlink()


def test_rank_share_deals_the_unfinished_shards_disjointly() -> None:
    jobs = [ShardJob("train", i, 2 * i, 2 * i + 2) for i in (0, 3, 4, 5, 6)]
    shares = [rank_share(jobs, r, 2) for r in range(2)]
    assert [j.index for j in shares[0]] == [0, 4, 6] and [j.index for j in shares[1]] == [3, 5]
    for world in (1, 2, 3, 7, 9):
        dealt = [j for r in range(world) for j in rank_share(jobs, r, world)]
        assert sorted(dealt, key=jobs.index) == jobs and len(dealt) == len(set(dealt))


@pytest.mark.slow
def test_two_ranks_make_the_one_process_cache_and_resume_across_rank_counts(
        tiny_dpt: Path, tiny_data: Path, tmp_path: Path) -> None:
    single, ranked = tiny_data, tmp_path / "ranked"
    shutil.copytree(single, ranked)
    reference = _one_process(single, tiny_dpt)
    assert reference["computed"] == 13 and reference["world_size"] == 1
    expected = _shards(single)
    assert len(expected) == 2 * 7  # shards and their stats

    two = _ranks(ranked, tiny_dpt, 2)
    assert two["world_size"] == 2 and two["computed"] == 13 and two["skipped"] == 0
    assert _shards(ranked) == expected
    manifest = cache.read_depth_manifest(ranked, "tiny-dpt")
    assert manifest["splits"] == cache.read_depth_manifest(single, "tiny-dpt")["splits"]
    assert manifest["compute"]["ranks"] == 2 and manifest["compute"]["images"] == 13

    # a 2-rank run killed part-way, finished by one process: only the missing shards are computed
    _kill_shards(ranked, ["train/shard-00001.npy", "train/shard-00004.npy", "test/shard-00000.npy"])
    resumed = _one_process(ranked, tiny_dpt)
    assert (resumed["computed"], resumed["skipped"]) == (2 + 2 + 2, 13 - 6)
    assert _shards(ranked) == expected

    # a one-process run killed part-way, finished by 2 ranks (each takes some of the 4 missing shards)
    _kill_shards(single, ["train/shard-00000.npy", "train/shard-00002.npy", "train/shard-00003.npy",
                          "test/shard-00001.npy"])
    finished = _ranks(single, tiny_dpt, 2)
    assert (finished["computed"], finished["skipped"]) == (2 + 2 + 2 + 1, 13 - 7)
    assert _shards(single) == expected
    assert cache.read_depth_manifest(single, "tiny-dpt")["images"] == 10 + 3
    assert "tiny-dpt" in cache.list_tags(single)


@pytest.mark.parametrize("args, message", [
    (["--nproc", "0"], "--nproc 0: must be at least 1"),
    (["--nproc", "2", "--import", "."], "--import runs in one process"),
])
def test_bad_nproc_is_a_one_line_error(tiny_data: Path, args: list[str], message: str) -> None:
    from typer.testing import CliRunner

    from dkp_tui.cli import app

    result = CliRunner().invoke(app, ["depth", str(tiny_data), *args])
    assert result.exit_code == 2 and message in result.output, result.output
    assert "Traceback" not in result.output and not cache.tag_dir(tiny_data, "imported").exists()
