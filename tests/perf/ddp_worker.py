"""Run under torchrun by tests/perf/test_ddp.py: `dkp`'s training loop, then each rank dumps its own weights.

    torchrun --standalone --nproc-per-node 2 tests/perf/ddp_worker.py RUN_DIR OUT_DIR '["model.width=0.125", ...]'

The loop itself only lets rank 0 write; to compare the ranks, this wrapper records the module that the loop wraps
in DistributedDataParallel and, after ``train`` returns, saves that rank's state dict to OUT_DIR/rank<R>.safetensors
(safetensors, no pickle), with whether SyncBatchNorm ran on CPU tensors in its metadata.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from safetensors.torch import save_file
from torch.nn.parallel import DistributedDataParallel

from dkp_tui.config import load_config
from dkp_tui.train import loop


def main() -> None:
    run_dir, out_dir, overrides = Path(sys.argv[1]), Path(sys.argv[2]), json.loads(sys.argv[3])
    captured = {}

    class RecordingDDP(DistributedDataParallel):
        def __init__(self, module, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
            super().__init__(module, *args, **kwargs)
            captured["module"] = module

    loop.DistributedDataParallel = RecordingDDP  # type: ignore[misc]
    dist.init_process_group("gloo")  # the loop's setup() joins an existing group
    try:  # does this torch's SyncBatchNorm run on CPU tensors under gloo? (the loop assumes not)
        torch.nn.SyncBatchNorm(2).train()(torch.randn(2, 2, 2, 2))
        syncbn = "ok"
    except (ValueError, RuntimeError) as err:
        syncbn = f"{type(err).__name__}: {err}"
    loop.train(load_config(None, overrides), run_dir, role="teacher", quiet=True)
    state = {k: v.detach().contiguous() for k, v in captured["module"].state_dict().items()}
    out_dir.mkdir(parents=True, exist_ok=True)
    save_file(state, str(out_dir / f"rank{os.environ['RANK']}.safetensors"),
              metadata={"world_size": os.environ["WORLD_SIZE"], "syncbn_cpu": syncbn})


if __name__ == "__main__":
    main()
