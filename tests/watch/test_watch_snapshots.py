"""Snapshots of the dashboard (pytest-textual-snapshot): fixed metrics, clock, system stats and half-block images.

Regenerate after an intended change with: pytest tests/watch/test_watch_snapshots.py --snapshot-update
"""

from __future__ import annotations

from pathlib import Path

from textual.pilot import Pilot
from watch_fakes import FIXED_STATS, GPU_STATS, T0, two_runs

from dkp_tui.watch.app import WatchApp
from dkp_tui.watch.sysstats import SysStats, fixed_sampler


def app_for(root: Path, stats: SysStats = FIXED_STATS) -> WatchApp:
    return WatchApp(
        root,
        clock=lambda: T0 + 252.0,
        sampler=fixed_sampler(stats),
        poll_interval=3600,
        image_mode="halfcell",
    )


def test_main_screen_80x24(snap_compare, runs_root: Path) -> None:
    two_runs(runs_root)
    assert snap_compare(app_for(runs_root), terminal_size=(80, 24))


def test_main_screen_120x40_compare_gpu(snap_compare, runs_root: Path) -> None:
    two_runs(runs_root)

    async def mark_teacher(pilot: Pilot) -> None:
        await pilot.pause()  # auto_pilot may start before on_mount has focused the run list
        await pilot.press("down", "c", "up", "s", "s")
        await pilot.pause()

    assert snap_compare(app_for(runs_root, GPU_STATS), terminal_size=(120, 40), run_before=mark_teacher)


def test_empty_directory_80x24(snap_compare, runs_root: Path) -> None:
    assert snap_compare(app_for(runs_root), terminal_size=(80, 24))
