"""CPU cost of `dkp watch` while a run logs 10 metrics lines per second (target: < 3 % of one core).

A writer process appends step lines to a fresh run directory at ``--rate`` lines/s (and a sample grid every 10 s);
this process runs the dashboard headless at its normal refresh rate, with the real system sampler, and measures
its own CPU time (user + system, all threads) over ``--seconds`` after a short warm-up. ``--mode loop`` measures
only the tail + state update + text formatting loop without Textual, to separate the two costs.

    python benchmarks/watch_cpu.py                 # headless app, 20 s
    python benchmarks/watch_cpu.py --mode loop
    python benchmarks/watch_cpu.py --size 120x40 --seconds 30
    python benchmarks/watch_cpu.py --prefill 20000   # a run 20,000 lines in
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

TARGET_PERCENT = 3.0

WRITER = textwrap.dedent(
    """
    import json, math, sys, time
    from pathlib import Path
    import numpy as np
    from PIL import Image
    run, rate, prefill = Path(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
    fh = open(run / "metrics.jsonl", "a", encoding="utf-8")
    fh.write(json.dumps({"kind": "start", "time": time.time(), "step": 0, "role": "student", "total_steps": 20000})
             + "\\n"); fh.flush()
    step, t0, next_sample = 0, time.time(), 0.0
    rng = np.random.default_rng(0)
    while True:
        step += 1
        now = time.time()
        if step <= prefill:  # a long run already in progress: history written at once, timestamps in the past
            now = t0 - (prefill - step) / rate
        rec = {"kind": "step", "time": now, "step": step, "total_steps": 20000, "elapsed": now - t0,
               "loss": 1 / math.sqrt(step) + 0.1, "loss_rec": 1 / math.sqrt(step), "loss_kd": 0.1, "lr": 1e-4,
               "images_per_s": 640.0, "alpha": min(1.0, step / 5000), "edge_w_mean": 0.3, "edge_w_std": 0.1,
               "edge_w_max": 0.9, "cpu_percent": 100.0, "rss_mb": 2000.0}
        fh.write(json.dumps(rec) + "\\n"); fh.flush()
        if step >= prefill and now >= next_sample:
            next_sample = now + 10
            (run / "samples").mkdir(exist_ok=True)
            tmp = run / "samples" / ".tmp.png"
            Image.fromarray(rng.integers(0, 255, (256, 512, 3), dtype=np.uint8)).save(tmp)
            tmp.replace(run / "samples" / f"step_{step:07d}.png")
        if step > prefill:
            time.sleep(max(0.0, t0 + (step - prefill) / rate - time.time()))
    """
)


def make_run(root: Path) -> Path:
    run = root / "student"
    run.mkdir(parents=True)
    info = {
        "role": "student",
        "status": "running",
        "step": 0,
        "total_steps": 20000,
        "seed": 0,
        "teacher_run": None,
        "created": time.time(),
        "updated": time.time(),
        "message": "",
        "format_version": 1,
        "dkp_version": "0.1.0",
    }
    (run / "run.json").write_text(json.dumps(info), encoding="utf-8")
    return run


def cpu_seconds() -> float:
    return time.process_time()


async def measure_app(root: Path, seconds: float, warmup: float, size: tuple[int, int]) -> tuple[float, int]:
    from dkp_tui.watch.app import WatchApp

    app = WatchApp(root, image_mode="halfcell")
    async with app.run_test(size=size) as pilot:
        await pilot.pause(warmup)
        c0, w0, t0 = cpu_seconds(), time.perf_counter(), app.ticks
        await pilot.pause(seconds)
        c1, w1, t1 = cpu_seconds(), time.perf_counter(), app.ticks
        points = len(app.state.current.series["loss"]) if app.state.current else 0
    print(f"dashboard ticks: {t1 - t0} in {w1 - w0:.1f} s; points on the loss curve at the end: {points}")
    return (c1 - c0) / (w1 - w0) * 100, points


def measure_loop(root: Path, seconds: float, warmup: float) -> tuple[float, int]:
    """What the app does per tick, minus Textual: poll, sample the system, format every panel, draw the chart."""
    from dkp_tui.watch.app import OTHERS_EVERY, POLL_S, SYSTEM_EVERY
    from dkp_tui.watch.braille import render_plot
    from dkp_tui.watch.format import chart_series, metrics_text, status_line, system_text
    from dkp_tui.watch.state import WatchState
    from dkp_tui.watch.sysstats import SystemSampler

    state, sampler = WatchState(root, time.time), SystemSampler()
    tick, stats = 0, None
    end_warm = time.perf_counter() + warmup
    c0 = w0 = None
    while True:
        now = time.perf_counter()
        if c0 is None and now >= end_warm:
            c0, w0 = cpu_seconds(), now
        if w0 is not None and now - w0 >= seconds:
            break
        state.poll(everything=tick % OTHERS_EVERY == 0)
        if tick % SYSTEM_EVERY == 0:
            stats = sampler()
        t = time.time()
        status_line(state, t), metrics_text(state.current, t), system_text(stats)
        render_plot(chart_series(state), 40, 9)
        tick += 1
        time.sleep(POLL_S)
    c1, w1 = cpu_seconds(), time.perf_counter()
    points = len(state.current.series["loss"]) if state.current else 0
    return (c1 - c0) / (w1 - w0) * 100, points  # type: ignore[operator]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--warmup", type=float, default=3.0)
    ap.add_argument(
        "--rate", type=float, default=10.0, help="metrics lines per second written by the fake run"
    )
    ap.add_argument("--prefill", type=int, default=0, help="lines already in metrics.jsonl (a long run)")
    ap.add_argument("--mode", choices=("app", "loop"), default="app")
    ap.add_argument("--size", default="80x24", help="terminal size for --mode app, WxH")
    args = ap.parse_args()
    size = tuple(int(v) for v in args.size.lower().split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        run = make_run(Path(tmp))
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(run), str(args.rate), str(args.prefill)])
        try:
            time.sleep(
                1.0 + args.prefill / 50_000
            )  # let the writer start (its numpy/PIL import is not ours to count)
            t_import = time.perf_counter()
            c_import = cpu_seconds()
            import dkp_tui.watch.app  # noqa: F401 - counted separately: start-up, not steady state

            print(
                f"import dkp_tui.watch.app: {time.perf_counter() - t_import:.2f} s wall, "
                f"{cpu_seconds() - c_import:.2f} s CPU"
            )
            if args.mode == "app":
                percent, points = asyncio.run(measure_app(Path(tmp), args.seconds, args.warmup, size))  # type: ignore[arg-type]
            else:
                percent, points = measure_loop(Path(tmp), args.seconds, args.warmup)
        finally:
            writer.terminate()
            writer.wait()
    print(f"mode={args.mode} rate={args.rate:g} lines/s over {args.seconds:g} s: {points} points read")
    print(
        f"CPU: {percent:.2f} % of one core (target < {TARGET_PERCENT:g} %: "
        f"{'OK' if percent < TARGET_PERCENT else 'OVER'}; ratio {percent / TARGET_PERCENT:.2f} of the budget)"
    )


if __name__ == "__main__":
    main()
