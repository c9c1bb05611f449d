"""What the content hashes (issue 22) cost on load: a full-size checkpoint and a demo model, with and without the check.

The checkpoint is what `dkp train --preset synthetic` saves (model weights + AdamW moments + RNG states of the
full-width 128-px model, about 310 MB); the demo model is the `synthetic-cpu` preset's model.safetensors (about
1.6 MB). Each is written once with `dkp_tui.integrity.save_safetensors`, then loaded `--repeats` times, alternating:
plain `safetensors.torch.load_file` (what dkp did before) and `load_safetensors` (verifies the hashes), each
followed by what dkp does with the tensors (`load_state_dict` of the model, and of the optimizer for the
checkpoint) and by a read of every page (what the first training step does to the optimizer moments that
`load_state_dict` only references): `load_file` maps the file lazily, so the bytes are read only when used, and
timing it alone would time nothing (`--no-touch` times it without that read). Warm page cache by default (the files were just written: the case where hashing weighs most); `--cold`
drops the file's cache before every load, as when resuming hours later. Prints the medians and the fastest of each,
and the cost in percent.

    python benchmarks/hash_cost.py
    python benchmarks/hash_cost.py --repeats 11 --json
    python benchmarks/hash_cost.py --cold --dir /var/tmp      # on a real disk (/tmp may be a tmpfs)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dkp_tui.config import load_config  # noqa: E402
from dkp_tui.integrity import load_safetensors, save_safetensors  # noqa: E402
from dkp_tui.model.autolink import AutoLink  # noqa: E402


def checkpoint_tensors(preset: str, with_optimizer: bool) -> dict[str, torch.Tensor]:
    """The tensors of the preset's checkpoint (model + AdamW state after one step) or of its weights file."""
    cfg = load_config(preset)
    model = AutoLink(cfg.model)
    state = {f"model.{k}": v.detach().contiguous() for k, v in model.state_dict().items()}
    if not with_optimizer:
        return {k[6:]: v for k, v in state.items()}
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    for p in model.parameters():
        p.grad = torch.randn_like(p)
    opt.step()
    for pid, pstate in opt.state_dict()["state"].items():
        for key, value in pstate.items():
            if isinstance(value, torch.Tensor):
                state[f"optim.{pid}.{key}"] = value.contiguous()
    state["rng.torch"] = torch.get_rng_state()
    return state


def _drop_cache(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def _use(preset: str, with_optimizer: bool) -> Callable[[dict[str, torch.Tensor]], None]:
    """What dkp does with the loaded tensors: resume (model + optimizer state) or build the model for eval/infer."""
    cfg = load_config(preset)
    model = AutoLink(cfg.model)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def use(tensors: dict[str, torch.Tensor]) -> None:
        if not with_optimizer:
            model.load_state_dict(tensors)
            return
        model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        state: dict[int, dict[str, Any]] = {}
        for name, value in tensors.items():
            if name.startswith("optim."):
                _, pid, key = name.split(".", 2)
                state.setdefault(int(pid), {})[key] = value
        opt.load_state_dict({"state": state, "param_groups": opt.state_dict()["param_groups"]})

    return use


def _touch(tensors: dict[str, torch.Tensor]) -> None:
    """Read one byte of every page of every tensor: what a resume's first optimizer step does to the moments that
    ``load_state_dict`` only references (safetensors maps them lazily), so that both loads pay their page faults."""
    for t in tensors.values():
        t.reshape(-1).view(torch.uint8)[::4096].sum()


def measure(path: Path, use: Callable[[dict[str, torch.Tensor]], None], repeats: int,
            cold: bool, touch: bool = True) -> dict[str, float]:
    from safetensors.torch import load_file

    plain, checked = [], []
    use(load_file(str(path)))  # warm up (and the page cache, for the warm case)
    for _ in range(repeats):
        for times, load in ((plain, lambda: load_file(str(path))), (checked, lambda: load_safetensors(path)[0])):
            if cold:
                _drop_cache(path)
            t0 = time.perf_counter()
            tensors = load()
            use(tensors)
            if touch:
                _touch(tensors)
            times.append(time.perf_counter() - t0)
    p, c = statistics.median(plain), statistics.median(checked)
    pm, cm = min(plain), min(checked)  # on a shared machine the fastest of each is the steadier comparison
    return {"mb": path.stat().st_size / 1e6, "load_ms": p * 1e3, "verified_load_ms": c * 1e3,
            "cost_percent": 100 * (c - p) / p, "best_load_ms": pm * 1e3, "best_verified_load_ms": cm * 1e3,
            "best_cost_percent": 100 * (cm - pm) / pm}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--cold", action="store_true", help="drop the file's page cache before every load (fadvise)")
    ap.add_argument("--dir", type=Path, default=None, help="where to write the files (default: a temp dir)")
    ap.add_argument("--no-touch", action="store_true",
                    help="time the load alone, without reading the pages the first step would read")
    args = ap.parse_args()
    results = {}
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        for name, preset, opt in (("checkpoint (synthetic preset)", "synthetic", True),
                                  ("demo model (synthetic-cpu preset)", "synthetic-cpu", False)):
            path = Path(tmp) / f"{preset}.safetensors"
            save_safetensors(path, checkpoint_tensors(preset, opt), {"note": "benchmark"})
            results[name] = measure(path, _use(preset, opt), args.repeats, args.cold, not args.no_touch)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    for name, r in results.items():
        print(f"{name:34s} {r['mb']:6.1f} MB  median: load {r['load_ms']:7.1f} ms, verified "
              f"{r['verified_load_ms']:7.1f} ms, {r['cost_percent']:+6.1f} %;  best: {r['best_load_ms']:7.1f} / "
              f"{r['best_verified_load_ms']:7.1f} ms, {r['best_cost_percent']:+6.1f} %")


if __name__ == "__main__":
    main()
