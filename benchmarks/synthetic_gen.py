"""Speed of the built-in synthetic generator: images/s on one core (target >= 300 at 128 px, issue 3).

    python benchmarks/synthetic_gen.py                 # 64 and 128 px, cluttered and clean, 400 images each
    python benchmarks/synthetic_gen.py --n 1000 --json
    python benchmarks/synthetic_gen.py --dataset       # + the whole `dkp prepare synthetic` default (64 px, 5,500)

Rendering runs in this one process with OpenCV single-threaded, so the figure is per core. Both the wall-clock
rate and the CPU-time rate are printed: on a shared machine the CPU-time figure is the one that says what one
core does; the wall-clock figure includes time other processes took from it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import cv2

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dkp_tui.data.synthetic import generate_dataset, render_sample, sample_rng  # noqa: E402

TARGET = 300.0  # images/s at 128 px on one core


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
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
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
