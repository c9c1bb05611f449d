"""Speed of the built-in synthetic generator: images/s on one core (target >= 300 at 128 px, issue 3), and the
memory `dkp prepare synthetic` needs as the set grows (issue 30: it must stay flat).

    python benchmarks/synthetic_gen.py                 # 64 and 128 px, cluttered and clean, 400 images each
    python benchmarks/synthetic_gen.py --n 1000 --json
    python benchmarks/synthetic_gen.py --dataset       # + the whole `dkp prepare synthetic` default (64 px, 5,500)
    python benchmarks/synthetic_gen.py --memory 4000 40000   # peak RSS of `dkp prepare synthetic --n-train N`

Rendering runs in this one process with OpenCV single-threaded, so the figure is per core. Both the wall-clock
rate and the CPU-time rate are printed: on a shared machine the CPU-time figure is the one that says what one
core does; the wall-clock figure includes time other processes took from it.

``--memory`` runs the command itself (64 px, default fit and test splits, default workers) in a child process and
samples the resident memory of it and of its rendering workers every 50 ms: the peak of the main process (which
writes the set) and the peak of the whole process tree. Memory does not depend on the machine's load; time does.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dkp_tui.data.synthetic import generate_dataset, render_sample, sample_rng  # noqa: E402

TARGET = 300.0  # images/s at 128 px on one core
ROOT = Path(__file__).resolve().parents[1]


def peak_memory(n_train: int, workers: int = 0) -> dict[str, float]:
    """Peak resident memory (MB) of `dkp prepare synthetic --n-train N` at 64 px, sampled every 50 ms."""
    with tempfile.TemporaryDirectory(prefix="dkp-synth-mem-") as tmp:
        cmd = [sys.executable, "-m", "dkp_tui", "prepare", "synthetic", "--out", str(Path(tmp) / "s"), "--size", "64",
               "--n-train", str(n_train), "--quiet"]
        if workers:
            cmd += ["--workers", str(workers)]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        t0 = time.perf_counter()
        proc = psutil.Popen(cmd, env=env, stdout=subprocess.DEVNULL)
        main_peak = tree_peak = 0
        n_procs = 1
        while proc.poll() is None:
            try:
                main = proc.memory_info().rss
                children = proc.children(recursive=True)
                tree = main + sum(c.memory_info().rss for c in children)
            except psutil.Error:  # a worker ended between listing and reading
                continue
            main_peak, tree_peak = max(main_peak, main), max(tree_peak, tree)
            n_procs = max(n_procs, 1 + len(children))
            time.sleep(0.05)
        seconds = time.perf_counter() - t0
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed with exit code {proc.returncode}")
        stored = sum(p.stat().st_size for p in (Path(tmp) / "s").rglob("*") if p.is_file())
    return {"n_train": n_train, "images": n_train + 1500, "main_peak_mb": main_peak / 1e6,
            "tree_peak_mb": tree_peak / 1e6, "processes": n_procs, "seconds": seconds, "stored_mb": stored / 1e6,
            "load_avg_1m": os.getloadavg()[0]}


def rate(size: int, background: str, n: int) -> dict[str, float]:
    render_sample(sample_rng(0, "train", 0), size, background)  # warm-up
    wall0, cpu0 = time.perf_counter(), time.process_time()
    clutter = figure = 0.0
    for i in range(n):
        s = render_sample(sample_rng(0, "train", i), size, background)
        clutter += s.extras["clutter_area"]
        figure += s.extras["figure_area"]
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return {"size": size, "background": background, "images": n, "wall_images_per_s": n / wall,
            "cpu_images_per_s": n / cpu, "figure_area": figure / n, "clutter_area": clutter / n}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=400, help="images per configuration")
    parser.add_argument("--dataset", action="store_true", help="also time generate_dataset with the defaults")
    parser.add_argument("--memory", type=int, nargs="+", metavar="N_TRAIN",
                        help="only measure the peak memory of `dkp prepare synthetic --n-train N` (64 px)")
    parser.add_argument("--workers", type=int, default=0, help="--workers of the --memory runs (0: the default)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.memory:
        memory = [peak_memory(n, args.workers) for n in args.memory]
        if args.json:
            print(json.dumps({"memory": memory, "cpu": os.cpu_count()}, indent=2))
            return
        print(f"dkp prepare synthetic, 64 px, fit 1000 + test 500 ({os.cpu_count()} CPUs)")
        print(f"{'n_train':>8} {'main peak MB':>13} {'tree peak MB':>13} {'procs':>6} {'stored MB':>10} {'s':>7}"
              f" {'load':>5}")
        for m in memory:
            print(f"{m['n_train']:>8} {m['main_peak_mb']:>13.0f} {m['tree_peak_mb']:>13.0f} {m['processes']:>6}"
                  f" {m['stored_mb']:>10.0f} {m['seconds']:>7.1f} {m['load_avg_1m']:>5.2f}")
        return
    cv2.setNumThreads(1)
    results = [rate(size, bg, args.n) for size in (64, 128) for bg in ("cluttered", "clean")]
    out: dict[str, object] = {"configs": results, "cpu": os.cpu_count(), "load_avg_1m": os.getloadavg()[0]}
    if args.dataset:
        with tempfile.TemporaryDirectory(prefix="dkp-synth-") as tmp:
            t0 = time.perf_counter()
            m = generate_dataset(Path(tmp) / "s", size=64, progress=False)
            total = sum(v.count for v in m.splits.values())
            out["dataset"] = {"size": 64, "images": total, "seconds": time.perf_counter() - t0}
    if args.json:
        print(json.dumps(out, indent=2))
        return
    print(f"synthetic generator, one process, OpenCV single-threaded ({out['cpu']} CPUs, "
          f"load {out['load_avg_1m']:.2f})")
    print(f"{'size':>5} {'background':>10} {'wall img/s':>11} {'cpu img/s':>10} {'figure':>7} {'clutter':>8}")
    for r in results:
        print(f"{r['size']:>5} {r['background']:>10} {r['wall_images_per_s']:>11.0f} {r['cpu_images_per_s']:>10.0f}"
              f" {r['figure_area']:>7.3f} {r['clutter_area']:>8.3f}")
    at128 = min(r["cpu_images_per_s"] for r in results if r["size"] == 128)
    print(f"128 px (slowest background), per core: {at128:.0f} img/s = {at128 / TARGET:.2f}x the "
          f"{TARGET:.0f} img/s target")
    if "dataset" in out:
        d = out["dataset"]
        print(f"generate_dataset defaults (64 px, {d['images']} images incl. writes): {d['seconds']:.1f} s")


if __name__ == "__main__":
    main()
