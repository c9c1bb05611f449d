"""`dkp bench`: every figure present and plausible (a smoke run; speed targets live in benchmarks/)."""

from __future__ import annotations

import json
import mmap
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from rich.console import Console
from typer.testing import CliRunner

from dkp_tui.cli import app
from dkp_tui.experiments import bench

ROOT = Path(__file__).resolve().parents[2]
TINY = ["model.width=0.125", "model.n_keypoints=8", "train.batch_size=4"]


@pytest.fixture(scope="module")
def quick_bench() -> dict[str, Any]:
    """`dkp bench --json --quick` in a fresh process, as a user runs it."""
    cmd = [sys.executable, "-m", "dkp_tui", "bench", "--preset", "synthetic-cpu", "--device", "cpu", "--json",
           "--quick", "--no-dense", *[a for s in TINY for a in ("--set", s)]]
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


def test_bench_json_reports_every_figure(quick_bench: dict[str, Any]):
    data = quick_bench
    assert data["device"] == "cpu" and data["config"]["batch_size"] == 4 and data["config"]["image_size"] == 64
    for role in ("teacher", "student"):
        r = data["train"][role]
        assert r["images_per_s"] > 0 and r["steps_per_s"] > 0 and r["batch"] == 4 and r["cpu_s_per_step"] > 0
        assert abs(r["images_per_s"] - 4 * r["steps_per_s"]) < 1e-6 * r["images_per_s"]
        assert r["memory_kind"] in ("peak_rss", "lifetime_peak_rss") and 100 < r["peak_memory_mb"] < 64_000
        assert r["precision"] == "fp32" and r["compiled"] is False
    assert [row["k"] for row in data["rasteriser"]] == [10, 16]
    assert all(row["fast_ms"] > 0 and row["size"] == 128 and "dense_ms" not in row for row in data["rasteriser"])
    assert data["loader"]["images_per_s"] > 0 and data["depth_cache"]["images_per_s"] > 0
    assert data["depth_cache"]["map_size"] == [64, 64]
    assert data["machine"]["torch"] == torch.__version__
    assert data["machine"]["omp_wait_policy"] == ""  # the bench measures what `dkp train` does: libgomp's default


def test_bench_table(quick_bench: dict[str, Any]):
    console = Console(record=True, width=160)
    console.print(bench.render_tables(quick_bench))
    text = console.export_text()
    assert "dkp bench --preset synthetic-cpu" in text and "rasteriser K=16" in text and "depth cache" in text
    assert "teacher" in text and "student" in text and "peak RSS" in text


def test_bad_preset_is_one_line():
    bad = CliRunner().invoke(app, ["bench", "--preset", "no-such-preset"])
    assert bad.exit_code == 2 and "unknown preset" in bad.output


def test_rasteriser_timing_has_both_versions():
    rows = bench.measure_rasteriser(torch.device("cpu"), batch=2, ks=(4,), size=32)
    assert rows[0]["edges"] == 6 and rows[0]["fast_ms"] > 0 and rows[0]["dense_ms"] > 0
    assert rows[0]["speedup"] == rows[0]["dense_ms"] / rows[0]["fast_ms"]


def test_peak_memory_can_be_reset():
    cpu = torch.device("cpu")
    if not bench.reset_peak_memory(cpu):  # not Linux: the lifetime peak is all there is
        pytest.skip("no /proc/self/clear_refs")
    size = 64 * 2**20
    before = bench.peak_memory_mb(cpu)
    block = mmap.mmap(-1, size)  # fresh pages, whatever the allocator holds
    for offset in range(0, size, mmap.PAGESIZE):
        block[offset] = 1
    high = bench.peak_memory_mb(cpu)
    block.close()
    assert high - before > 48
    assert bench.reset_peak_memory(cpu)
    assert bench.peak_memory_mb(cpu) < high - 32
