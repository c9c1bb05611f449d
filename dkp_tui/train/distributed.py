"""torchrun / DistributedDataParallel setup and rank-0 helpers.

dkp never launches processes itself: `torchrun --nproc-per-node N -m dkp_tui train ...` sets RANK, WORLD_SIZE,
LOCAL_RANK and MASTER_ADDR/PORT, and `setup()` joins the process group (NCCL on CUDA, gloo on CPU).
`dkp train --nproc N` only spells that command for you: `torchrun ... -m dkp_tui -- train ...`, where the `--`
keeps torchrun from reading dkp's options (`--run` would otherwise match torchrun's `--run-path`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup(device_kind: str) -> DistInfo:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1); a no-op otherwise."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistInfo()
    info = DistInfo(int(os.environ["RANK"]), world_size, int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        backend = "nccl" if device_kind == "cuda" else "gloo"
        if device_kind == "cuda":
            torch.cuda.set_device(info.local_rank)
        dist.init_process_group(backend=backend)
    return info


def barrier(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.barrier()


def all_finite(value: torch.Tensor, info: DistInfo) -> bool:
    """True when the loss is finite on every rank (so all ranks stop together on a NaN)."""
    ok = torch.isfinite(value.detach()).all().to(torch.float32).reshape(1)
    if info.enabled and dist.is_initialized():
        ok = ok.to("cpu") if dist.get_backend() == "gloo" else ok
        dist.all_reduce(ok, op=dist.ReduceOp.MIN)
    return bool(ok.item() > 0)


def gather_states(state: torch.Tensor, info: DistInfo) -> list[torch.Tensor]:
    """Every rank's RNG state (a uint8 tensor of the same length on each), so rank 0 can checkpoint them all."""
    if not (info.enabled and dist.is_initialized()):
        return [state]
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
    local = state.to(device)
    parts = [torch.empty_like(local) for _ in range(info.world_size)]
    dist.all_gather(parts, local)
    return [p.cpu() for p in parts]


def cleanup(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()
