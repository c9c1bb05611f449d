"""The dashboard driven headless with Pilot against run directories written line by line."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from textual.app import App
from watch_fakes import FIXED_STATS, T0, FakeRun, two_runs

from dkp_tui.watch.app import DISCOVER_EVERY, WatchApp
from dkp_tui.watch.sysstats import fixed_sampler
from dkp_tui.watch.widgets.help import HelpScreen
from dkp_tui.watch.widgets.overlays import OverlayPanel, fit_cells

CLOCK = lambda: T0 + 252.0  # noqa: E731 - 2 s after the fake student's step-500 line


def make_app(root: Path, **kw: object) -> WatchApp:
    """poll_interval is huge: the test steps the dashboard with app.tick() instead of waiting for timers."""
    kw.setdefault("sampler", fixed_sampler(FIXED_STATS))
    return WatchApp(root, clock=CLOCK, poll_interval=3600, image_mode="halfcell", **kw)  # type: ignore[arg-type]


def screen_text(app: App) -> str:
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


def chart_text(app: WatchApp) -> str:
    return "\n".join(
        strip.text for strip in app.query_one("#chart").render_lines(app.query_one("#chart").region)
    )


async def test_curves_grow_as_lines_arrive(runs_root: Path) -> None:
    run = FakeRun(runs_root, "student")
    run.start()
    run.steps(10, 50)
    app = make_app(runs_root)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        model = app.state.current
        assert model is not None and len(model.series["loss"]) == 5
        before = screen_text(app)
        assert "step 50/1000" in before
        run.steps(60, 200)
        app.tick()
        await pilot.pause()
        assert len(model.series["loss"]) == 20 and len(model.series["loss_kd"]) == 20
        after = screen_text(app)
        assert "step 200/1000" in after
        assert after != before
        braille = sum(1 for c in after if 0x2800 < ord(c) <= 0x28FF)
        assert braille > 20


async def test_half_line_waits_and_corrupt_line_counted(runs_root: Path) -> None:
    run = FakeRun(runs_root, "student")
    run.steps(10, 30)
    app = make_app(runs_root)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        model = app.state.current
        assert model is not None and len(model.series["loss"]) == 3
        line = json.dumps(run.step_record(40)) + "\n"
        run.append_raw(line[:25])
        app.tick()
        await pilot.pause()
        assert len(model.series["loss"]) == 3 and model.corrupt == 0
        assert "step 30/" in screen_text(app)
        run.append_raw(line[25:])
        app.tick()
        await pilot.pause()
        assert len(model.series["loss"]) == 4 and model.corrupt == 0
        assert "step 40/" in screen_text(app)
        run.append_raw('{"kind": "step", "step": 50, "loss": 0.1\n')  # torn line from a crashed writer
        run.steps(60, 60)
        app.tick()
        await pilot.pause()
        assert len(model.series["loss"]) == 5 and model.corrupt == 1
        assert "corrupt 1" in screen_text(app)


async def test_run_switching_compare_and_keys(runs_root: Path) -> None:
    two_runs(runs_root)
    app = make_app(runs_root)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert app.state.current.name == "student"  # type: ignore[union-attr]
        assert "student (KD) running" in screen_text(app)
        await pilot.press("down")
        await pilot.pause()
        assert app.state.current.name == "teacher"  # type: ignore[union-attr]
        text = screen_text(app)
        assert "teacher · teacher finished" in text and "teacher (depth)" in text
        # mark the teacher, go back to the student: the teacher's curves are overlaid
        await pilot.press("c", "up")
        await pilot.pause()
        assert app.state.current.name == "student" and app.state.compared.name == "teacher"  # type: ignore[union-attr]
        assert "vs teacher" in screen_text(app)
        assert "◆teacher" in screen_text(app)
        await pilot.press("n")
        assert app.state.current.name == "teacher"  # type: ignore[union-attr]
        await pilot.press("p")
        assert app.state.current.name == "student"  # type: ignore[union-attr]

        chart = app.query_one("#chart")
        await pilot.press("l")
        assert app.state.log_scale and "log" in str(chart.border_title)
        await pilot.press("s")
        assert app.state.smoothing == 0.6 and "EMA 0.6" in str(chart.border_title)
        await pilot.press("m")
        await pilot.pause()
        assert app.state.group == "edge weights" and "mean" in str(chart.border_subtitle)
        assert "vs teacher" in str(chart.border_subtitle)
        await pilot.press("m", "m")
        assert app.state.group == "lr"

        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen) and "linear / log scale" in screen_text(app)
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, HelpScreen)

        await pilot.press("o")
        await pilot.pause()
        assert isinstance(app.screen.maximized, OverlayPanel)
        await pilot.press("o")
        await pilot.pause()
        assert app.screen.maximized is None

        await pilot.press("q")
        await pilot.pause()
    assert app.return_code == 0


async def test_new_runs_are_discovered_and_stalled_shown(runs_root: Path) -> None:
    run = FakeRun(runs_root, "b_student")
    run.steps(10, 500)
    clock_now = [T0 + 252.0]
    app = WatchApp(
        runs_root,
        clock=lambda: clock_now[0],
        sampler=fixed_sampler(FIXED_STATS),
        poll_interval=3600,
        image_mode="halfcell",
    )
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert "running" in screen_text(app) and "ETA" in screen_text(app)
        clock_now[0] += 3600
        FakeRun(runs_root, "a_teacher", role="teacher", distill=False)
        for _ in range(DISCOVER_EVERY):
            app.tick()
        await pilot.pause()
        assert [r.name for r in app.state.runs] == ["a_teacher", "b_student"]
        assert app.state.current.name == "b_student"  # type: ignore[union-attr]
        text = screen_text(app)
        assert "stalled" in text and "ETA" not in text


async def test_no_gpu_path_renders(runs_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pynvml

    def no_driver() -> None:
        raise pynvml.NVMLError(pynvml.NVML_ERROR_LIBRARY_NOT_FOUND)

    monkeypatch.setattr(pynvml, "nvmlInit", no_driver)
    two_runs(runs_root)
    app = WatchApp(runs_root, clock=CLOCK, poll_interval=3600, image_mode="halfcell")  # the real sampler
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        text = screen_text(app)
        assert "GPU no GPU" in text and "CPU" in text and "RAM" in text
        assert app.stats is not None and app.stats.gpus == ()


async def test_dashboard_never_writes_and_resizes(runs_root: Path) -> None:
    two_runs(runs_root)

    def tree() -> dict[str, tuple[int, int]]:
        return {
            os.path.join(d, f): (os.stat(os.path.join(d, f)).st_size, os.stat(os.path.join(d, f)).st_mtime_ns)
            for d, _, fs in os.walk(runs_root)
            for f in fs
        }

    before = tree()
    app = make_app(runs_root)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.resize_terminal(120, 40)
        await pilot.pause()
        assert len(screen_text(app).splitlines()) == 40
        await pilot.resize_terminal(60, 20)
        await pilot.pause()
        await pilot.resize_terminal(80, 24)
        await pilot.pause()
        assert "step 500/1000" in screen_text(app)
    assert tree() == before


def test_fit_cells_keeps_aspect() -> None:
    assert fit_cells(128, 64, 40, 100) == (40, 10)  # width-bound: 40 cols × 20 px rows = 2:1
    assert fit_cells(128, 64, 100, 5) == (20, 5)  # height-bound
    assert fit_cells(0, 64, 10, 10) == (0, 0)


async def test_unreadable_sample_is_reported_not_fatal(runs_root: Path) -> None:
    run = FakeRun(runs_root, "student", distill=False)
    run.steps(10, 100)
    run.sample(50)
    app = make_app(runs_root)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert "samples · step 50" in screen_text(app) and "student (RGB)" in screen_text(app)
        (run.path / "samples" / "step_0000100.png").write_bytes(b"not a png")
        app.tick()
        await pilot.pause()
        assert "unreadable: step_0000100.png" in screen_text(app)
        run.sample(150)
        app.tick()
        await pilot.pause()
        assert "unreadable" not in screen_text(app) and "samples · step 150" in screen_text(app)
