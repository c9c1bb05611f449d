"""`dkp bench`: every figure present and plausible (a smoke run; speed targets live in benchmarks/)."""

from __future__ import annotations

import json

import numpy as np
import torch
from typer.testing import CliRunner

from dkp_tui import bench
from dkp_tui.cli import app

runner = CliRunner()

TINY = ["model.width=0.125", "model.n_keypoints=8", "train.batch_size=4"]


def test_bench_json_reports_every_figure():
    args = ["bench", "--preset", "synthetic-cpu", "--device", "cpu", "--json", "--quick", "--no-dense"]
    result = runner.invoke(app, args + [a for s in TINY for a in ("--set", s)])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["device"] == "cpu" and data["config"]["batch_size"] == 4 and data["config"]["image_size"] == 64
    for role in ("teacher", "student"):
        r = data["train"][role]
        assert r["images_per_s"] > 0 and r["steps_per_s"] > 0 and r["batch"] == 4
        assert abs(r["images_per_s"] - 4 * r["steps_per_s"]) < 1e-6 * r["images_per_s"]
        assert r["memory_kind"] in ("peak_rss", "lifetime_peak_rss") and 100 < r["peak_memory_mb"] < 64_000
        assert r["precision"] == "fp32" and r["compiled"] is False
    assert [row["k"] for row in data["rasteriser"]] == [10, 16]
    assert all(row["fast_ms"] > 0 and row["size"] == 128 and "dense_ms" not in row for row in data["rasteriser"])
    assert data["loader"]["images_per_s"] > 0 and data["depth_cache"]["images_per_s"] > 0
    assert data["depth_cache"]["map_size"] == [64, 64]
    assert data["machine"]["torch"] == torch.__version__


def test_bench_table_and_bad_preset():
    ok = runner.invoke(app, ["bench", "--preset", "synthetic-cpu", "--device", "cpu", "--quick", "--teacher-only",
                             "--steps", "1", *[a for s in TINY for a in ("--set", s)]])
    assert ok.exit_code == 0, ok.output
    assert "teacher" in ok.output and "rasteriser K=16" in ok.output and "student" not in ok.output.split("model:")[0]
    bad = runner.invoke(app, ["bench", "--preset", "no-such-preset"])
    assert bad.exit_code == 2 and "unknown preset" in bad.output


def test_rasteriser_timing_has_both_versions():
    rows = bench.measure_rasteriser(torch.device("cpu"), batch=2, ks=(4,), size=32)
    assert rows[0]["edges"] == 6 and rows[0]["fast_ms"] > 0 and rows[0]["dense_ms"] > 0
    assert rows[0]["speedup"] == rows[0]["dense_ms"] / rows[0]["fast_ms"]


def test_peak_memory_can_be_reset():
    cpu = torch.device("cpu")
    if not bench.reset_peak_memory(cpu):  # not Linux: the lifetime peak is all there is
        return
    before = bench.peak_memory_mb(cpu)
    block = np.ones(64 * 2**20 // 8)  # 64 MiB touched
    high = bench.peak_memory_mb(cpu)
    del block
    assert high - before > 48
    assert bench.reset_peak_memory(cpu)
    assert bench.peak_memory_mb(cpu) < high - 32
