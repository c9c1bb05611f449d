"""The training loop, teacher and student alike, readable top to bottom.

Teacher (stage 1): AutoLink on depth maps, reconstruction loss only.
Student (stage 2): AutoLink on RGB, lambda * reconstruction + gamma * (1 - cos) against the frozen teacher's
detector embedding of the same, identically flipped frame's depth map. gamma = 0 (or no teacher) is the
image-student-only baseline (plain AutoLink).
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any

import psutil
import torch
from torch.nn.parallel import DistributedDataParallel

from dkp_tui import distributed
from dkp_tui.atomic import check_output_dir
from dkp_tui.config import Config, for_role
from dkp_tui.data.loader import BatchLoader
from dkp_tui.devices import pick_device
from dkp_tui.errors import DkpError, os_error_text
from dkp_tui.extras import require
from dkp_tui.formats.metrics import MetricsWriter
from dkp_tui.formats.run_dir import (
    METRICS,
    READER_FILES,
    ROLES,
    RUN_FILES,
    SAMPLES,
    TENSORBOARD,
    WEIGHTS,
    RunInfo,
    is_finished,
    is_run_dir,
    read_run_info,
    save_weights,
    write_run_config,
    write_run_info,
)
from dkp_tui.locks import writer_lock
from dkp_tui.model.autolink import AutoLink, kd_embedding, kd_features
from dkp_tui.model.decoder import cell_mask
from dkp_tui.train.checkpoint import has_checkpoint, load_checkpoint, save_checkpoint
from dkp_tui.train.kd import FrozenTeacher, kd_cosine_loss
from dkp_tui.train.progress import TrainProgress
from dkp_tui.train.samples import SampleSet
from dkp_tui.train.schedule import lr_at
from dkp_tui.train.setup import (
    autocast,
    build_model,
    build_optimizer,
    load_teacher_detector,
    pick_precision,
    seed_everything,
)
from dkp_tui.train.tensorboard import TensorBoardLog


def train(cfg: Config, run_dir: str | Path, *, role: str = "student", teacher_run: str | Path | None = None,
          resume: bool = False, quiet: bool = False) -> RunInfo:
    """Train one run into ``run_dir`` (new, or ``resume=True`` to continue from its last checkpoint).

    The run's writer lock is held throughout: a second ``train`` or ``train --resume`` of the same run is refused
    at once instead of interleaving its metrics and checkpoints with this one's.
    """
    if role not in ROLES:
        raise DkpError(f"role must be one of {ROLES}")
    cfg = for_role(cfg, role)
    run_dir = Path(run_dir)
    if cfg.train.tensorboard:
        require("tensorboard")  # before the run directory exists, not after
    if resume:
        read_run_info(run_dir)  # a missing or foreign run is refused before the lock creates anything
    check_output_dir(run_dir, "--run")
    if not resume and run_dir.is_dir():
        foreign = sorted(p.name for p in run_dir.iterdir() if p.name not in RUN_FILES and not p.name.startswith("."))
        if foreign:  # e.g. --run data/taichi: the run's files would land among the data set's
            raise DkpError(f"--run {run_dir} is not empty and holds no run (it holds {foreign[0]}); choose a new "
                           "or empty directory")
    with writer_lock(run_dir, f"run {run_dir}", keep=READER_FILES):
        return _train_locked(cfg, run_dir, role, teacher_run, resume, quiet)


def _train_locked(cfg: Config, run_dir: Path, role: str, teacher_run: str | Path | None, resume: bool,
                  quiet: bool) -> RunInfo:
    t = cfg.train
    o = cfg.optim

    # -- processes, device, precision, seeds ----------------------------------------------------------
    device = pick_device(t.device)
    dist_info = distributed.setup(device.type)
    if dist_info.enabled and device.type == "cuda":
        device = torch.device("cuda", dist_info.local_rank)
    amp_dtype = pick_precision(t.precision, device)
    if t.threads > 0:
        torch.set_num_threads(t.threads)
    if device.type == "cpu":
        torch.set_flush_denormal(True)  # denormals in near-zero edge maps slow CPU convolutions several-fold
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    if t.batch_size % dist_info.world_size:
        raise DkpError(f"train.batch_size {t.batch_size} (global) must be divisible by {dist_info.world_size} ranks")
    seed_everything(t.seed + dist_info.rank)

    # -- the run directory --------------------------------------------------------------------------
    distill = role == "student" and teacher_run is not None and cfg.kd.gamma > 0
    info: RunInfo | None = None  # ranks other than 0 never write it
    if resume:  # read again under the lock: a writer that held it until now may have moved the run on
        info = read_run_info(run_dir)
        if is_finished(info, t.iterations):
            return info
        teacher_run = info.teacher_run if teacher_run is None else teacher_run
        distill = role == "student" and teacher_run is not None and cfg.kd.gamma > 0
    elif is_run_dir(run_dir):  # checked under the lock: a run that is training is "being written", not this
        raise DkpError(f"{run_dir} already holds a run; continue it with `dkp train --resume {run_dir}` "
                       "or choose another --run")

    # -- data: the teacher trains on depth, the student on RGB (plus depth for its teacher) ------------
    loader = BatchLoader(cfg.data.dataset, cfg.data.split, cfg.model.image_size, t.batch_size, t.seed,
                         hflip=t.hflip, rgb=role == "student", depth=role == "teacher" or distill,
                         depth_tag=cfg.data.depth_tag, rank=dist_info.rank, world_size=dist_info.world_size)

    # -- model, loss, teacher, optimizer ------------------------------------------------------------
    resuming = resume and has_checkpoint(run_dir)
    model, rec_loss, nhwc = build_model(cfg, device, pretrained=not resuming)  # a checkpoint holds the encoder
    teacher = None
    if distill:
        teacher = FrozenTeacher(load_teacher_detector(Path(teacher_run), cfg, device))  # type: ignore[arg-type]
    kd_feats = kd_features(cfg.kd.layer) if teacher is not None else ()
    optimizer = build_optimizer(cfg, model, device)
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)
    mask_gen = torch.Generator(device=device).manual_seed(t.seed * 1009 + dist_info.rank)

    start_step = 0
    if resuming:
        start_step, model_state, optim_state, rng, meta = load_checkpoint(run_dir)
        model.load_state_dict(model_state)
        optimizer.load_state_dict(optim_state)
        mask_gen.set_state(rng[f"mask{dist_info.rank}"] if f"mask{dist_info.rank}" in rng else rng["mask0"])
        torch.set_rng_state(rng["torch"])
        if meta.get("scaler"):
            scaler.load_state_dict(meta["scaler"])
    # the run directory is written only now that the data, the weights and the teacher have been accepted: a
    # refused input leaves nothing behind (and never a run that says "running")
    distributed.barrier(dist_info)  # every rank has looked at the directory before rank 0 writes to it
    if dist_info.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_run_config(run_dir, cfg)
        if not resume:
            info = RunInfo(role=role, status="running", step=0, total_steps=t.iterations, seed=t.seed,
                           teacher_run=str(teacher_run) if teacher_run else None, created=time.time())
        info.status, info.total_steps, info.message = "running", t.iterations, ""
        write_run_info(run_dir, info)
    distributed.barrier(dist_info)

    raw_model = model
    if dist_info.enabled:
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model) if device.type == "cuda" else model
        model = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
        raw_model = model.module
    step_fn = train_step
    if t.compile and device.type == "cuda":
        step_fn = torch.compile(train_step)

    # -- logging (rank 0 only) ----------------------------------------------------------------------
    writer = samples = progress = tensorboard = None
    if dist_info.is_main:
        if t.tensorboard:
            tensorboard = TensorBoardLog(run_dir / TENSORBOARD, purge_step=start_step)
        writer = MetricsWriter(run_dir / METRICS, truncate_after_step=start_step if resume else None,
                               mirror=tensorboard)
        if writer.dropped and not quiet:
            from rich.console import Console

            Console(stderr=True).print(f"{run_dir / METRICS}: dropped {writer.dropped} torn or undecodable "
                                       "line(s) (what a crash mid-write leaves)")
        if start_step == 0:
            writer.write("start", step=0, role=role, total_steps=t.iterations, teacher_run=info.teacher_run,
                         device=str(device), precision=str(amp_dtype or "fp32"), world_size=dist_info.world_size,
                         batch_size=t.batch_size, n_keypoints=cfg.model.n_keypoints)
        samples = SampleSet.build(cfg, role, distill, device)
        progress = TrainProgress(t.iterations, start_step, f"{role} {run_dir.name}", enabled=not quiet)
    process = psutil.Process()
    process.cpu_percent()

    # -- the loop -----------------------------------------------------------------------------------
    model.train()
    last_good = start_step
    window_start, window_images = time.perf_counter(), 0
    t0 = time.perf_counter()
    step = completed = start_step
    try:
        for step, batch in loader.iterate(start_step, t.iterations):
            x = (batch.image if role == "student" else batch.depth).to(device, non_blocking=True)
            depth = batch.depth.to(device, non_blocking=True) if teacher is not None else None
            if nhwc:
                x = x.contiguous(memory_format=torch.channels_last)
            mask = cell_mask(x.shape[0], cfg.model.mask_cells, cfg.model.mask_keep, cfg.model.image_size,
                             generator=mask_gen, device=device)
            losses = step_fn(model, rec_loss, teacher, cfg, x, depth, mask, kd_feats, device, amp_dtype)
            if not distributed.all_finite(losses["loss"], dist_info):
                raise _NonFinite(step + 1, {k: float(v.detach()) for k, v in losses.items()})
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(losses["loss"]).backward()
            lr = lr_at(step, o.lr, t.iterations, o.schedule, o.warmup_steps, o.min_lr_ratio)
            for group in optimizer.param_groups:
                group["lr"] = lr * group.get("lr_scale", 1.0)  # a checkpoint from before backbones has none
            scaler.step(optimizer)
            scaler.update()
            step += 1
            completed = step
            window_images += x.shape[0] * dist_info.world_size

            if dist_info.is_main:
                if step % t.log_every == 0 or step == t.iterations:
                    now = time.perf_counter()
                    ips = window_images / max(now - window_start, 1e-9)
                    window_start, window_images = now, 0
                    record = _step_record(raw_model, losses, optimizer, ips, now - t0, process, device, step,
                                          t.iterations)
                    writer.write("step", **record)
                    progress.update(step, record)
                if step % t.sample_every == 0 or step == t.iterations:
                    samples.write(raw_model, teacher, run_dir / SAMPLES, step, mirror=tensorboard)
            if step % t.checkpoint_every == 0 or step == t.iterations:
                _checkpoint(run_dir, raw_model, optimizer, scaler, mask_gen, step, cfg, role, dist_info, info)
                if writer is not None:
                    writer.write("checkpoint", step=step)
                last_good = step
    except _NonFinite as err:
        values = ", ".join(f"{k}={v:.4g}" for k, v in err.losses.items())
        message = (f"non-finite loss at step {err.step} ({values}); "
                   f"training stopped, last good checkpoint: step {last_good}")
        _finish(run_dir, info, writer, progress, dist_info, "failed", last_good, message)
        raise DkpError(message) from None
    except (OSError, DkpError) as err:  # a full or vanished disk, a damaged shard: say what is kept and how on
        text = os_error_text(err) if isinstance(err, OSError) else str(err)
        kept = (f"kept: the checkpoint of step {last_good}" if last_good > 0 or has_checkpoint(run_dir)
                else "no checkpoint yet")
        message = f"{text}; {kept}; once fixed, continue with `dkp train --resume {run_dir}`"
        _finish(run_dir, info, writer, progress, dist_info, "failed", last_good, message)
        raise DkpError(message) from None
    except BaseException as err:
        _finish(run_dir, info, writer, progress, dist_info, "failed", last_good,
                f"interrupted after step {completed} (last checkpoint: step {last_good}): {type(err).__name__}; "
                f"resume with `dkp train --resume {run_dir}`")
        raise
    _finish(run_dir, info, writer, progress, dist_info, "finished", step, "")
    return info


class _NonFinite(Exception):
    def __init__(self, step: int, losses: dict[str, float]) -> None:
        super().__init__(step)
        self.step, self.losses = step, losses


def train_step(model: torch.nn.Module, rec_loss: torch.nn.Module, teacher: FrozenTeacher | None, cfg: Config,
                x: torch.Tensor, depth: torch.Tensor | None, mask: torch.Tensor, kd_feats: tuple[str, ...],
                device: torch.device, amp_dtype: torch.dtype | None) -> dict[str, torch.Tensor]:
    """Forward and loss of one step: lambda * L_rec (+ gamma * L_KD against the frozen teacher); what `dkp bench`
    times, so its figures are the loop's."""
    with autocast(device, amp_dtype):
        out = model(x, mask, features=kd_feats)
        loss_rec = rec_loss(out.recon, x)
    losses = {"loss_rec": loss_rec.float()}
    loss = cfg.loss.lam * losses["loss_rec"]
    if teacher is not None and depth is not None:
        with autocast(device, amp_dtype):
            target = teacher(depth, cfg.kd.layer)
        losses["loss_kd"] = kd_cosine_loss(kd_embedding(out.det, cfg.kd.layer), target, cfg.kd.reduce)
        loss = loss + cfg.kd.gamma * losses["loss_kd"]
    losses["loss"] = loss
    return losses


