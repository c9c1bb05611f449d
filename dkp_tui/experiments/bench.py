"""`dkp bench`: what this machine does per second with a given preset, measured here and now.

Every figure comes from this process on this machine, after warm-up, on a small synthetic data set built in a
temporary directory (so it runs anywhere, offline): training images/s for the teacher and the student step (the
loop's own ``train_step``, optimizer included, on batches already in memory), peak memory (CUDA max allocated,
or the process's peak RSS on CPU, reset before each role), the edge-map rasteriser (fast vs dense, forward +
backward) for K = 10/16/32, data-loader images/s and depth-cache read images/s. VGG16 weights are random: speed
does not depend on their values, and no download is needed.
"""

from __future__ import annotations

import math
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dkp_tui.config import VGG_LOSSES, Config, for_role, load_config, override
from dkp_tui.errors import DkpError
from dkp_tui.formats.dataset_dir import MANIFEST

RASTER_KS = (10, 16, 32)
RASTER_SIZE = 128
RASTER_THICKNESS = 5e-5
_TARGET_ROLE_SECONDS = 4.0  # time budget per timed phase when --steps is automatic

Tweak = Callable[[torch.nn.Module, torch.nn.Module], None]
Progress = Callable[[str], None]


# -- memory ---------------------------------------------------------------------------------------------------


def _read_vm_hwm_mb() -> float | None:
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def reset_peak_memory(device: torch.device) -> bool:
    """Start a new peak: CUDA's allocator statistics, or Linux's VmHWM via /proc/self/clear_refs.

    Returns False where the CPU peak cannot be reset (the figure is then the process's lifetime peak).
    """
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        return True
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def peak_memory_mb(device: torch.device) -> float:
    """CUDA max allocated, or the peak resident set size of this process, in MiB."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    hwm = _read_vm_hwm_mb()
    if hwm is not None:
        return hwm
    import resource  # not on Windows; there psutil's current RSS is the best available

    try:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    except Exception:  # noqa: BLE001
        import psutil

        return psutil.Process().memory_info().rss / 2**20


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# -- configuration --------------------------------------------------------------------------------------------


def write_random_vgg16(path: Path) -> Path:
    """A VGG16 trunk state dict with random weights as safetensors: the perceptual loss's speed without a download."""
    from safetensors.torch import save_file

    from dkp_tui.model.perceptual import vgg16_trunk

    torch.manual_seed(0)
    state = {k: v.contiguous() for k, v in vgg16_trunk().state_dict().items()}
    save_file(state, str(path))
    return path


def bench_config(preset: str, overrides: list[str], device: str, batch: int | None, dataset: Path,
                 vgg_weights: Path | None) -> Config:
    """The preset's model and step, pointed at the temporary data set (and random VGG weights where needed)."""
    extra = [override("data.dataset", dataset), 'data.depth_tag=""', 'data.split="train"']
    if device:
        extra.append(f'train.device="{device}"')
    if batch is not None:
        extra.append(f"train.batch_size={batch}")
    cfg = load_config(preset or None, list(overrides) + extra)
    if cfg.loss.reconstruction in VGG_LOSSES and vgg_weights is not None:
        cfg.loss.perceptual_weights = str(vgg_weights)
    return cfg


# -- the training step ----------------------------------------------------------------------------------------


def _auto_steps(first_step_s: float, requested: int) -> int:
    if requested > 0:
        return requested
    return int(min(50, max(3, math.ceil(_TARGET_ROLE_SECONDS / max(first_step_s, 1e-4)))))


