"""`dkp depth` throughput against the bare batched model forward on the same images, model, device and batch.

The bare forward is the floor: pixel values preprocessed beforehand and already on the device, then only
``model(pixel_values=batch)`` per batch, timed from a freshly loaded model as dkp's loop is (so the one-time cost
of the first batch is in both). `dkp depth` does everything else too: reading the memory-mapped frames,
preprocessing, resizing the output to the frame size, normalising, encoding and writing shards. The target is
dkp within 10 % of the bare forward (ratio >= 0.90), measured over the shard loop (model loading is a one-off cost,
reported separately). Runs alternate bare, dkp, bare, dkp, ...; the ratio is the median over those pairs.

No weights are downloaded: the model is built from its configuration with random weights (same architecture and
cost as the real checkpoint), unless --model names a directory or a cached hub id.

    python benchmarks/depth.py                               # tiny random DPT, CPU
    python benchmarks/depth.py --arch dpt-swinv2-tiny-256     # the fast MiDaS 3.1 architecture, random weights
    python benchmarks/depth.py --arch dpt-swinv2-large-384 --device cuda --images 512 --batch-size 32
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dkp_tui.depth.compute import compute_depth  # noqa: E402
from dkp_tui.depth.midas import DepthEstimator, load_model, pick_device, pick_dtype  # noqa: E402
from dkp_tui.depth.weights import fetch_model, resolve_model  # noqa: E402
from dkp_tui.formats.dataset_dir import Manifest, SplitInfo, open_split, write_manifest, write_split  # noqa: E402

# MiDaS 3.1 Swin-V2 architectures as transformers' conversion script defines them; "tiny-random" is the test model.
ARCHS: dict[str, dict[str, Any]] = {
    "tiny-random": {"embed_dim": 16, "depths": [1, 1, 1, 1], "num_heads": [1, 1, 2, 2], "window_size": 8,
                    "pretrained_window_sizes": [0, 0, 0, 0], "image_size": 256,
                    "neck_hidden_sizes": [16, 32, 64, 128], "fusion_hidden_size": 16},
    "dpt-swinv2-tiny-256": {"embed_dim": 96, "depths": [2, 2, 6, 2], "num_heads": [3, 6, 12, 24], "window_size": 16,
                            "pretrained_window_sizes": [0, 0, 0, 0], "image_size": 256,
                            "neck_hidden_sizes": [96, 192, 384, 768], "fusion_hidden_size": 256},
    "dpt-swinv2-large-384": {"embed_dim": 192, "depths": [2, 2, 18, 2], "num_heads": [6, 12, 24, 48],
                             "window_size": 24, "pretrained_window_sizes": [12, 12, 12, 6], "image_size": 384,
                             "neck_hidden_sizes": [192, 384, 768, 1536], "fusion_hidden_size": 256},
}


def build_random_model(arch: str, directory: Path) -> Path:
    from transformers import DPTConfig, DPTForDepthEstimation, DPTImageProcessor, Swinv2Config

    a = ARCHS[arch]
    torch.manual_seed(0)
    backbone = Swinv2Config(image_size=a["image_size"], embed_dim=a["embed_dim"], depths=a["depths"],
                            num_heads=a["num_heads"], window_size=a["window_size"],
                            pretrained_window_sizes=a["pretrained_window_sizes"],
                            out_features=["stage1", "stage2", "stage3", "stage4"])
    config = DPTConfig(backbone_config=backbone, neck_hidden_sizes=a["neck_hidden_sizes"],
                       fusion_hidden_size=a["fusion_hidden_size"])
    DPTForDepthEstimation(config).eval().save_pretrained(directory)
    DPTImageProcessor(size={"height": a["image_size"], "width": a["image_size"]}).save_pretrained(directory)
    return directory


def build_dataset(root: Path, n: int, frame: int) -> Path:
    """Smooth random colour fields (the content does not change the cost)."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:frame, 0:frame] / frame
    images = np.empty((n, frame, frame, 3), np.uint8)
    for i in range(n):
        a, b, c = rng.uniform(0, 6, 3)
        images[i] = (127 + 120 * np.sin(a * xx[..., None] + b * yy[..., None] + c + np.arange(3))).astype(np.uint8)
    write_split(root, "train", images)
    write_manifest(root, Manifest(kind="folder", image_size=frame, splits={"train": SplitInfo(n)}))
    return root


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def bare_forward(model_dir: Path, dataset: Path, batch_size: int, device: torch.device,
                 dtype: torch.dtype) -> float:
    """images/s of the model call alone, on pixel values preprocessed by the model's own processor beforehand."""
    from transformers import AutoImageProcessor

    from dkp_tui.depth.weights import ModelSource

    processor = AutoImageProcessor.from_pretrained(model_dir, local_files_only=True)
    model = load_model(ModelSource(str(model_dir), model_dir, None, None, model_dir.name), device, dtype)
    images = np.array(open_split(dataset, "train").images)
    pixels = processor(images=torch.from_numpy(images).permute(0, 3, 1, 2), return_tensors="pt")["pixel_values"]
    pixels = pixels.to(device=device, dtype=dtype)
    batches = list(torch.split(pixels, batch_size))
    with torch.inference_mode():  # no warm-up: like dkp's, the model is freshly loaded and the first batch counts
        sync(device)
        start = time.perf_counter()
        outputs = [model(pixel_values=batch).predicted_depth for batch in batches]
        sync(device)
        del outputs
        return len(pixels) / (time.perf_counter() - start)