def _step_record(model: AutoLink, losses: dict[str, torch.Tensor], optimizer: torch.optim.Optimizer,
                 images_per_s: float, elapsed: float, process: psutil.Process, device: torch.device, step: int,
                 total: int) -> dict[str, Any]:
    with torch.no_grad():
        k = model.edges.weight_matrix().shape[0]
        w = model.edges.weight_matrix()[torch.triu_indices(k, k, 1).unbind(0)].float()
    losses = {k: v.detach() for k, v in losses.items()}
    record: dict[str, Any] = {
        "step": step, "total_steps": total, "elapsed": elapsed,
        "loss": float(losses["loss"]), "loss_rec": float(losses["loss_rec"]),
        "loss_kd": float(losses["loss_kd"]) if "loss_kd" in losses else None,
        "lr": optimizer.param_groups[0]["lr"], "images_per_s": images_per_s, "alpha": float(model.alpha.detach()),
        "edge_w_mean": float(w.mean()), "edge_w_std": float(w.std()) if w.numel() > 1 else 0.0,
        "edge_w_max": float(w.max()),
        "cpu_percent": process.cpu_percent(), "rss_mb": process.memory_info().rss / 2**20,
    }
    if device.type == "cuda":
        record["gpu_mem_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    return record


def _checkpoint(run_dir: Path, model: AutoLink, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
                mask_gen: torch.Generator, step: int, cfg: Config, role: str, dist_info: distributed.DistInfo,
                info: RunInfo) -> None:
    """Weights (for eval and infer) and the resumable state; rank 0 writes, every rank waits."""
    masks = distributed.gather_states(mask_gen.get_state(), dist_info)  # each rank draws its own masks
    rng = {**{f"mask{r}": s for r, s in enumerate(masks)}, "torch": torch.get_rng_state()}
    if dist_info.is_main:
        state = model.state_dict()
        save_weights(run_dir / WEIGHTS, state, cfg, role, step)
        save_checkpoint(run_dir, step, state, optimizer, rng, scaler=scaler)
        info.step = step
        write_run_info(run_dir, info)
    distributed.barrier(dist_info)


def _finish(run_dir: Path, info: RunInfo, writer: MetricsWriter | None, progress: TrainProgress | None,
            dist_info: distributed.DistInfo, status: str, step: int, message: str) -> None:
    """Record how the run ended. After a failure this is best effort: on a full or read-only disk the error that
    stopped the run is what the user must see, not a second one from writing its status."""
    if progress is not None:
        progress.close()
    if dist_info.is_main:
        info.status, info.step, info.message = status, step, message
        try:
            write_run_info(run_dir, info)
            if writer is not None:
                writer.write("end", step=step, status=status, message=message)
        except (OSError, DkpError):
            if status == "finished":
                raise
        finally:
            if writer is not None:
                with contextlib.suppress(OSError):
                    writer.close()
    distributed.cleanup(dist_info)
