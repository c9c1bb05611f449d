"""Structure loss: Gaussian blurs as depthwise convolutions (the textbook form) vs dkp's two matrix products.

    python benchmarks/structure_loss.py                      # batch 16, 3 x 64 x 64, scales 0.5/1/2 px, 1 and 2 threads
    python benchmarks/structure_loss.py --size 128 --json

Prints ms per forward+backward of the whole loss (median of --reps after warm-up), the ratio, and the largest
difference in loss and gradient between the two forms (float32). Why: at 64 px the convolution form was about a
third of a synthetic-cpu training step on one thread.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable

import torch
from torch import Tensor

from dkp_tui.model.structure import Blur, conv_blur, gaussian_blur, structure_loss

SIGMAS_64PX = (0.5, 1.0, 2.0)  # synthetic-cpu: structure_scale 0.5 x (1, 2, 4) px


def time_fn(fn: Callable[[], None], reps: int) -> float:
    for _ in range(3):
        fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--threads", default="1,2", help="comma-separated torch thread counts")
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    sigmas = tuple(s * args.size / 64 for s in SIGMAS_64PX)
    g = torch.Generator().manual_seed(0)
    target = torch.rand(args.batch, 3, args.size, args.size, generator=g) * 2 - 1
    recon = (torch.rand(args.batch, 3, args.size, args.size, generator=g) * 2 - 1).requires_grad_()

    def grad_of(blur: Blur) -> tuple[float, Tensor]:
        loss = structure_loss(recon, target, sigmas, blur)
        (g,) = torch.autograd.grad(loss, recon)
        return float(loss.detach()), g

    l_conv, g_conv = grad_of(conv_blur)
    l_mat, g_mat = grad_of(gaussian_blur)
    result = {"cpu": platform.processor() or platform.machine(), "torch": torch.__version__, "batch": args.batch,
              "size": args.size, "sigmas": sigmas, "loss_diff": abs(l_conv - l_mat),
              "grad_max_diff": float((g_conv - g_mat).abs().max()), "grad_max": float(g_conv.abs().max()),
              "timings": []}
    for threads in (int(t) for t in args.threads.split(",")):
        torch.set_num_threads(threads)
        row = {"threads": threads}
        for name, blur in (("conv", conv_blur), ("matrix", gaussian_blur)):
            row[f"{name}_ms"] = time_fn(lambda b=blur: structure_loss(recon, target, sigmas, b).backward(), args.reps)
        row["speedup"] = row["conv_ms"] / row["matrix_ms"]
        result["timings"].append(row)
    if args.json:
        print(json.dumps(result))
        return
    print(f"structure loss fwd+bwd, batch {args.batch}, 3 x {args.size}^2, sigmas {sigmas} (median of {args.reps})")
    for row in result["timings"]:
        print(f"  {row['threads']} thread(s): conv {row['conv_ms']:.1f} ms, matrix {row['matrix_ms']:.1f} ms, "
              f"{row['speedup']:.2f}x")
    print(f"  |loss diff| {result['loss_diff']:.2e}, max |grad diff| {result['grad_max_diff']:.2e} "
          f"(max |grad| {result['grad_max']:.2e})")


if __name__ == "__main__":
    main()
