"""`dkp watch --once` through the real CLI."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner
from watch_fakes import FIXED_STATS, T0, two_runs

from dkp_tui.cli import app
from dkp_tui.watch.app import snapshot as app_snapshot
from dkp_tui.watch.once import snapshot
from dkp_tui.watch.sysstats import fixed_sampler

runner = CliRunner()


def test_once_prints_a_snapshot(runs_root: Path) -> None:
    two_runs(runs_root)
    result = runner.invoke(app, ["watch", str(runs_root), "--once", "--width", "90"])
    assert result.exit_code == 0, result.output
    out = result.output
    for expected in (
        "student",
        "teacher",
        "finished",
        "step 500/1000",
        "last metrics",
        "loss",
        "system",
        "CPU",
    ):
        assert expected in out
    assert any(0x2800 < ord(c) <= 0x28FF for c in out)  # the small curve


def test_once_json(runs_root: Path) -> None:
    two_runs(runs_root)
    result = runner.invoke(app, ["watch", str(runs_root / "student"), "--once", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    (run,) = data["runs"]
    assert run["name"] == "student" and run["role"] == "student" and run["step"] == 500
    assert run["total_steps"] == 1000 and run["corrupt_lines"] == 0
    assert run["last"]["loss_kd"] is not None and len(run["samples"]) == 2
    assert "cpu_percent" in data["system"]


def test_once_errors_are_one_line(tmp_path: Path) -> None:
    result = runner.invoke(app, ["watch", str(tmp_path / "missing"), "--once"])
    assert result.exit_code == 2 and "no such directory" in result.output
    result = runner.invoke(app, ["watch", str(tmp_path), "--json"])
    assert result.exit_code == 2 and "--json needs --once" in result.output


def test_snapshot_api_is_deterministic(runs_root: Path) -> None:
    two_runs(runs_root)
    kw = dict(width=80, clock=lambda: T0 + 252.0, sampler=fixed_sampler(FIXED_STATS))
    text = snapshot(runs_root, **kw)  # type: ignore[arg-type]
    assert text == snapshot(runs_root, **kw)  # type: ignore[arg-type]
    assert "ETA 4m10s" in text and "GPU no GPU" in text and "corrupt 0" in text
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "student" in app_snapshot(runs_root / "student", width=60)
