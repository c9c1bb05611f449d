"""``dkp watch --once``: one rich snapshot of the runs (summary, last metrics, a small curve, system) and exit.

Kept apart from the Textual app so that logs, scripts and tests get the snapshot without importing Textual or
querying the terminal for graphics support.
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from dkp_tui.watch.braille import legend, render_plot
from dkp_tui.watch.format import chart_series, chart_title, metrics_text, run_row, status_line, system_text
from dkp_tui.watch.state import WatchState
from dkp_tui.watch.sysstats import Sampler, SysStats, SystemSampler


def load_state(path: str | os.PathLike[str], clock: Callable[[], float] = time.time) -> WatchState:
    state = WatchState(Path(path), clock)
    state.poll()
    return state


def snapshot_renderable(
    state: WatchState, stats: SysStats | None, width: int = 100, chart_height: int = 10
) -> RenderableType:
    now = state.clock()
    parts: list[RenderableType] = [status_line(state, now)]
    table = Table(box=None, pad_edge=False, header_style="bold")
    for col, justify in (
        ("run", "left"),
        ("role", "left"),
        ("status", "left"),
        ("step", "right"),
        ("loss", "right"),
    ):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for i, run in enumerate(state.runs):
        name, role, status, step, loss = run_row(run, now, i == state.compare)
        if i == state.selected and len(state.runs) > 1:
            name = Text("▶ ") + name
        table.add_row(name, role, status, step, loss)
    parts.append(Panel(table, title="runs", title_align="left"))
    if state.current is not None:
        parts.append(Panel(metrics_text(state.current, now), title="last metrics", title_align="left"))
        series = chart_series(state)
        lines = render_plot(series, max(width - 4, 20), chart_height, log=state.log_scale)
        parts.append(
            Panel(
                Text("\n").join(lines),
                title=chart_title(state),
                title_align="left",
                subtitle=legend(series[::-1]) if series else None,
                subtitle_align="right",
            )
        )
    parts.append(Panel(system_text(stats), title="system", title_align="left"))
    return Group(*parts)


def snapshot(
    path: str | os.PathLike[str],
    width: int = 100,
    clock: Callable[[], float] = time.time,
    sampler: Sampler | None = None,
) -> str:
    """The snapshot as plain text (no colour codes), ``width`` columns wide."""
    state = load_state(path, clock)
    stats = (sampler or SystemSampler())()
    console = Console(file=io.StringIO(), width=width, record=True, color_system=None, force_terminal=False)
    console.print(snapshot_renderable(state, stats, width))
    return console.export_text()


def snapshot_dict(
    path: str | os.PathLike[str], clock: Callable[[], float] = time.time, sampler: Sampler | None = None
) -> dict[str, Any]:
    """The same facts for scripts (``dkp watch --once --json``)."""
    state = load_state(path, clock)
    stats = (sampler or SystemSampler())()
    now = clock()
    runs = []
    for run in state.runs:
        runs.append(
            {
                "name": run.name,
                "path": str(run.path),
                "role": run.role,
                "status": run.status(now),
                "step": run.step,
                "total_steps": run.total,
                "eta_s": run.eta(now),
                "steps_per_s": run.steps_per_s(),
                "corrupt_lines": run.corrupt,
                "last": {k: v for k, v in run.last.items() if k != "kind"},
                "samples": [str(p) for p in run.samples()[:2] if p is not None],
                "job": None if run.job is None else {k: getattr(run.job, k) for k in
                                                     ("state", "launcher", "job_id", "log", "message")},
            }
        )
    return {
        "root": str(state.root),
        "runs": runs,
        "system": {
            "cpu_percent": stats.cpu_percent,
            "cpu_count": stats.cpu_count,
            "ram_used_mb": stats.ram_used_mb,
            "ram_total_mb": stats.ram_total_mb,
            "gpu_note": stats.gpu_note,
            "gpus": [g.__dict__ for g in stats.gpus],
        },
    }
