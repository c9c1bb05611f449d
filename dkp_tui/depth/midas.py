"""MiDaS 3.1 through transformers' DPT depth models: load a located model (``weights.py``), predict in batches.

Preprocessing is the model's own image processor, done batched on the device: the same torchvision resize
(size, filter, antialias), rescale and normalisation the processor applies, checked against the processor on real
images of the data set before it is trusted (else the processor itself is used, batch by batch).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from dkp_tui.depth.normalise import encode_unit, minmax_normalise, resize_maps
from dkp_tui.depth.weights import ModelSource, weights_sha256
from dkp_tui.errors import DkpError

# Batched preprocessing is trusted when it is this close to the processor (normalised units; the range is 2).
VERIFY_MEAN_TOL = 5e-3
VERIFY_MAX_TOL = 0.25

# PIL resample codes the batched path reproduces, as transformers maps them to torchvision's modes
_FILTERS = {0: "nearest_exact", 2: "bilinear", 3: "bicubic"}


# --- the input transform -----------------------------------------------------------------------------------------------

def _constrain(value: float, multiple: int) -> int:
    """DPT's rounding of a resized side to a multiple (transformers' ``constrain_to_multiple_of``, no bounds)."""
    x = round(value / multiple) * multiple
    return int(x if x >= 0 else np.ceil(value / multiple) * multiple)


def _size_field(size: Any, key: str) -> Any:
    """A field of the processor's size: a dict in older transformers, a ``SizeDict`` in newer."""
    return size.get(key) if isinstance(size, dict) else getattr(size, key, None)


def _three(value: Any) -> tuple[float, ...]:
    return tuple(float(x) for x in (value if isinstance(value, (list, tuple)) else [value] * 3))


