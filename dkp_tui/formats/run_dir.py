"""The run-directory format: config, weights, checkpoint, metrics, samples; everything written atomically.

```
<run>/run.json            format version, dkp version, role, status, step, total steps, seed, teacher run, times
<run>/config.toml         the fully resolved config
<run>/model.safetensors   trainable weights + BN statistics; metadata: config JSON, dkp version, step, role
<run>/checkpoint/state.safetensors  model and optimizer tensors of the last checkpoint
<run>/checkpoint/state.json         step, RNG states, optimizer scalars (plain JSON, no pickle)
<run>/metrics.jsonl       one JSON object per line (see dkp_tui.formats.metrics)
<run>/samples/step_NNNNNNN.png      keypoint overlays on a fixed set of images (step_NNNNNNN_teacher.png: the
                                    teacher's, in a distillation run)
<run>/eval.json           evaluation results appended by `dkp eval`
<run>/.dkp.lock           held by the one process training the run (dkp_tui.locks)
```

Tensor files carry an XXH3-128 hash table in their metadata (``dkp_tui.integrity``), checked on every load.
Importing this module loads no torch (the dashboard reads runs and must start fast); only the weights' reader and
writer need it, when called.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from safetensors import SafetensorError

from dkp_tui.atomic import write_json, write_text
from dkp_tui.config import Config
from dkp_tui.errors import DkpError
from dkp_tui.integrity import load_safetensors, save_safetensors
from dkp_tui.version import __version__

if TYPE_CHECKING:
    import torch

RUN_FORMAT = 1
RUN_JSON = "run.json"
CONFIG_TOML = "config.toml"
WEIGHTS = "model.safetensors"
CKPT_DIR = "checkpoint"
METRICS = "metrics.jsonl"
SAMPLES = "samples"
EVAL_JSON = "eval.json"
ROLES = ("teacher", "student")
RUN_FILES = frozenset({RUN_JSON, CONFIG_TOML, WEIGHTS, CKPT_DIR, METRICS, SAMPLES, EVAL_JSON})  # what a run writes
READER_FILES = frozenset({EVAL_JSON, "model.onnx"})  # written into a run by readers (eval, export), even mid-training
_SAMPLE_RE = re.compile(r"^step_(\d+)(_teacher)?\.png$")


def sample_name(step: int, teacher: bool = False) -> str:
    """The file name under ``samples/`` of the overlay grid of ``step`` (the teacher's, in a distillation run)."""
    return f"step_{step:07d}{'_teacher' if teacher else ''}.png"


def parse_sample_name(name: str) -> tuple[int, bool] | None:
    """(step, is the teacher's) of a sample file name, None for any other file."""
    m = _SAMPLE_RE.match(name)
    return (int(m.group(1)), m.group(2) is not None) if m else None


@dataclass
class RunInfo:
    role: str  # teacher (trained on depth) | student (trained on RGB, optionally distilled)
    status: str  # running | finished | failed
    step: int
    total_steps: int
    seed: int
    teacher_run: str | None = None
    created: float = 0.0
    updated: float = 0.0
    message: str = ""
    format_version: int = RUN_FORMAT
    dkp_version: str = __version__

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def is_run_dir(path: str | Path) -> bool:
    return (Path(path) / RUN_JSON).is_file()


def is_finished(info: RunInfo, iterations: int) -> bool:
    """Whether a run needs no more training for ``iterations`` steps; anything else is resumed (the one rule that
    `dkp train --resume` and the experiment drivers follow)."""
    return info.status == "finished" and info.step >= iterations


def _check_version(d: dict[str, Any], where: str) -> None:
    version = d.get("format_version")
    if not isinstance(version, int):
        raise DkpError(f"{where}: no format_version; not a dkp run directory")
    if version > RUN_FORMAT:
        raise DkpError(f"{where}: run format {version} was written by a newer dkp ({d.get('dkp_version')}); "
                       f"this dkp {__version__} reads format {RUN_FORMAT}: upgrade dkp")


def read_run_info(run: str | Path) -> RunInfo:
    path = Path(run) / RUN_JSON
    if not path.is_file():
        raise DkpError(f"{run}: not a dkp run directory (no {RUN_JSON})")
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise DkpError(f"{path}: unreadable ({err.strerror})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DkpError(f"{path}: corrupt ({err})") from None
    if not isinstance(d, dict):
        raise DkpError(f"{path}: corrupt (not a JSON object)")
    _check_version(d, str(path))
    known = set(RunInfo.__dataclass_fields__)
    return RunInfo(**{k: v for k, v in d.items() if k in known})


def write_run_info(run: str | Path, info: RunInfo) -> None:
    info.updated = time.time()
    write_json(Path(run) / RUN_JSON, info.to_dict())


def read_run_config(run: str | Path) -> Config:
    from dkp_tui.config import read_toml

    read_run_info(run)  # version check first
    return Config.from_dict(read_toml(Path(run) / CONFIG_TOML), source=str(Path(run) / CONFIG_TOML))


def write_run_config(run: str | Path, cfg: Config) -> None:
    write_text(Path(run) / CONFIG_TOML, cfg.to_toml())


def save_weights(path: str | Path, state: dict[str, torch.Tensor], cfg: Config, role: str, step: int) -> None:
    """Weights as safetensors with the config, role, step and version in the metadata (self-describing)."""
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state.items()}
    metadata = {"config": cfg.to_json(), "dkp_version": __version__, "step": str(step), "role": role,
                "format_version": str(RUN_FORMAT)}
    save_safetensors(path, tensors, metadata)


def load_weights(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Return (tensors, metadata); a missing, corrupt, damaged (hash mismatch) or too-new file is a DkpError."""
    path = Path(path)
    if not path.is_file():
        raise DkpError(f"weights not found: {path}")
    try:
        tensors, metadata = load_safetensors(path)
    except (SafetensorError, OSError, ValueError) as err:
        raise DkpError(f"{path}: not a readable safetensors file ({err})") from None
    version = metadata.get("format_version", str(RUN_FORMAT))
    _check_version({"format_version": int(version) if version.isdigit() else None,
                    "dkp_version": metadata.get("dkp_version")}, str(path))
    return tensors, metadata


def config_from_weights(metadata: dict[str, str], where: str) -> Config:
    if "config" not in metadata:
        raise DkpError(f"{where}: no config in the safetensors metadata; not a dkp model")
    try:
        data = json.loads(metadata["config"])
    except json.JSONDecodeError as err:
        raise DkpError(f"{where}: the config in the safetensors metadata is not JSON ({err}); not a dkp model") \
            from None
    if not isinstance(data, dict):
        raise DkpError(f"{where}: the config in the safetensors metadata is not a table; not a dkp model")
    return Config.from_dict(data, source=where)


def append_eval(run: str | Path, record: dict[str, Any]) -> None:
    path = Path(run) / EVAL_JSON
    records: Any = []
    if path.is_file():
        try:
            records = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            records = None
        if not isinstance(records, list):  # damaged: kept aside for its owner, never silently overwritten
            path.replace(path.with_name(f"{EVAL_JSON}.corrupt"))
            records = []
    records.append(record)
    write_json(path, records)
