"""Resumable checkpoints without pickle: tensors in safetensors, everything else in JSON.

The optimizer's ``state_dict()`` is flattened: per-parameter tensors become ``optim.<param>.<key>`` entries,
param groups and scalar state go to JSON. RNG states (torch CPU, CUDA, the mask generator) are uint8 tensors.
The tensor file carries the XXH3-128 hash of every tensor (``dkp_tui.integrity``), checked when a resume loads it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError

from dkp_tui.atomic import write_json
from dkp_tui.errors import DkpError
from dkp_tui.formats.run_dir import CKPT_DIR, RUN_FORMAT
from dkp_tui.integrity import load_safetensors, save_safetensors
from dkp_tui.version import __version__

STATE_TENSORS = "state.safetensors"
STATE_JSON = "state.json"


def _flatten_optimizer(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for pid, pstate in state["state"].items():
        for key, value in pstate.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{pid}.{key}"] = value.detach().to("cpu").contiguous()
            else:
                scalars.setdefault(str(pid), {})[key] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        if not name.startswith("optim."):
            continue
        _, pid, key = name.split(".", 2)
        state.setdefault(int(pid), {})[key] = value
    for pid, values in meta["scalars"].items():
        state.setdefault(int(pid), {}).update(values)
    return {"state": state, "param_groups": meta["param_groups"]}


def save_checkpoint(run: str | Path, step: int, model_state: dict[str, torch.Tensor], optimizer: torch.optim.Optimizer,
                    rng: dict[str, torch.Tensor], extra: dict[str, Any] | None = None,
                    scaler: torch.amp.GradScaler | None = None) -> None:
    """Tensors first, then the JSON that names the step: a checkpoint counts only once its JSON exists."""
    ckpt = Path(run) / CKPT_DIR
    opt_tensors, opt_meta = _flatten_optimizer(optimizer.state_dict())
    tensors = {f"model.{k}": v.detach().to("cpu").contiguous() for k, v in model_state.items()}
    tensors.update(opt_tensors)
    tensors.update({f"rng.{k}": v.to("cpu").contiguous() for k, v in rng.items()})
    meta = {"format_version": RUN_FORMAT, "dkp_version": __version__, "step": step, "optimizer": opt_meta,
            "scaler": scaler.state_dict() if scaler is not None and scaler.is_enabled() else None,
            "extra": extra or {}}
    # Write the tensors under a step-specific name so that a crash between the two writes never pairs
    # a new tensor file with an old JSON.
    name = f"state-{step:07d}.safetensors"
    save_safetensors(ckpt / name, tensors)
    meta["tensors"] = name
    write_json(ckpt / STATE_JSON, meta)
    for old in ckpt.glob("state-*.safetensors"):
        if old.name != name:
            old.unlink(missing_ok=True)


def has_checkpoint(run: str | Path) -> bool:
    return (Path(run) / CKPT_DIR / STATE_JSON).is_file()


def load_checkpoint(run: str | Path) -> tuple[int, dict[str, torch.Tensor], dict[str, Any], dict[str, torch.Tensor],
                                              dict[str, Any]]:
    """Return (step, model_state, optimizer_state_dict, rng, meta)."""
    ckpt = Path(run) / CKPT_DIR
    try:
        meta = json.loads((ckpt / STATE_JSON).read_text(encoding="utf-8"))
        if int(meta.get("format_version", 0)) > RUN_FORMAT:
            raise DkpError(f"{ckpt}: checkpoint written by a newer dkp ({meta.get('dkp_version')}); upgrade dkp")
        tensors, _ = load_safetensors(ckpt / meta["tensors"])  # a hash mismatch: DkpError "damaged"
    except FileNotFoundError as err:
        raise DkpError(f"{run}: no usable checkpoint ({err.filename} missing); cannot resume") from None
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError, OSError,
            SafetensorError) as err:
        raise DkpError(f"{ckpt}: corrupt checkpoint ({err}); cannot resume") from None
    model_state = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
    rng = {k[4:]: v for k, v in tensors.items() if k.startswith("rng.")}
    optim_state = _unflatten_optimizer(tensors, meta["optimizer"])
    return int(meta["step"]), model_state, optim_state, rng, meta