def measure_train_step(cfg: Config, role: str, batches: list[tuple[torch.Tensor, torch.Tensor | None]],
                       steps: int = 0, warmup: int = 2, tweak: Tweak | None = None) -> dict[str, Any]:
    """Images/s and peak memory of the loop's step (forward, loss, backward, optimizer) for one role.

    ``batches`` are (image, depth) pairs already in memory, cycled; the student distils from a random frozen
    detector (its speed does not depend on the weights). ``tweak(model, rec_loss)`` lets benchmarks try a change
    before anything runs. ``steps = 0`` picks enough steps for about four seconds.
    """
    from dkp_tui.devices import pick_device
    from dkp_tui.model.autolink import kd_features
    from dkp_tui.model.backbone import new_detector
    from dkp_tui.model.decoder import cell_mask
    from dkp_tui.train.kd import FrozenTeacher
    from dkp_tui.train.loop import train_step
    from dkp_tui.train.setup import build_model, build_optimizer, pick_precision

    cfg = for_role(cfg, role)
    t = cfg.train
    device = pick_device(t.device)
    amp_dtype = pick_precision(t.precision, device)
    if t.threads > 0:
        torch.set_num_threads(t.threads)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    torch.manual_seed(t.seed)
    can_reset = reset_peak_memory(device)

    model, rec_loss, nhwc = build_model(cfg, device)
    teacher = None
    if role == "student":
        teacher = FrozenTeacher(new_detector(for_role(cfg, "teacher").model).to(device))  # the teacher's backbone
    if tweak is not None:
        tweak(model, rec_loss)
    kd_feats = kd_features(cfg.kd.layer) if teacher is not None else ()
    optimizer = build_optimizer(cfg, model, device)
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)
    gen = torch.Generator(device=device).manual_seed(t.seed)
    step_fn = torch.compile(train_step) if t.compile and device.type == "cuda" else train_step
    device_batches = []
    for image, depth in batches:
        x = (image if role == "student" else depth).to(device)
        if nhwc:
            x = x.contiguous(memory_format=torch.channels_last)
        d = depth.to(device) if teacher is not None and depth is not None else None
        device_batches.append((x, d))
    if teacher is not None and device_batches[0][1] is None:
        raise DkpError("the student step needs depth maps; the benchmark data set has none")

    def one(i: int) -> None:
        x, d = device_batches[i % len(device_batches)]
        mask = cell_mask(x.shape[0], cfg.model.mask_cells, cfg.model.mask_keep, cfg.model.image_size,
                         generator=gen, device=device)
        losses = step_fn(model, rec_loss, teacher, cfg, x, d, mask, kd_feats, device, amp_dtype)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(losses["loss"]).backward()
        scaler.step(optimizer)
        scaler.update()

    model.train()
    warm_times = []
    for i in range(max(1, warmup)):
        _sync(device)
        t0 = time.perf_counter()
        one(i)
        _sync(device)
        warm_times.append(time.perf_counter() - t0)
    n = _auto_steps(warm_times[-1], steps)
    _sync(device)
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(n):
        one(warmup + i)
    _sync(device)
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    batch = device_batches[0][0].shape[0]
    return {
        "role": role, "batch": batch, "steps": n, "warmup_steps": max(1, warmup),
        "first_step_s": warm_times[0], "step_ms": 1000 * elapsed / n, "steps_per_s": n / elapsed,
        "images_per_s": n * batch / elapsed, "cpu_s_per_step": cpu / n, "peak_memory_mb": peak_memory_mb(device),
        "memory_kind": "cuda_max_allocated" if device.type == "cuda" else
        ("peak_rss" if can_reset else "lifetime_peak_rss"),
        "precision": str(amp_dtype).replace("torch.", "") if amp_dtype else "fp32",
        "compiled": bool(t.compile and device.type == "cuda"),
    }


# -- the rasteriser -------------------------------------------------------------------------------------------


def _time_call(fn: Callable[[], object], device: torch.device, min_repeats: int = 2,
               budget_s: float = 1.0) -> float:
    """Median seconds of ``fn`` after one warm-up call; repeats until ``budget_s`` or 20 calls."""
    fn()
    _sync(device)
    times: list[float] = []
    while len(times) < min_repeats or (sum(times) < budget_s and len(times) < 20):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def measure_rasteriser(device: torch.device, batch: int, ks: tuple[int, ...] = RASTER_KS,
                       size: int = RASTER_SIZE, thickness: float = RASTER_THICKNESS,
                       dense: bool = True) -> list[dict[str, Any]]:
    """Forward + backward ms of the fast edge-map rasteriser and the dense per-edge reference, per K."""
    from dkp_tui.model.edges import edge_maps, edge_maps_dense

    rows = []
    gen = torch.Generator().manual_seed(0)
    for k in ks:
        n_edges = k * (k - 1) // 2
        kp = (torch.rand(batch, k, 2, generator=gen) * 1.6 - 0.8).to(device).requires_grad_(True)
        w = (torch.rand(n_edges, generator=gen) + 0.1).to(device).requires_grad_(True)

        def run(fn: Callable[..., torch.Tensor], kp: torch.Tensor = kp, w: torch.Tensor = w) -> None:
            out = fn(kp, w, thickness, size)
            out.sum().backward()
            kp.grad = w.grad = None

        row: dict[str, Any] = {"k": k, "edges": n_edges, "batch": batch, "size": size,
                               "fast_ms": 1000 * _time_call(lambda run=run: run(edge_maps), device)}
        if dense:
            row["dense_ms"] = 1000 * _time_call(lambda run=run: run(edge_maps_dense), device, min_repeats=1,
                                                budget_s=0.5)
            row["speedup"] = row["dense_ms"] / row["fast_ms"]
        rows.append(row)
    return rows


# -- data -----------------------------------------------------------------------------------------------------


