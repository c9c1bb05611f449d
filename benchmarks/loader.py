"""Training-loader throughput: images/s into batches of 64 at 128 px with the training augmentation (RGB + depth,
shared flips), and its ratio to a training step's images/s on the same machine (issue 4: target >= 5x).

    python benchmarks/loader.py                        # 128 px, batch 64, 1,024-image cluttered synthetic set
    python benchmarks/loader.py --stored 256           # frames stored at 256 px: includes the antialiased resize
    python benchmarks/loader.py --preset synthetic --device cuda --train-batch 64 --json
    python benchmarks/loader.py --no-train-step        # the loader figure only

The loader is timed as the loop sees it (``iterate`` with its prefetch thread, the consumer doing nothing) and
synchronously (``batch(step)`` alone, i.e. one core's work per batch). The training step is
``dkp_tui.experiments.bench.measure_train_step`` (the loop's own step: student with a frozen teacher and the KD term) when the
training loop is installed; otherwise only the loader figure is printed.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dkp_tui.data.loader import BatchLoader  # noqa: E402
from dkp_tui.data.synthetic import generate_dataset  # noqa: E402

TARGET_RATIO = 5.0


def time_loader(root: Path, size: int, batch: int, n_batches: int, prefetch: int) -> dict[str, float]:
    loader = BatchLoader(root, "train", size, batch, seed=0, hflip=True, rgb=True, depth=True, prefetch=prefetch)
    loader.batch(0)  # open the memory maps, fault the pages in
    images = 0
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    if prefetch > 0:
        for _, b in loader.iterate(1, 1 + n_batches):
            images += b.image.shape[0]
    else:
        for step in range(1, 1 + n_batches):
            images += loader.batch(step).image.shape[0]
    wall = time.perf_counter() - t0
    return {"images_per_s": images / wall, "ms_per_batch": 1000 * wall / n_batches,
            "cpu_s_per_batch": (time.process_time() - cpu0) / n_batches}


def time_train_step(root: Path, preset: str, device: str, batch: int | None, steps: int) -> dict[str, Any] | None:
    if importlib.util.find_spec("dkp_tui.train.loop") is None:
        return None
    from dkp_tui.config import load_config
    from dkp_tui.experiments.bench import bench_config, make_loader, measure_train_step, write_random_vgg16

    probe = load_config(preset)
    with tempfile.TemporaryDirectory(prefix="dkp-loader-vgg-") as tmp:
        vgg = write_random_vgg16(Path(tmp) / "vgg16.safetensors") if probe.loss.reconstruction != "pixel" else None
        cfg = bench_config(preset, [], device, batch, root, vgg)
        loader = make_loader(cfg, "student")
        batches = [(b.image, b.depth) for _, b in loader.iterate(0, 2)]
        return {"preset": preset, **measure_train_step(cfg, "student", batches, steps=steps)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=128, help="model input size")
    parser.add_argument("--stored", type=int, default=128, help="stored frame size of the benchmark set")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--n-train", type=int, default=1024)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    parser.add_argument("--preset", default="synthetic", help="preset of the training step for the ratio")
    parser.add_argument("--device", default="", help="training-step device (default: the preset's)")
    parser.add_argument("--train-batch", type=int, default=None,
                        help="training-step batch (default: 64 on CUDA, 8 on CPU, as benchmarks/train_step.py)")
    parser.add_argument("--steps", type=int, default=0, help="timed training steps (0 = about four seconds)")
    parser.add_argument("--no-train-step", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    out: dict[str, Any] = {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                           "load_avg_1m": os.getloadavg()[0], "size": args.size, "stored": args.stored,
                           "batch": args.batch}
    with tempfile.TemporaryDirectory(prefix="dkp-loader-") as tmp:
        root = Path(tmp) / "synthetic"
        generate_dataset(root, size=args.stored, n_train=args.n_train, n_fit=16, n_test=16, progress=False)
        out["loader"] = time_loader(root, args.size, args.batch, args.batches, prefetch=2)
        out["loader_sync"] = time_loader(root, args.size, args.batch, args.batches, prefetch=0)
        if not args.no_train_step:
            train_batch = args.train_batch
            if train_batch is None:
                cuda = args.device.startswith("cuda") or (not args.device and torch.cuda.is_available())
                train_batch = 64 if cuda else 8
            out["train_step"] = time_train_step(root, args.preset, args.device, train_batch, args.steps)
    step = out.get("train_step")
    if step:
        out["ratio"] = out["loader"]["images_per_s"] / step["images_per_s"]
    if args.json:
        print(json.dumps(out, indent=2))
        return
    ld, sy = out["loader"], out["loader_sync"]
    print(f"loader, {args.stored} px stored -> {args.size} px, batch {args.batch}, RGB + depth, shared flips "
          f"({out['cpus']} CPUs, {out['torch_threads']} torch threads, load {out['load_avg_1m']:.2f})")
    print(f"  iterate (prefetch 2): {ld['images_per_s']:8.0f} img/s  ({ld['ms_per_batch']:.1f} ms/batch)")
    print(f"  batch() synchronous : {sy['images_per_s']:8.0f} img/s  ({sy['ms_per_batch']:.1f} ms/batch, "
          f"{1000 * sy['cpu_s_per_batch']:.1f} ms CPU/batch)")
    if args.no_train_step:
        return
    if not step:
        print("  ratio to a training step: needs the training loop (dkp_tui.train.loop), not installed")
        return
    print(f"training step ({step['preset']}, student + KD, batch {step['batch']}, {step['precision']}): "
          f"{step['images_per_s']:.1f} img/s")
    print(f"ratio loader / training step: {out['ratio']:.1f}x (target >= {TARGET_RATIO:.0f}x)")


if __name__ == "__main__":
    main()
