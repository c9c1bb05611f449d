"""torchrun process-group setup and the few collectives dkp needs (training's DDP, `dkp depth`'s shard split).

dkp never launches processes itself: `torchrun --nproc-per-node N -m dkp_tui train ...` sets RANK, WORLD_SIZE,
LOCAL_RANK and MASTER_ADDR/PORT, and `setup()` joins the process group (NCCL on CUDA, gloo on CPU).
`dkp train --nproc N` / `dkp depth --nproc N` only spell that command for you: `torchrun ... -m dkp_tui -- train
...`, where the `--` keeps torchrun from reading dkp's options (`--run` would otherwise match its `--run-path`).
Lives below train/ and depth/ (it needs only torch), so both stages can use it.
"""

from __future__ import annotations

import os
import time
from collections import deque
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

# The tensors of the last few collectives, kept alive from Python until the group is destroyed. Why: gloo's worker
# thread may still hold a finished collective when the group is torn down; if Python has already dropped that tensor,
# freeing it needs the GIL, which the main thread holds while it joins that worker in ~ProcessGroupGloo: a deadlock
# seen under load with torch 2.3 (py-spy: main thread in std::thread::join, the worker in PyObjectSlot decref).
_RECENT: deque[torch.Tensor] = deque(maxlen=16)
GLOO_GRACE_S = 0.5


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


def launched() -> DistInfo:
    """What torchrun's environment says this process is (rank 0 of 1 without torchrun); joins nothing."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistInfo()
    return DistInfo(int(os.environ["RANK"]), world_size, int(os.environ.get("LOCAL_RANK", "0")))


def setup(device_kind: str, timeout: timedelta | None = None) -> DistInfo:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1); a no-op otherwise.

    ``timeout``: how long a collective may wait for the slowest rank (torch's default is 10-30 min, too short for
    ranks that meet only once their share of hours of depth inference is done).
    """
    info = launched()
    if info.enabled and not dist.is_initialized():
        backend = "nccl" if device_kind == "cuda" else "gloo"
        if device_kind == "cuda":
            torch.cuda.set_device(info.local_rank)
        dist.init_process_group(backend=backend, **({"timeout": timeout} if timeout is not None else {}))
    return info


def barrier(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.barrier()


def all_finite(value: torch.Tensor, info: DistInfo) -> bool:
    """True when the loss is finite on every rank (so all ranks stop together on a NaN)."""
    ok = torch.isfinite(value.detach()).all().to(torch.float32).reshape(1)
    return bool(_reduce(ok, info, dist.ReduceOp.MIN).item() > 0)


def all_true(flag: bool, info: DistInfo) -> bool:
    """True when ``flag`` holds on every rank; also a barrier (so rank 0 can refuse work for all of them)."""
    return bool(_reduce(torch.tensor([1.0 if flag else 0.0]), info, dist.ReduceOp.MIN).item() > 0)


def sum_all(values: list[float], info: DistInfo) -> list[float]:
    """Element-wise sums of ``values`` over the ranks (counts of work each rank did)."""
    return [float(v) for v in _reduce(torch.tensor(values, dtype=torch.float64), info, dist.ReduceOp.SUM)]


def max_all(values: list[float], info: DistInfo) -> list[float]:
    """Element-wise maxima of ``values`` over the ranks (the slowest rank's time)."""
    return [float(v) for v in _reduce(torch.tensor(values, dtype=torch.float64), info, dist.ReduceOp.MAX)]


def _reduce(t: torch.Tensor, info: DistInfo, op: dist.ReduceOp.RedOpType) -> torch.Tensor:
    if not (info.enabled and dist.is_initialized()):
        return t
    if dist.get_backend() == "nccl":
        t = t.to(torch.device("cuda", torch.cuda.current_device()))
    else:
        t = t.to("cpu")
    _RECENT.append(t)
    dist.all_reduce(t, op=op)
    return t.cpu()


def gather_states(state: torch.Tensor, info: DistInfo) -> list[torch.Tensor]:
    """Every rank's RNG state (a uint8 tensor of the same length on each), so rank 0 can checkpoint them all."""
    if not (info.enabled and dist.is_initialized()):
        return [state]
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
    local = state.to(device)
    parts = [torch.empty_like(local) for _ in range(info.world_size)]
    _RECENT.extend([local, *parts])
    dist.all_gather(parts, local)
    return [p.cpu() for p in parts]


def cleanup(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        if dist.get_backend() == "gloo":
            time.sleep(GLOO_GRACE_S)  # the GIL released: gloo's worker finishes freeing the last work first
        dist.destroy_process_group()
    _RECENT.clear()  # only now: the group's worker threads have let go of them