def make_loader(cfg: Config, role: str, rgb: bool = True, depth: bool = True):  # -> BatchLoader
    from dkp_tui.data.loader import BatchLoader

    t = cfg.train
    return BatchLoader(cfg.data.dataset, cfg.data.split, cfg.model.image_size, t.batch_size, t.seed,
                       hflip=t.hflip, rgb=rgb, depth=depth, depth_tag=cfg.data.depth_tag, rank=0, world_size=1)


def measure_loader(cfg: Config, n_batches: int = 0) -> dict[str, Any]:
    """Images/s of the training loader (RGB + depth, flips, resize to the model size) on the bench data set.

    ``n_batches = 0``: as many as fit in about two seconds (at most 50).
    """
    loader = make_loader(cfg, "student")
    next(iter(loader.iterate(0, 1)))  # open the memory maps, warm the page cache
    budget = n_batches or 50
    t0 = time.perf_counter()
    count = images = 0
    for _, batch in loader.iterate(1, 1 + budget):
        images += batch.image.shape[0]
        count += 1
        if not n_batches and time.perf_counter() - t0 > 2.0:
            break
    elapsed = time.perf_counter() - t0
    return {"batches": count, "batch": cfg.train.batch_size, "images_per_s": images / elapsed,
            "ms_per_batch": 1000 * elapsed / max(count, 1)}


def measure_depth_cache(dataset: Path, split: str = "train", batch: int = 64, tag: str = "",
                        budget_s: float = 1.0) -> dict[str, Any]:
    """Images/s reading the uint16 depth cache in shuffled batches and decoding to [-1, 1] float32 tensors."""
    from dkp_tui.formats.depth_cache import open_depth

    depth = open_depth(dataset, split, tag)
    order = np.random.default_rng(0).permutation(len(depth))
    _ = depth[order[:batch]]  # warm-up: open the maps, fault the pages in
    t0 = time.perf_counter()
    images = 0
    rounds = 0
    while True:
        for start in range(0, len(order), batch):
            raw = depth[np.sort(order[start:start + batch])]
            tensor = torch.from_numpy(raw.astype(np.float32)).mul_(2.0 / 65535.0).sub_(1.0)
            images += tensor.shape[0]
        rounds += 1
        if time.perf_counter() - t0 > budget_s or rounds >= 200:
            break
    elapsed = time.perf_counter() - t0
    height, width = depth.shape[1:3]
    return {"images_per_s": images / elapsed, "batch": batch, "map_size": [int(height), int(width)],
            "bytes_per_map": int(height * width * 2), "mb_per_s": images * height * width * 2 / elapsed / 1e6}


@contextmanager
def bench_dataset(size: int, n_train: int = 128, keep: str | None = None) -> Iterator[Path]:
    """A small cluttered synthetic data set with exact depth, in a temporary directory (or ``keep``)."""
    from dkp_tui.data.synthetic import generate_dataset

    if keep:
        root = Path(keep)
        if not (root / MANIFEST).is_file():
            generate_dataset(root, size=size, n_train=n_train, n_fit=16, n_test=16, background="cluttered",
                             seed=0, progress=False)
        yield root
        return
    with tempfile.TemporaryDirectory(prefix="dkp-bench-") as tmp:
        root = Path(tmp) / "synthetic"
        generate_dataset(root, size=size, n_train=n_train, n_fit=16, n_test=16, background="cluttered", seed=0,
                         progress=False)
        yield root


# -- everything -----------------------------------------------------------------------------------------------


def machine_info(device: torch.device) -> dict[str, Any]:
    info: dict[str, Any] = {
        "platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
        "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "processor": platform.processor(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", ""),
    }
    if hasattr(os, "getloadavg"):
        info["load_average_1m"] = os.getloadavg()[0]  # other work on the machine slows every figure
    try:
        info["cpu_affinity"] = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        pass
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["gpu_memory_gb"] = torch.cuda.get_device_properties(device).total_memory / 2**30
    return info