def dkp_run(model_dir: Path, dataset: Path, batch_size: int, device: str) -> dict[str, Any]:
    """One `dkp depth` run; also times its model calls, so that the share of the loop spent outside the model is
    measured within the same run (immune to the load drift that separates two runs on a shared machine)."""
    in_model = [0.0]
    original = DepthEstimator.forward

    def timed(self: DepthEstimator, pixel_values: torch.Tensor) -> torch.Tensor:
        sync(self.device)
        start = time.perf_counter()
        out = original(self, pixel_values)
        sync(self.device)
        in_model[0] += time.perf_counter() - start
        return out

    DepthEstimator.forward = timed  # type: ignore[method-assign]
    try:
        start = time.perf_counter()
        summary = compute_depth(dataset, str(model_dir), batch_size=batch_size, device=device, force=True,
                                tag="bench", quiet=True)
        summary["end_to_end_s"] = time.perf_counter() - start
    finally:
        DepthEstimator.forward = original  # type: ignore[method-assign]
    summary["model_share"] = in_model[0] / summary["compute_seconds"]
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", choices=list(ARCHS), default="tiny-random")
    parser.add_argument("--model", default="", help="a model directory or cached hub id instead of --arch")
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--frame", type=int, default=128, help="stored frame size (128: H36M-like; 256: Taichi)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--repeats", type=int, default=3, help="alternating runs of each; the median is reported")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory(prefix="dkp-bench-depth-") as tmp:
        tmp_path = Path(tmp)
        if args.model:
            source = fetch_model(resolve_model(args.model))
            assert source.directory is not None
            model_dir, label = source.directory, args.model
        else:
            model_dir, label = build_random_model(args.arch, tmp_path / args.arch), f"{args.arch} (random weights)"
        dataset = build_dataset(tmp_path / "data", args.images, args.frame)
        device = pick_device(args.device)
        dtype = pick_dtype(device, "auto")
        bare, dkp, e2e, share = [], [], [], []
        for _ in range(args.repeats):
            bare.append(bare_forward(model_dir, dataset, args.batch_size, device, dtype))
            run = dkp_run(model_dir, dataset, args.batch_size, args.device)
            dkp.append(run["images_per_s"])
            e2e.append(run["computed"] / run["end_to_end_s"])
            share.append(run["model_share"])
        result = {
            "model": label, "device": str(device), "dtype": str(dtype).replace("torch.", ""),
            "images": args.images, "frame": args.frame, "batch_size": args.batch_size,
            "threads": torch.get_num_threads(), "repeats": args.repeats,
            "bare_images_per_s": round(statistics.median(bare), 2),
            "dkp_images_per_s": round(statistics.median(dkp), 2),
            "dkp_end_to_end_images_per_s": round(statistics.median(e2e), 2),
            # each dkp run follows its bare run, so a pair shares the machine's load: the median pair ratio is the
            # figure that load drift on a shared machine disturbs least
            "ratio": round(statistics.median(d / b for d, b in zip(dkp, bare, strict=True)), 3),
            "ratio_of_medians": round(statistics.median(dkp) / statistics.median(bare), 3),
            "pair_ratios": [round(d / b, 3) for d, b in zip(dkp, bare, strict=True)],
            "model_share_of_dkp_loop": round(statistics.median(share), 4),
            "all_bare": [round(x, 2) for x in bare], "all_dkp": [round(x, 2) for x in dkp],
            "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
                       f"torch {torch.__version__}",
        }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"model {result['model']} on {result['device']} ({result['dtype']}), {args.images} frames of "
          f"{args.frame} px, batch {args.batch_size}, median of {args.repeats}")
    print(f"  bare batched forward     {result['bare_images_per_s']:9.2f} images/s   {result['all_bare']}")
    print(f"  dkp depth (shard loop)   {result['dkp_images_per_s']:9.2f} images/s   {result['all_dkp']}")
    print(f"  dkp depth (incl. load)   {result['dkp_end_to_end_images_per_s']:9.2f} images/s")
    print(f"  model calls / dkp loop   {result['model_share_of_dkp_loop']:9.3f}   (same run: the time dkp spends "
          "outside the model is the rest)")
    verdict = "within" if result["ratio"] >= 0.9 else "NOT within"
    print(f"  ratio dkp / bare         {result['ratio']:9.3f}   ({verdict} the 10 % target; median of the pairs "
          f"{result['pair_ratios']}; ratio of medians {result['ratio_of_medians']})")


if __name__ == "__main__":
    main()
