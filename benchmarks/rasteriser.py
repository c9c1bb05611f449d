"""Edge-map rasteriser: dense per-edge maps (the reference) vs dkp's chunked running max, forward + backward.

    python benchmarks/rasteriser.py                    # K = 10/16/32, 128 px, batch 8, on the CPU
    python benchmarks/rasteriser.py --device cuda --batch 64 --json

Prints ms per forward+backward (best of --reps after one warm-up), the ratio, the largest value/gradient
difference between the two, and the peak memory of each (CUDA: max allocated; CPU: not measured per call).
Target (issue 8): fast >= 5x dense at K = 16, gradients equal to 1e-5.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable

import torch

from dkp_tui.model.edges import edge_maps, edge_maps_dense

Raster = Callable[[torch.Tensor, torch.Tensor, float, int], torch.Tensor]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_raster(
    raster: Raster, k: int, batch: int, size: int, thickness: float, reps: int, device: torch.device
) -> dict:
    g = torch.Generator().manual_seed(k)
    kp = (torch.rand(batch, k, 2, generator=g) * 1.6 - 0.8).to(device).requires_grad_()
    w = (torch.rand(k * (k - 1) // 2, generator=g) * 0.5 + 0.01).to(device).requires_grad_()
    upstream = torch.randn(batch, 1, size, size, generator=g).to(device)
    times = []
    peak = 0
    for rep in range(reps + 1):
        kp.grad = None
        w.grad = None
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        _sync(device)
        start = time.perf_counter()
        out = raster(kp, w, thickness, size)
        (out * upstream).sum().backward()
        _sync(device)
        if rep:
            times.append(time.perf_counter() - start)
        if device.type == "cuda":
            peak = max(peak, torch.cuda.max_memory_allocated(device))
    return {
        "ms": 1e3 * min(times),
        "out": out.detach(),
        "grad_kp": kp.grad.clone(),
        "grad_w": w.grad.clone(),
        "peak": peak,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ks", type=int, nargs="+", default=[10, 16, 32])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--thickness", type=float, default=5e-5)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads; 0 = torch's default")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    rows = []
    for k in args.ks:
        dense = time_raster(edge_maps_dense, k, args.batch, args.size, args.thickness, args.reps, device)
        fast = time_raster(edge_maps, k, args.batch, args.size, args.thickness, args.reps, device)
        rows.append(
            {
                "k": k,
                "edges": k * (k - 1) // 2,
                "dense_ms": round(dense["ms"], 2),
                "fast_ms": round(fast["ms"], 2),
                "ratio": round(dense["ms"] / fast["ms"], 2),
                "max_abs_diff_map": (fast["out"] - dense["out"]).abs().max().item(),
                "max_rel_diff_grad_kp": (
                    (fast["grad_kp"] - dense["grad_kp"]).abs().max()
                    / dense["grad_kp"].abs().max().clamp_min(1e-12)
                ).item(),
                "max_rel_diff_grad_w": (
                    (fast["grad_w"] - dense["grad_w"]).abs().max()
                    / dense["grad_w"].abs().max().clamp_min(1e-12)
                ).item(),
                "dense_peak_mb": round(dense["peak"] / 2**20, 1) if device.type == "cuda" else None,
                "fast_peak_mb": round(fast["peak"] / 2**20, 1) if device.type == "cuda" else None,
            }
        )
    machine = {
        "device": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else platform.processor() or "cpu",
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "batch": args.batch,
        "size": args.size,
        "thickness": args.thickness,
    }
    if args.json:
        print(json.dumps({"machine": machine, "rows": rows}, indent=2))
        return
    print(f"edge-map rasteriser, forward+backward, best of {args.reps}: {machine}")
    print(
        f"{'K':>3} {'edges':>5} {'dense ms':>10} {'fast ms':>9} {'ratio':>7} {'map diff':>9} {'grad rel diff':>13}"
    )
    for r in rows:
        grad = max(r["max_rel_diff_grad_kp"], r["max_rel_diff_grad_w"])
        print(
            f"{r['k']:>3} {r['edges']:>5} {r['dense_ms']:>10.1f} {r['fast_ms']:>9.1f} {r['ratio']:>6.1f}x "
            f"{r['max_abs_diff_map']:>9.1e} {grad:>13.1e}"
        )


if __name__ == "__main__":
    main()
