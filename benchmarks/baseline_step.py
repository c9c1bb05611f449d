"""Baseline: a straightforward reimplementation of the reference AutoLink training step.

This is what dkp's step is measured against (``benchmarks/train_step.py``). It follows the reference code
(AutoLink, NeurIPS 2022, models/encoder.py, models/decoder.py, utils_/loss.py) in the ways that cost time and
memory, and computes the same maths as dkp's step:

* the perceptual loss builds a whole torchvision VGG16 once per slice (four trunks, four temporary classifiers),
  keeps ``features[0:4]``, ``[4:9]``, ``[9:16]``, ``[16:23]`` of each, and runs them one after the other;
* the edge map materialises one B x E x H x W map per edge and several same-sized temporaries (the reference's
  before-start / after-end / between masks), then takes the max over edges;
* plain NCHW fp32 on CPU (the reference's fp16 autocast + grad scaler on CUDA), no channels-last, no fused
  optimizer, no ``inference_mode``, default threads.

VGG weights are random (no download): speed and memory do not depend on the values.

    python benchmarks/baseline_step.py                       # batch 8, 128 px, K = 16, VGG16 at 224, CPU
    python benchmarks/baseline_step.py --role student --json # + frozen teacher detector and cosine KD
    python benchmarks/baseline_step.py --rasteriser fast     # ablation: dkp's rasteriser in the baseline
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from typing import Any

import torch
import torch.nn.functional as F
import torchvision
from torch import Tensor, nn

# -- detector (reference encoder.py) -------------------------------------------------------------------------


class RefResBlock(nn.Module):
    """conv -> bilinear x0.5 -> BN -> LReLU -> conv -> BN, plus a conv -> x0.5 -> BN shortcut."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1),
                                      nn.Upsample(scale_factor=0.5, mode="bilinear", align_corners=False),
                                      nn.BatchNorm2d(cout))
        self.main = nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1),
                                  nn.Upsample(scale_factor=0.5, mode="bilinear", align_corners=False),
                                  nn.BatchNorm2d(cout), nn.LeakyReLU(0.2, inplace=True),
                                  nn.Conv2d(cout, cout, 3, padding=1), nn.BatchNorm2d(cout))
        self.act = nn.LeakyReLU(0.2, inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.main(x) + self.shortcut(x))


