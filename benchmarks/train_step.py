"""dkp's training step against the reference-style baseline, in one run on one machine.

Every variant runs in its own fresh Python process (so that peak RSS is that variant's alone, imports included)
one after the other, on the same random inputs and the same maths: 128 px, K = 16, thickness 5e-5, VGG16
perceptual loss at 224 px (random weights), AdamW; batch 8 on CPU, 64 on CUDA. The ratios printed at the end are
dkp / baseline for images/s and peak memory (peak RSS on CPU, CUDA max allocated on GPU).

    python benchmarks/train_step.py                      # baseline vs dkp, teacher step, CPU batch 8
    python benchmarks/train_step.py --ablations          # + what each change buys (one variant per change)
    python benchmarks/train_step.py --role student       # with the frozen teacher and the KD term
    python benchmarks/train_step.py --device cuda --batch 64 --compile   # GPU (bf16, channels-last, fused AdamW)

Targets (issue 8): CPU >= 1.5x images/s and <= 0.5x peak memory of the baseline; GPU >= 500 images/s.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

# name -> (kind, description). "baseline*" run benchmarks/baseline_step.py, "dkp*" run dkp's own step.
VARIANTS: dict[str, tuple[str, str]] = {
    "baseline": ("baseline", "reference-style step: 4 VGG trunks, dense B x E x H x W edge maps"),
    "baseline-passive": ("baseline", "baseline with OMP_WAIT_POLICY=PASSIVE"),
    "baseline-fast-raster": ("baseline", "baseline with dkp's rasteriser (no B x E x H x W)"),
    "baseline-one-vgg": ("baseline", "baseline with one VGG trunk of 23 layers (no classifiers built)"),
    "dkp": ("dkp", "dkp's step as `dkp train` runs it"),
    "dkp-dense": ("dkp", "dkp with the dense reference rasteriser"),
    "dkp-batched-vgg": ("dkp", "dkp with the target in the VGG batch, inside the graph (the GPU setting)"),
    "dkp-no-inplace": ("dkp", "dkp with out-of-place LeakyReLU"),
    "dkp-nchw": ("dkp", "dkp without channels-last on the CPU"),
    "dkp-nchw-no-inplace": ("dkp", "dkp without channels-last and with out-of-place LeakyReLU"),
    "dkp-passive": ("dkp", "dkp with OMP_WAIT_POLICY=PASSIVE (what torchrun ranks get)"),
    "dkp-lowmem": ("dkp", "dkp with train.low_memory (VGG loss one image at a time, 128-px decoder blocks "
                          "recomputed, big blocks mmapped)"),
    "dkp-lowmem-heap": ("dkp", "train.low_memory without pinning glibc's mmap threshold"),
    "dkp-lowmem-micro2": ("dkp", "train.low_memory with the VGG loss two images at a time"),
    "dkp-compiled": ("dkp", "dkp with torch.compile on the step (CUDA)"),
}
DEFAULT = ("baseline", "dkp")
ABLATIONS = ("baseline", "baseline-passive", "baseline-fast-raster", "baseline-one-vgg", "dkp", "dkp-dense",
             "dkp-batched-vgg", "dkp-no-inplace", "dkp-nchw", "dkp-passive", "dkp-lowmem", "dkp-lowmem-heap",
             "dkp-lowmem-micro2")


def _passive(variant: str) -> bool:
    """libgomp reads OMP_WAIT_POLICY when torch loads; a single `dkp train` process leaves it unset."""
    return variant in ("baseline-passive", "dkp-passive")


# -- workers (one per process) --------------------------------------------------------------------------------


def _peak_rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _tweak(variant: str):
    """The change a dkp ablation makes to the model or loss before the first step (None: dkp as it is)."""
    import torch

    def batched_vgg(model: torch.nn.Module, rec_loss: torch.nn.Module) -> None:
        rec_loss.batched = True

    def no_inplace(model: torch.nn.Module, rec_loss: torch.nn.Module) -> None:
        for m in model.modules():
            if isinstance(m, (torch.nn.LeakyReLU, torch.nn.ReLU)):
                m.inplace = False

    return {"dkp-batched-vgg": batched_vgg, "dkp-no-inplace": no_inplace,
            "dkp-nchw-no-inplace": no_inplace}.get(variant)


def run_worker(args: argparse.Namespace) -> dict[str, Any]:
    variant = args.worker
    kind = VARIANTS[variant][0]
    if kind == "baseline":
        sys.path.insert(0, str(HERE))
        from baseline_step import run

        result = run(args.batch, args.size, args.keypoints, steps=args.steps, warmup=args.warmup, role=args.role,
                     device=args.device, threads=args.threads,
                     rasteriser="fast" if variant == "baseline-fast-raster" else "dense",
                     per_slice_trunks=variant != "baseline-one-vgg")
        result["variant"] = variant
        result["peak_memory_mb"] = (result["cuda_max_allocated_mb"] if args.device.startswith("cuda")
                                    else _peak_rss_mb())
        return result

    import tempfile

    import torch

    from dkp_tui.config import load_config
    from dkp_tui.experiments import bench

    if variant == "dkp-lowmem-heap":
        from dkp_tui.train import setup

        setup.pin_mmap_threshold = lambda nbytes=0: False  # build_model looks it up at call time
    if variant == "dkp-lowmem-micro2":
        from dkp_tui.model import perceptual

        perceptual.LOW_MEMORY_MICRO_BATCH = 2
    if variant == "dkp-dense":
        from dkp_tui.model import edges

        edges.edge_maps = edges.edge_maps_dense  # EdgeGraph.forward looks the name up at call time
    with tempfile.TemporaryDirectory() as tmp:
        vgg = bench.write_random_vgg16(Path(tmp) / "vgg.safetensors")
        overrides = [
            "model.image_size=" + str(args.size), f"model.n_keypoints={args.keypoints}", "model.thickness=5e-5",
            'loss.reconstruction="vgg16"', f'loss.perceptual_weights="{vgg}"', f"train.batch_size={args.batch}",
            f'train.device="{args.device}"', f"train.threads={args.threads}",
            f"train.compile={'true' if variant == 'dkp-compiled' or args.compile else 'false'}",
            f'train.precision="{args.precision}"', "kd.gamma=0.1",
            f"train.low_memory={'true' if variant.startswith('dkp-lowmem') else 'false'}",
            f'train.memory_format="{"contiguous" if variant.startswith("dkp-nchw") else "auto"}"',
        ]
        cfg = load_config("h36m", overrides)
        gen = torch.Generator().manual_seed(0)
        image = torch.rand(args.batch, 3, args.size, args.size, generator=gen) * 2 - 1
        depth = torch.rand(args.batch, 3, args.size, args.size, generator=gen) * 2 - 1
        rss_before = _peak_rss_mb()
        r = bench.measure_train_step(cfg, args.role, [(image, depth)], steps=args.steps, warmup=args.warmup,
                                     tweak=_tweak(variant))
    r.update({"variant": variant, "device": args.device, "size": args.size, "n_keypoints": args.keypoints,
              "threads": torch.get_num_threads(), "step_s": r["step_ms"] / 1000,
              "peak_rss_before_steps_mb": rss_before})
    if not args.device.startswith("cuda"):
        r["peak_memory_mb"] = _peak_rss_mb()  # the whole process, imports included, as for the baseline
    return r


# -- the driver -----------------------------------------------------------------------------------------------


def run_variant(variant: str, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", variant, "--batch", str(args.batch),
           "--size", str(args.size), "--keypoints", str(args.keypoints), "--steps", str(args.steps),
           "--warmup", str(args.warmup), "--role", args.role, "--device", args.device,
           "--threads", str(args.threads), "--precision", args.precision]
    if args.compile:
        cmd.append("--compile")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    env.pop("OMP_WAIT_POLICY", None)
    if _passive(variant):
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{variant} failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", default="", help=f"comma-separated, from: {', '.join(VARIANTS)}")
    parser.add_argument("--ablations", action="store_true", help="run every CPU variant (one change each)")
    parser.add_argument("--batch", type=int, default=0, help="default: 8 on CPU, 64 on CUDA")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--keypoints", type=int, default=16)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per variant")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--role", choices=("teacher", "student"), default="teacher")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--precision", default="auto", help="dkp's train.precision (auto: bf16 on CUDA)")
    parser.add_argument("--compile", action="store_true", help="torch.compile every dkp variant (CUDA only)")
    parser.add_argument("--json", action="store_true", help="print all results as JSON on stdout")
    parser.add_argument("--worker", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not args.batch:
        args.batch = 64 if args.device.startswith("cuda") else 8
    if args.worker:
        sys.stdout.write(json.dumps(run_worker(args)) + "\n")
        return

    names = [v for v in args.variants.split(",") if v] or list(ABLATIONS if args.ablations else DEFAULT)
    unknown = [v for v in names if v not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown variants {unknown}; choose from {', '.join(VARIANTS)}")
    results = []
    for name in names:
        print(f"running {name}: {VARIANTS[name][1]} ...", file=sys.stderr, flush=True)
        results.append(run_variant(name, args))
    base = next((r for r in results if r["variant"] == "baseline"), None)
    mem = "CUDA max allocated" if args.device.startswith("cuda") else "peak RSS"
    print(f"\n{args.role} step, batch {args.batch}, {args.size} px, K = {args.keypoints}, VGG16 at 224, "
          f"{args.device}, {results[0]['threads']} threads")
    print(f"{'variant':<22} {'s/step':>8} {'CPU s/step':>10} {'images/s':>9} {mem + ' MB':>22} {'x speed':>8} "
          f"{'x memory':>9}")
    for r in results:
        speed = f"{r['images_per_s'] / base['images_per_s']:.2f}" if base else "-"
        memory = f"{r['peak_memory_mb'] / base['peak_memory_mb']:.2f}" if base else "-"
        print(f"{r['variant']:<22} {r['step_s']:>8.2f} {r['cpu_s_per_step']:>10.2f} {r['images_per_s']:>9.2f} "
              f"{r['peak_memory_mb']:>22.0f} {speed:>8} {memory:>9}")
    if args.json:
        sys.stdout.write(json.dumps(results) + "\n")


if __name__ == "__main__":
    main()