@dataclass
class InputTransform:
    """The processor's settings, applied to a uint8 (B, 3, H, W) batch on any device."""

    size: tuple[int, int]  # the processor's target (height, width)
    keep_aspect_ratio: bool
    multiple: int
    filter: str  # nearest_exact | bilinear | bicubic
    rescale: float | None  # None: no rescale
    mean: tuple[float, ...] | None  # None: no normalisation
    std: tuple[float, ...] | None
    problems: list[str] = field(default_factory=list)  # settings the batched path does not reproduce
    _constants: dict[str, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict, repr=False)

    @classmethod
    def from_processor(cls, processor: Any) -> InputTransform:
        problems = []
        size = getattr(processor, "size", None)
        height, width = _size_field(size, "height"), _size_field(size, "width")
        if not (height and width) or not getattr(processor, "do_resize", True):
            problems.append(f"size {size}")
            height = width = 0
        resample = getattr(processor, "resample", 3)
        resample = int(getattr(resample, "value", resample)) if resample is not None else 2
        if resample not in _FILTERS:
            problems.append(f"resample {resample}")
        if getattr(processor, "do_center_crop", False):
            problems.append("center crop")
        if getattr(processor, "do_pad", False):
            problems.append("padding")
        do_rescale = bool(getattr(processor, "do_rescale", True))
        do_normalize = bool(getattr(processor, "do_normalize", True))
        mean = getattr(processor, "image_mean", None)
        std = getattr(processor, "image_std", None)
        if do_normalize and (mean is None or std is None):
            problems.append("normalisation without mean/std")
        return cls(size=(int(height), int(width)),
                   keep_aspect_ratio=bool(getattr(processor, "keep_aspect_ratio", False)),
                   multiple=int(getattr(processor, "ensure_multiple_of", 1) or 1),
                   filter=_FILTERS.get(resample, f"PIL resample {resample}"),
                   rescale=float(getattr(processor, "rescale_factor", 1 / 255)) if do_rescale else None,
                   mean=_three(mean) if do_normalize and mean is not None else None,
                   std=_three(std) if do_normalize and std is not None else None,
                   problems=problems)

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """DPT's resize rule: the target, or with ``keep_aspect_ratio`` the side that changes least, to a multiple."""
        sh, sw = self.size[0] / height, self.size[1] / width
        if self.keep_aspect_ratio:
            if abs(1 - sw) < abs(1 - sh):
                sh = sw
            else:
                sw = sh
        return _constrain(sh * height, self.multiple), _constrain(sw * width, self.multiple)

    def describe(self) -> dict[str, Any]:
        return {"size": list(self.size), "resize": "keep aspect ratio" if self.keep_aspect_ratio else "stretch",
                "ensure_multiple_of": self.multiple, "filter": self.filter, "antialias": True,
                "rescale": self.rescale, "mean": list(self.mean) if self.mean else None,
                "std": list(self.std) if self.std else None}

    def apply(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (B, 3, H, W) -> float32 (B, 3, h, w), exactly as the torchvision image processor computes it."""
        from torchvision.transforms.v2 import functional as tvF

        mode = getattr(tvF.InterpolationMode, self.filter.upper())
        x = tvF.resize(images, list(self.output_size(*images.shape[-2:])), interpolation=mode, antialias=True)
        x = x.to(torch.float32)
        if self.mean is not None and self.std is not None:
            mean, std = self._mean_std(x.device)
            return (x - mean) / std
        return x * self.rescale if self.rescale is not None else x

    def _mean_std(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """(3, 1, 1) tensors made once per device: a fresh host-to-device copy per batch would sync the stream."""
        key = str(device)
        if key not in self._constants:
            assert self.mean is not None and self.std is not None
            rescale = self.rescale or 1.0  # the processor fuses rescale into mean and std like this
            mean = torch.tensor(self.mean) * (1.0 / rescale)
            std = torch.tensor(self.std) * (1.0 / rescale)
            self._constants[key] = (mean[:, None, None].to(device), std[:, None, None].to(device))
        return self._constants[key]


# --- the loaded model -----------------------------------------------------------------------------------------------

def pick_device(requested: str) -> torch.device:
    if requested not in ("auto", "cpu", "cuda", "mps"):
        raise DkpError(f"--device {requested}: choose auto, cpu, cuda or mps")
    mps = getattr(torch.backends, "mps", None)
    has_mps = bool(mps and mps.is_available())
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "mps" if has_mps else "cpu")
    if requested == "cuda" and not torch.cuda.is_available():
        raise DkpError("--device cuda: no CUDA device is available (use --device cpu or auto)")
    if requested == "mps" and not has_mps:
        raise DkpError("--device mps: Apple's Metal backend is not available here")
    return torch.device(requested)


def pick_dtype(device: torch.device, precision: str) -> torch.dtype:
    if precision not in ("auto", "fp16", "fp32"):
        raise DkpError(f"--precision {precision}: choose auto, fp16 or fp32")
    if precision == "fp16" and device.type == "cpu":
        raise DkpError("--precision fp16 needs a GPU (half precision on CPU is slow and poorly supported)")
    half = precision == "fp16" or (precision == "auto" and device.type == "cuda")
    return torch.float16 if half else torch.float32


def _transformers() -> Any:
    try:
        import transformers
    except ImportError:
        raise DkpError("`dkp depth` needs transformers: pip install 'dkp-tui[depth]'") from None
    transformers.utils.logging.disable_progress_bar()
    return transformers


def load_processor(source: ModelSource) -> tuple[Any, dict[str, Any]]:
    """The image processor and the model's identity for the cache manifest (weights not loaded yet)."""
    transformers = _transformers()
    assert source.directory is not None
    try:
        processor = transformers.AutoImageProcessor.from_pretrained(str(source.directory), local_files_only=True)
        config = transformers.AutoConfig.from_pretrained(str(source.directory), local_files_only=True)
    except (OSError, ValueError, KeyError) as err:
        raise DkpError(f"{source.directory}: cannot read the model's processor/config "
                       f"({str(err).splitlines()[0] if str(err) else type(err).__name__})") from None
    backbone = getattr(config, "backbone_config", None)
    info = {"id": source.repo_id or source.name, "revision": source.revision,
            "weights_sha256": weights_sha256(source.directory),
            "model_type": getattr(config, "model_type", None),
            "backbone": getattr(backbone, "model_type", None) if backbone is not None else None}
    return processor, info


def load_model(source: ModelSource, device: torch.device, dtype: torch.dtype) -> torch.nn.Module:
    transformers = _transformers()
    try:
        model = transformers.AutoModelForDepthEstimation.from_pretrained(
            str(source.directory), local_files_only=True, dtype=dtype)
    except (OSError, ValueError, KeyError) as err:
        raise DkpError(f"{source.directory}: cannot load a depth-estimation model "
                       f"({str(err).splitlines()[0] if str(err) else type(err).__name__})") from None
    return model.to(device).eval()


class Pending:
    """A submitted batch; on CUDA its results are still being copied to pinned host memory."""

    def __init__(self, codes: torch.Tensor, constant: torch.Tensor, finite: torch.Tensor) -> None:
        self.event = None
        if codes.is_cuda:
            host = [torch.empty(t.shape, dtype=t.dtype, pin_memory=True) for t in (codes, constant, finite)]
            for h, t in zip(host, (codes, constant, finite), strict=True):
                h.copy_(t, non_blocking=True)
            self.event = torch.cuda.Event()
            self.event.record()
            codes, constant, finite = host
        else:
            codes, constant, finite = codes.cpu(), constant.cpu(), finite.cpu()
        self.codes, self.constant, self.finite = codes, constant, finite

    def result(self) -> tuple[np.ndarray, int]:
        if self.event is not None:
            self.event.synchronize()
        if not bool(self.finite.all()):
            raise DkpError("the depth model produced NaN or inf for some images; with fp16 on CUDA, rerun with "
                           "--precision fp32")
        return self.codes.numpy().astype(np.uint16), int(self.constant.sum())


class DepthEstimator:
    """A depth model and its input transform: ``load`` (prefetch thread) then ``submit`` (main thread)."""

    def __init__(self, model: torch.nn.Module, processor: Any, device: torch.device, dtype: torch.dtype) -> None:
        self.model = model
        self.processor = processor
        self.device = device
        self.dtype = dtype
        self.transform = InputTransform.from_processor(processor)
        self.batched = not self.transform.problems
        self.check: dict[str, Any] = {}

    def processor_pixels(self, images: torch.Tensor) -> torch.Tensor:
        """The processor itself on uint8 (B, 3, H, W) CPU images: the reference, and the fallback path."""
        return self.processor(images=images, return_tensors="pt")["pixel_values"].to(torch.float32)

    def verify(self, sample: np.ndarray) -> dict[str, Any]:
        """Use batched preprocessing only if it reproduces the processor on these (N, H, W, 3) uint8 images."""
        images = torch.from_numpy(np.array(sample)).permute(0, 3, 1, 2).contiguous()
        reference = self.processor_pixels(images)
        if self.transform.problems:
            self.check = {"path": "processor", "reason": "; ".join(self.transform.problems)}
            self.batched = False
            return self.check
        try:
            ours = self.transform.apply(images.to(self.device)).cpu()
        except (RuntimeError, NotImplementedError) as err:  # e.g. a filter the device lacks
            self.check = {"path": "processor", "reason": f"{type(err).__name__}: {err}"[:200]}
            self.batched = False
            return self.check
        if ours.shape != reference.shape:
            self.check = {"path": "processor", "reason": f"shape {tuple(ours.shape)} vs {tuple(reference.shape)}"}
            self.batched = False
            return self.check
        diff = (ours - reference).abs()
        mean, worst = float(diff.mean()), float(diff.max())
        self.batched = mean <= VERIFY_MEAN_TOL and worst <= VERIFY_MAX_TOL
        self.check = {"path": "batched on device" if self.batched else "processor", "images": len(sample),
                      "mean_abs_diff": mean, "max_abs_diff": worst}
        return self.check

    def load(self, images: np.ndarray) -> torch.Tensor:
        """(N, H, W, 3) uint8 frames to what ``submit`` takes; runs in the prefetch thread, overlapping the model."""
        x = torch.from_numpy(np.array(images))  # a copy: memory-mapped frames are read-only
        if not self.batched:
            return self.processor_pixels(x.permute(0, 3, 1, 2).contiguous())
        if self.device.type == "cpu":  # the device is the CPU: preprocess here, in the background
            return self.transform.apply(x.permute(0, 3, 1, 2).contiguous())
        return x.pin_memory() if self.device.type == "cuda" else x

    @torch.inference_mode()
    def submit(self, loaded: torch.Tensor, frame_hw: tuple[int, int]) -> Pending:
        """Preprocess (if not done), run the model, bring the maps to ``frame_hw``, normalise and encode."""
        x = loaded.to(self.device, non_blocking=True)
        if x.dtype == torch.uint8:  # (B, H, W, 3) frames: preprocess on the device
            x = self.transform.apply(x.permute(0, 3, 1, 2).contiguous())
        depth = self.forward(x.to(self.dtype)).to(torch.float32)  # (B, h, w) relative inverse depth
        d, constant, finite = minmax_normalise(resize_maps(depth, frame_hw))  # (B, H, W) in [0, 1]
        return Pending(encode_unit(d), constant, finite)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """The bare model call (one per batch; the tests count these)."""
        return self.model(pixel_values=pixel_values).predicted_depth