class RefUpBlock(nn.Module):
    """bilinear x2 -> conv -> BN -> LReLU (the reference's "TransposedBlock")."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                                 nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout),
                                 nn.LeakyReLU(0.2, inplace=True))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


def grid2d(size: int, device: torch.device | str | None = None) -> Tensor:
    """(size, size, 2) pixel centres (y, x) in [-1, 1], 'ij' order."""
    line = torch.linspace(-1.0, 1.0, size, device=device)
    yy, xx = torch.meshgrid(line, line, indexing="ij")
    return torch.stack([yy, xx], dim=-1)


class RefDetector(nn.Module):
    """ResBlocks 3-64-128-256-512, two up blocks, a 3x3 conv to K logits at 32 px, soft-argmax."""

    def __init__(self, n_keypoints: int) -> None:
        super().__init__()
        self.k = n_keypoints
        self.conv = nn.Sequential(RefResBlock(3, 64), RefResBlock(64, 128), RefResBlock(128, 256),
                                  RefResBlock(256, 512), RefUpBlock(512, 256), RefUpBlock(256, 128),
                                  nn.Conv2d(128, n_keypoints, 3, padding=1))
        self.register_buffer("coord", grid2d(32).reshape(1, 1, 32 * 32, 2), persistent=False)
        _kaiming(self)

    def forward(self, img: Tensor) -> tuple[Tensor, Tensor]:
        logits = self.conv(img)  # (B, K, 32, 32)
        prob = F.softmax(logits.reshape(img.shape[0], self.k, -1, 1), dim=2)  # (B, K, 1024, 1)
        keypoints = (self.coord * prob).sum(dim=2)  # (B, K, 2)
        return keypoints, logits


# -- decoder (reference decoder.py) --------------------------------------------------------------------------


def draw_lines_dense(pairs: Tensor, size: int, thickness: float) -> Tensor:
    """(B, E, 2, 2) segment end points -> (B, E, size, size) per-edge maps, all materialised (the reference way)."""
    bsz, n_edges = pairs.shape[:2]
    start, end = pairs[:, :, 0], pairs[:, :, 1]  # (B, E, 2)
    delta = end - start  # (B, E, 2)
    grid = grid2d(size, pairs.device).reshape(1, 1, -1, 2)  # (1, 1, P, 2)
    to_start = grid - start.unsqueeze(-2)  # (B, E, P, 2)
    t = (to_start @ delta.unsqueeze(-1)).squeeze(-1) / (delta.square().sum(-1, keepdim=True) + 1e-8)  # (B, E, P)
    to_end = grid - end.unsqueeze(-2)  # (B, E, P, 2)
    before = (t <= 0).float() * to_start.square().sum(-1)
    after = (t >= 1).float() * to_end.square().sum(-1)
    on_segment = start.unsqueeze(-2) + t.unsqueeze(-1) * delta.unsqueeze(-2)  # (B, E, P, 2)
    between = (t > 0).float() * (t < 1).float() * (grid - on_segment).square().sum(-1)
    d2 = (before + after + between).reshape(bsz, n_edges, size, size)
    return torch.exp(-d2 / thickness)


class RefDownBlock(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout),
                                 nn.LeakyReLU(0.2, inplace=True), nn.Conv2d(cout, cout, 3, padding=1),
                                 nn.BatchNorm2d(cout),
                                 nn.Upsample(scale_factor=0.5, mode="bilinear", align_corners=False),
                                 nn.LeakyReLU(0.2, inplace=True))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class RefDecUpBlock(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                                 nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout),
                                 nn.LeakyReLU(0.2, inplace=True), nn.Conv2d(cout, cout, 3, padding=1),
                                 nn.BatchNorm2d(cout), nn.LeakyReLU(0.2, inplace=True))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class RefDecoder(nn.Module):
    """Edge map from the keypoints, then a U-Net on concat(alpha * masked image, edge map)."""

    def __init__(self, n_keypoints: int, thickness: float, sklr: float, rasteriser: str = "dense") -> None:
        super().__init__()
        self.k, self.thickness, self.sklr, self.rasteriser = n_keypoints, thickness, sklr, rasteriser
        idx = torch.triu_indices(n_keypoints, n_keypoints, offset=1)
        self.register_buffer("pair_i", idx[0], persistent=False)
        self.register_buffer("pair_j", idx[1], persistent=False)
        self.alpha = nn.Parameter(torch.tensor(1.0))
        self.edge_logits = nn.Parameter((torch.randn(n_keypoints, n_keypoints) / 10 - 4) / sklr)
        self.down0 = nn.Sequential(nn.Conv2d(4, 64, 3, padding=1), nn.LeakyReLU(0.2, inplace=True))
        self.down1, self.down2 = RefDownBlock(64, 128), RefDownBlock(128, 256)
        self.down3, self.down4 = RefDownBlock(256, 512), RefDownBlock(512, 512)
        self.up1, self.up2 = RefDecUpBlock(512, 512), RefDecUpBlock(1024, 256)
        self.up3, self.up4 = RefDecUpBlock(512, 128), RefDecUpBlock(256, 64)
        self.out = nn.Conv2d(128, 3, 3, padding=1)
        _kaiming(self)

    def edge_map(self, keypoints: Tensor, size: int) -> Tensor:
        weights = F.softplus(self.edge_logits * self.sklr)[self.pair_i, self.pair_j]  # (E,)
        if self.rasteriser == "fast":
            from dkp_tui.model.edges import edge_maps

            return edge_maps(keypoints, weights, self.thickness, size)
        pairs = torch.stack([keypoints[:, self.pair_i], keypoints[:, self.pair_j]], dim=2)  # (B, E, 2, 2)
        per_edge = draw_lines_dense(pairs, size, self.thickness) * weights.view(1, -1, 1, 1)  # (B, E, S, S)
        return per_edge.max(dim=1, keepdim=True).values  # (B, 1, S, S)

    def forward(self, keypoints: Tensor, masked: Tensor) -> Tensor:
        edges = self.edge_map(keypoints, masked.shape[-1])
        d128 = self.down0(torch.cat([masked * self.alpha, edges], dim=1))
        d64 = self.down1(d128)
        d32 = self.down2(d64)
        d16 = self.down3(d32)
        d8 = self.down4(d16)
        u16 = torch.cat([self.up1(d8), d16], dim=1)
        u32 = torch.cat([self.up2(u16), d32], dim=1)
        u64 = torch.cat([self.up3(u32), d64], dim=1)
        u128 = torch.cat([self.up4(u64), d128], dim=1)
        return self.out(u128)


def _kaiming(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, a=0.2)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


# -- perceptual loss (reference utils_/loss.py) --------------------------------------------------------------


class RefVGGLoss(nn.Module):
    """L1 over VGG16 relu1_2 / 2_2 / 3_3 / 4_3 at 224 px; one whole VGG16 built per slice, as the reference does."""

    SLICES = ((0, 4), (4, 9), (9, 16), (16, 23))

    def __init__(self, per_slice_trunks: bool = True) -> None:
        super().__init__()
        if per_slice_trunks:
            blocks = [torchvision.models.vgg16(weights=None).features[a:b].eval() for a, b in self.SLICES]
        else:  # ablation: one trunk of the 23 feature layers only, no classifier ever built
            features = torchvision.models.vgg.make_layers(torchvision.models.vgg.cfgs["D"])[:23]
            blocks = [features[a:b].eval() for a, b in self.SLICES]
        for block in blocks:
            for p in block.parameters():
                p.requires_grad = False
        self.blocks = nn.ModuleList(blocks)
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        x = F.interpolate((x * 0.5 + 0.5 - self.mean) / self.std, size=(224, 224), mode="bilinear",
                          align_corners=False)
        y = F.interpolate((y * 0.5 + 0.5 - self.mean) / self.std, size=(224, 224), mode="bilinear",
                          align_corners=False)
        loss = x.new_zeros(())
        for block in self.blocks:
            x, y = block(x), block(y)
            loss = loss + F.l1_loss(x, y)
        return loss


# -- the step ------------------------------------------------------------------------------------------------


class Baseline(nn.Module):
    def __init__(self, n_keypoints: int = 16, thickness: float = 5e-5, sklr: float = 512.0,
                 rasteriser: str = "dense", per_slice_trunks: bool = True) -> None:
        super().__init__()
        self.detector = RefDetector(n_keypoints)
        self.decoder = RefDecoder(n_keypoints, thickness, sklr, rasteriser)
        self.vgg_loss = RefVGGLoss(per_slice_trunks)


def cell_mask_ref(img: Tensor, cells: int = 16, missing: float = 0.8) -> Tensor:
    """Keep a cell when U(0, 1) > missing, per sample, nearest-upsampled to the image (one mask for all channels)."""
    keep = torch.zeros(img.shape[0], 1, cells, cells, device=img.device).uniform_() > missing
    return F.interpolate(keep.to(img), size=img.shape[-1], mode="nearest")


def baseline_step(model: Baseline, optimizer: torch.optim.Optimizer, img: Tensor,
                  teacher: RefDetector | None = None, depth: Tensor | None = None, gamma: float = 0.1,
                  scaler: torch.amp.GradScaler | None = None, amp: torch.dtype | None = None) -> float:
    """One reference step: detector, edge map, masked decoder, VGG loss (+ KD against a no-grad teacher)."""
    model.vgg_loss.eval()
    with torch.autocast(img.device.type, dtype=amp or torch.float16, enabled=amp is not None):
        keypoints, logits = model.detector(img)
        recon = model.decoder(keypoints, img * cell_mask_ref(img))
        loss = model.vgg_loss(recon, img)
        if teacher is not None and depth is not None:
            with torch.no_grad():
                _, target = teacher(depth)
            cos = F.cosine_similarity(logits.float().flatten(1), target.float().flatten(1), dim=1, eps=1e-8)
            loss = loss + gamma * (1 - cos.mean())
    optimizer.zero_grad()
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    else:
        loss.backward()
        optimizer.step()
    return float(loss.detach())


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run(batch: int = 8, size: int = 128, n_keypoints: int = 16, thickness: float = 5e-5, steps: int = 2,
        warmup: int = 1, role: str = "teacher", device: str = "cpu", threads: int = 0, rasteriser: str = "dense",
        per_slice_trunks: bool = True, amp: str = "auto") -> dict[str, Any]:
    """Build the baseline, time ``steps`` steps after ``warmup``; images/s and peak memory."""
    if threads > 0:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    dev = torch.device(device)
    t_build = time.perf_counter()
    model = Baseline(n_keypoints, thickness, rasteriser=rasteriser, per_slice_trunks=per_slice_trunks).to(dev)
    teacher = None
    if role == "student":
        teacher = RefDetector(n_keypoints).to(dev).eval()
        for p in teacher.parameters():
            p.requires_grad = False
    build_s = time.perf_counter() - t_build
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=1e-3)
    amp_dtype = None
    if dev.type == "cuda" and amp != "fp32":
        amp_dtype = torch.float16  # the reference: fp16 autocast + grad scaler
    scaler = torch.amp.GradScaler("cuda") if amp_dtype is not None else None
    img = torch.rand(batch, 3, size, size, device=dev) * 2 - 1
    depth = torch.rand(batch, 3, size, size, device=dev) * 2 - 1 if teacher is not None else None
    rss_before = peak_rss_mb()
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    times, cpu = [], []
    for i in range(warmup + steps):
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        t0, c0 = time.perf_counter(), time.process_time()
        baseline_step(model, optimizer, img, teacher, depth, scaler=scaler, amp=amp_dtype)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        if i >= warmup:
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
    step_s = statistics.median(times)
    result: dict[str, Any] = {
        "variant": f"baseline-{role}" + ("" if rasteriser == "dense" else f"-{rasteriser}-raster")
        + ("" if per_slice_trunks else "-one-vgg"),
        "device": device, "batch": batch, "size": size, "n_keypoints": n_keypoints, "role": role,
        "threads": torch.get_num_threads(), "steps": steps, "step_s": step_s, "step_times": times,
        "images_per_s": batch / step_s, "cpu_s_per_step": statistics.median(cpu), "build_s": build_s, "peak_rss_before_steps_mb": rss_before,
        "peak_rss_mb": peak_rss_mb(),
    }
    if dev.type == "cuda":
        result["cuda_max_allocated_mb"] = torch.cuda.max_memory_allocated(dev) / 2**20
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--keypoints", type=int, default=16)
    parser.add_argument("--steps", type=int, default=2, help="timed steps (the median is reported)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--role", choices=("teacher", "student"), default="teacher",
                        help="student adds a frozen teacher detector forward and the cosine KD loss")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch threads; 0 = torch's default")
    parser.add_argument("--rasteriser", choices=("dense", "fast"), default="dense")
    parser.add_argument("--one-vgg", action="store_true", help="ablation: slice one VGG16 instead of four")
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    args = parser.parse_args(argv)
    result = run(args.batch, args.size, args.keypoints, steps=args.steps, warmup=args.warmup, role=args.role,
                 device=args.device, threads=args.threads, rasteriser=args.rasteriser,
                 per_slice_trunks=not args.one_vgg)
    if args.json:
        sys.stdout.write(json.dumps(result) + "\n")
    else:
        print(f"{result['variant']}: {result['step_s']:.2f} s/step, {result['images_per_s']:.2f} images/s, "
              f"peak RSS {result['peak_rss_mb']:.0f} MB (batch {args.batch}, {args.size} px, K = {args.keypoints}, "
              f"{result['threads']} threads)")


if __name__ == "__main__":
    main()