def run_bench(preset: str, device: str = "", steps: int = 0, batch: int | None = None,
              overrides: list[str] | None = None, roles: tuple[str, ...] = ("teacher", "student"),
              dense: bool = True, dataset: str | None = None, progress: Progress | None = None,
              quick: bool = False) -> dict[str, Any]:
    """Every `dkp bench` figure for ``preset`` on this machine, as one JSON-ready dict.

    ``quick`` is a smoke run (one warm-up and at most ``steps`` or 2 timed steps, K = 10 and 16 only, short
    loader and cache timings): every field is present, the figures are rough.
    """
    say = progress or (lambda _msg: None)
    started = time.perf_counter()
    probe = load_config(preset or None, list(overrides or []) + ([f'train.device="{device}"'] if device else []))
    from dkp_tui.devices import pick_device

    dev = pick_device(probe.train.device)
    result: dict[str, Any] = {"preset": preset, "device": str(dev)}
    say("building the synthetic data set")
    with bench_dataset(probe.model.image_size, n_train=32 if quick else 128, keep=dataset) as root, \
            tempfile.TemporaryDirectory(prefix="dkp-bench-vgg-") as tmp:
        vgg = write_random_vgg16(Path(tmp) / "vgg16-random.safetensors") \
            if probe.loss.reconstruction in VGG_LOSSES else None
        cfg = bench_config(preset, list(overrides or []), device, batch, root, vgg)
        result["config"] = {
            "image_size": cfg.model.image_size, "n_keypoints": cfg.model.n_keypoints, "width": cfg.model.width,
            "batch_size": cfg.train.batch_size, "reconstruction": cfg.loss.reconstruction,
            "perceptual_size": cfg.loss.perceptual_size, "precision": cfg.train.precision,
            "compile": cfg.train.compile, "threads": cfg.train.threads,
            "vgg_weights": "random" if vgg is not None else None,
        }
        result["machine"] = machine_info(dev)

        say("loading batches")
        loader = make_loader(cfg, "student")
        batches = [(b.image, b.depth) for _, b in loader.iterate(0, min(4, len(loader)))]
        result["train"] = {}
        for role in roles:
            say(f"timing the {role} step")
            result["train"][role] = measure_train_step(cfg, role, batches, steps=(steps or 2) if quick else steps,
                                                       warmup=1 if quick else 2)
        say("timing the rasteriser")
        raster_batch = 8 if dev.type == "cpu" else cfg.train.batch_size
        result["rasteriser"] = measure_rasteriser(dev, raster_batch, ks=RASTER_KS[:2] if quick else RASTER_KS,
                                                  dense=dense)
        say("timing the data loader")
        result["loader"] = measure_loader(cfg, n_batches=5 if quick else 0)
        say("timing the depth cache")
        result["depth_cache"] = measure_depth_cache(root, "train", cfg.train.batch_size,
                                                    budget_s=0.1 if quick else 1.0)
    result["elapsed_s"] = time.perf_counter() - started
    return result


def render_tables(result: dict[str, Any]):  # -> rich.console.Group
    """The human view of :func:`run_bench`'s result: one table for training, one for the parts."""
    from rich.console import Group
    from rich.table import Table

    cfg, machine = result["config"], result["machine"]
    where = machine.get("gpu") or f"{machine.get('cpu_affinity', machine['cpu_count'])} CPU cores"
    title = (f"dkp bench --preset {result['preset']}: {result['device']} ({where}, torch {machine['torch']}, "
             f"{machine['torch_threads']} threads)")
    train = Table(title=title, title_justify="left")
    for col in ("step", "batch", "images/s", "steps/s", "ms/step", "peak memory", "precision"):
        train.add_column(col, justify="left" if col == "step" else "right")
    for role, r in result["train"].items():
        mem = "GPU max allocated" if r["memory_kind"] == "cuda_max_allocated" else "peak RSS"
        train.add_row(role + (" (compiled)" if r["compiled"] else ""), str(r["batch"]), f"{r['images_per_s']:.1f}",
                      f"{r['steps_per_s']:.2f}", f"{r['step_ms']:.1f}", f"{r['peak_memory_mb']:.0f} MB {mem}",
                      r["precision"])
    parts = Table(title=f"model: {cfg['image_size']} px, K = {cfg['n_keypoints']}, width {cfg['width']}, "
                        f"loss {cfg['reconstruction']}", title_justify="left")
    parts.add_column("part")
    parts.add_column("figure", justify="right")
    parts.add_column("note")
    for row in result["rasteriser"]:
        dense = f", dense {row['dense_ms']:.1f} ms ({row['speedup']:.1f}x)" if "dense_ms" in row else ""
        parts.add_row(f"rasteriser K={row['k']}", f"{row['fast_ms']:.1f} ms",
                      f"fwd+bwd, batch {row['batch']}, {row['size']} px{dense}")
    ld = result["loader"]
    parts.add_row("data loader", f"{ld['images_per_s']:.0f} img/s", f"batch {ld['batch']}, RGB + depth, flips")
    dc = result["depth_cache"]
    parts.add_row("depth cache read", f"{dc['images_per_s']:.0f} img/s",
                  f"{dc['map_size'][0]} px uint16, {dc['mb_per_s']:.0f} MB/s (page cache)")
    parts.add_row("total", f"{result['elapsed_s']:.0f} s", "")
    return Group(train, parts)
