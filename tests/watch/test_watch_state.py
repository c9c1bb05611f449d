"""Run discovery, the metrics model (series, status, ETA, samples) and the braille chart."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from watch_fakes import T0, FakeRun, two_runs

from dkp_tui.watch.braille import PlotSeries, render_plot
from dkp_tui.watch.state import STALL_MIN_S, RunModel, Series, WatchState, find_runs, latest_samples


def tree(root: Path) -> dict[str, tuple[int, int]]:
    out = {}
    for d, _, files in os.walk(root):
        for f in files:
            st = os.stat(os.path.join(d, f))
            out[os.path.relpath(os.path.join(d, f), root)] = (st.st_size, st.st_mtime_ns)
    return out


def test_find_runs_nested_and_self(tmp_path: Path) -> None:
    FakeRun(tmp_path, "b/student")
    FakeRun(tmp_path, "a")
    FakeRun(tmp_path, "a/samples/not_a_run")  # inside a run: runs do not nest
    (tmp_path / ".hidden").mkdir()
    FakeRun(tmp_path, ".hidden/x")
    assert [p.relative_to(tmp_path).as_posix() for p in find_runs(tmp_path)] == ["a", "b/student"]
    assert find_runs(tmp_path / "a") == [tmp_path / "a"]
    assert find_runs(tmp_path / "nothing") == []


def test_run_model_series_and_unknown_keys(tmp_path: Path) -> None:
    run = FakeRun(tmp_path, "s")
    run.start()
    run.steps(10, 100)
    model = RunModel(run.path, "s")
    assert model.poll()
    assert len(model.series["loss"]) == 10 and len(model.series["loss_kd"]) == 10
    assert len(model.series["gpu_mem_mb"]) == 0  # absent on CPU
    assert model.step == 100 and model.total == 1000 and model.role == "student" and model.distilled
    assert model.last_value("future_key") is None
    assert not model.poll()  # nothing new


def test_status_running_stalled_finished_failed(tmp_path: Path) -> None:
    run = FakeRun(tmp_path, "s")
    run.start()
    run.steps(10, 100)  # a line every 5 s (10 steps × 0.5 s)
    model = RunModel(run.path, "s")
    model.poll()
    last = T0 + 100 * 0.5
    assert model.status(last + 10) == "running"
    assert model.status(last + STALL_MIN_S - 1) == "running"
    assert model.status(last + STALL_MIN_S + 1) == "stalled"  # 10 × 5 s < 60 s floor
    run.end(100, status="failed")
    model.poll()
    assert model.status(last + 10_000) == "failed"
    other = FakeRun(tmp_path, "t", status="finished")
    m2 = RunModel(other.path, "t")
    m2.poll()
    assert m2.status(T0 + 1e6) == "finished"


def test_eta_and_rate(tmp_path: Path) -> None:
    run = FakeRun(tmp_path, "s", total=1000)
    run.steps(10, 200)
    model = RunModel(run.path, "s")
    model.poll()
    assert model.steps_per_s() == 2.0  # 10 steps per 5 s
    assert model.eta(T0 + 100 + 1) == (1000 - 200) / 2.0
    assert model.eta(T0 + 1e6) is None  # stalled: no ETA


def test_replaced_metrics_clear_the_series(tmp_path: Path) -> None:
    run = FakeRun(tmp_path, "s")
    run.steps(10, 300)
    model = RunModel(run.path, "s")
    model.poll()
    assert len(model.series["loss"]) == 30
    tmp = run.path / ".metrics.tmp"
    tmp.write_text("".join(json.dumps(run.step_record(s)) + "\n" for s in range(10, 110, 10)))
    os.replace(tmp, run.metrics)  # a resume from step 100 rewrote the file
    model.poll()
    assert len(model.series["loss"]) == 10 and model.step == 100


def test_latest_samples(tmp_path: Path) -> None:
    run = FakeRun(tmp_path, "s")
    assert latest_samples(run.path) == (None, None, 0)
    run.sample(100)
    run.sample(100, teacher=True)
    run.sample(200)
    (run.path / "samples" / ".step_0000300.png.abc.png.tmp").write_bytes(b"partial")
    main, teacher, step = latest_samples(run.path)
    assert step == 200 and main is not None and main.name == "step_0000200.png" and teacher is None
    run.sample(300, teacher=True)
    run.sample(300)
    main, teacher, step = latest_samples(run.path)
    assert step == 300 and teacher is not None and teacher.name == "step_0000300_teacher.png"


def test_series_ema_incremental_matches_full() -> None:
    rng = np.random.default_rng(0)
    values = rng.random(700)
    s = Series()
    for i, v in enumerate(values[:300]):
        s.append(i, v)
    s.smoothed(0.9)
    for i, v in enumerate(values[300:], start=300):
        s.append(i, v)
    got = s.smoothed(0.9)
    m, want = 0.0, []
    for i, v in enumerate(values):
        m = 0.9 * m + 0.1 * v
        want.append(m / (1 - 0.9 ** (i + 1)))
    np.testing.assert_allclose(got, want, rtol=1e-12)
    assert np.array_equal(s.smoothed(0.0), values)
    assert s.smoothed(0.6)[0] == values[0]  # bias-corrected: the first point is the first value


def test_watch_state_selection_survives_discovery(tmp_path: Path) -> None:
    two_runs(tmp_path)
    state = WatchState(tmp_path, clock=lambda: T0)
    assert [r.name for r in state.runs] == ["student", "teacher"]
    state.select(1)
    state.toggle_compare(0)
    FakeRun(tmp_path, "a_new")
    assert state.discover()
    assert [r.name for r in state.runs] == ["a_new", "student", "teacher"]
    assert state.current is not None and state.current.name == "teacher"
    assert state.compared is not None and state.compared.name == "student"


def test_state_never_writes(tmp_path: Path) -> None:
    two_runs(tmp_path)
    before = tree(tmp_path)
    state = WatchState(tmp_path, clock=lambda: T0)
    for _ in range(3):
        state.poll()
        for r in state.runs:
            r.samples()
    assert tree(tmp_path) == before


def test_render_plot_shape_log_and_empty() -> None:
    x = np.arange(1, 101, dtype=float)
    lines = render_plot([PlotSeries("a", x, 1 / x, "red")], 40, 8)
    assert len(lines) == 8 and all(len(t.plain) <= 40 for t in lines)
    assert any(any(0x2800 < ord(c) <= 0x28FF for c in t.plain) for t in lines)
    assert lines[0].plain.strip().startswith("1")  # top label is the maximum
    log = render_plot([PlotSeries("a", x, np.where(x > 50, 1 / x, -1.0), "red")], 40, 8, log=True)
    assert "0.0196" in log[0].plain  # values <= 0 dropped on a log scale
    assert render_plot([], 40, 8)[0].plain == "no data yet"
    assert render_plot([PlotSeries("a", x[:1], x[:1], "red")], 40, 8)[-1].plain.strip().startswith("1")
