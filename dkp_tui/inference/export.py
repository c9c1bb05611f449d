"""`dkp export`: a run's detector as a self-describing ONNX model, verified against PyTorch before it is kept.

Only the detector runs at inference (the decoder and edge rasteriser are training-time only), so the export is
the detector plus the two conversions a deployment would otherwise have to re-implement: soft-argmax keypoints as
(x, y) pixels of the input, and the softmax heatmaps. Input ``image`` (B, 3, S, S) float32 RGB in [-1, 1] with a
dynamic batch axis; outputs ``keypoints`` (B, K, 2), ``heatmaps`` (B, K, S/4, S/4) and ``confidence`` (B, K), each
keypoint's heatmap mass near it (``dkp_tui.model.confidence``).

Pixel convention, the same as `dkp infer`: (0, 0) is the centre of the top-left pixel, and the detector's (y, x) in
[-1, 1] map to the centres of the border pixels, ``x = (u + 1) / 2 * (S - 1)``.

The file is written to a temporary name, run with onnxruntime on a few inputs and compared with PyTorch, and
renamed into place only when every keypoint agrees within ``KEYPOINT_TOLERANCE_PX``; a model that does not match
is never left behind.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import json
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from dkp_tui.config import Config
from dkp_tui.errors import DkpError
from dkp_tui.extras import require
from dkp_tui.formats.run_dir import ONNX
from dkp_tui.inference.onnx_detector import (
    CONFIDENCE_OUTPUT,
    EXPORT_FORMAT,
    EXPORT_VERSION,
    INPUT_NAME,
    JOINTS_OUTPUT,
    OUTPUT_NAMES,
)
from dkp_tui.version import __version__

FORMATS = ("onnx",)
DEFAULT_OPSET = 18  # the torch.export-based exporter's own opset; onnxruntime >= 1.14 runs it
MIN_OPSET = 18
# dkp infer reports keypoints to 3 decimals (1e-3 px); an export whose keypoints move by less than that prints the
# same numbers. fp32 re-ordering of the same arithmetic measures ~1e-5 px at 64-128 px, so 1e-3 px leaves 100x
# headroom for other CPUs while any real conversion error (a wrong op, a lost BN statistic) is orders larger.
KEYPOINT_TOLERANCE_PX = 1e-3
HEATMAP_TOLERANCE = 1e-4  # absolute, on probabilities that sum to 1 per keypoint
PREPROCESSING = (
    "RGB uint8 frame -> square S x S (dkp infer --crop center: the largest centred square, top = (H - s) // 2, "
    "left = (W - s) // 2; --crop none: the whole frame squashed), resized with PIL's Image.BILINEAR "
    "(antialiased when shrinking; dkp_tui.data.images.to_storage, as dkp prepare stores frames); then "
    "x = pixel / 127.5 - 1 as float32, NCHW, channels in RGB order"
)
COORDINATES = (
    "keypoints: (x, y) in pixels of the S x S input, x right, y down, (0, 0) the centre of the top-left pixel; "
    "heatmaps: softmax probabilities over the S/4 x S/4 grid (sum 1 per keypoint), whose border cells are centred "
    "on the input's border pixels; confidence: the heatmap probability within 2 heatmap cells of each keypoint "
    "(0..1; dkp_tui.model.confidence)"
)


class ExportedDetector(nn.Module):
    """The detector with its outputs in deployment units: (x, y) pixels, softmax heatmaps and each keypoint's
    confidence; with a joints map (`dkp joints fit`) a fourth output, the named joints (B, J, 2) as (x, y) pixels."""

    def __init__(self, detector: nn.Module, joint_map: Any = None) -> None:
        super().__init__()
        self.detector = detector
        self.scale = float(detector.image_size - 1) / 2.0
        self.has_joints = joint_map is not None
        if joint_map is not None:
            self.register_buffer("joint_weight", torch.as_tensor(joint_map.weight, dtype=torch.float32))
            self.register_buffer("joint_bias", torch.as_tensor(joint_map.bias, dtype=torch.float32))

    def forward(self, image: Tensor) -> tuple[Tensor, ...]:
        from dkp_tui.model.confidence import heatmap_confidence

        out = self.detector(image)
        yx = out.keypoints  # (B, K, 2) (y, x) in [-1, 1]
        xy = torch.stack([yx[..., 1], yx[..., 0]], dim=-1)
        confidence = heatmap_confidence(out.probs.flatten(2), yx, self.detector.grid, self.detector.heatmap_size)
        if not self.has_joints:
            return (xy + 1.0) * self.scale, out.probs, confidence
        u = (yx * 0.5 + 0.5).reshape(yx.shape[0], -1)  # the joints map's features (dkp_tui.formats.joint_map)
        jyx = (u @ self.joint_weight + self.joint_bias).reshape(yx.shape[0], -1, 2)
        return (xy + 1.0) * self.scale, out.probs, confidence, torch.stack([jyx[..., 1], jyx[..., 0]], dim=-1)


@dataclass
class ExportResult:
    path: str
    format: str
    opset: int
    n_keypoints: int
    image_size: int
    role: str | None
    step: int
    bytes: int
    export_s: float
    verify_s: float
    max_diff_keypoints_px: float
    max_diff_heatmaps: float
    max_diff_confidence: float
    max_diff_joints_px: float | None
    tolerance_keypoints_px: float
    tolerance_heatmaps: float
    verified_batches: list[int]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def default_out(run: str | Path) -> Path:
    """Next to the weights: ``RUN/model.onnx`` for a run directory, ``X.onnx`` for ``X.safetensors``."""
    run = Path(run)
    return run / ONNX if run.is_dir() else run.with_suffix(".onnx")


def joint_names(dataset: str) -> list[str]:
    """The data set's labelled joints, where it has them and is on this machine (context only: the keypoints are
    unsupervised; `dkp eval`'s regression is what maps them to these joints)."""
    from dkp_tui.formats.dataset_dir import read_manifest

    try:
        return list(read_manifest(dataset).joint_names)
    except DkpError:
        return []


def metadata(cfg: Config, meta: dict[str, str], edge_weights: np.ndarray, run: str | Path) -> dict[str, str]:
    """Everything a deployment needs to use the file alone, as ONNX string metadata (JSON where structured)."""
    size, k = cfg.model.image_size, cfg.model.n_keypoints
    return {
        "dkp.format": EXPORT_FORMAT,
        "dkp.format_version": str(EXPORT_VERSION),
        "dkp.version": __version__,
        "dkp.role": str(meta.get("role") or ""),
        "dkp.step": str(int(meta.get("step", 0))),
        "dkp.source": str(run),
        "dkp.n_keypoints": str(k),
        "dkp.image_size": str(size),
        "dkp.heatmap_size": str(size // 4),
        "dkp.input": json.dumps({"name": INPUT_NAME, "shape": ["batch", 3, size, size], "dtype": "float32",
                                 "layout": "NCHW", "channels": "RGB", "range": [-1.0, 1.0]}),
        "dkp.preprocessing": PREPROCESSING,
        "dkp.coordinates": COORDINATES,
        "dkp.edge_weights": json.dumps(np.asarray(edge_weights, dtype=np.float64).tolist()),
        "dkp.joint_names": json.dumps(joint_names(cfg.data.dataset)),
        "dkp.dataset": str(cfg.data.dataset),
        "dkp.config": cfg.to_json(),
    }


def output_names(model: ExportedDetector) -> list[str]:
    """The graph's outputs in ``ExportedDetector.forward``'s order."""
    return [*OUTPUT_NAMES, CONFIDENCE_OUTPUT, *([JOINTS_OUTPUT] if model.has_joints else [])]


def _torch_export(model: ExportedDetector, size: int, opset: int) -> Any:
    """The ONNX proto via the torch.export-based exporter (torch's supported path; needs onnxscript).

    torch < 2.5's ``torch.onnx.export`` takes no ``dynamic_shapes`` (2.5 added it, 2.6 ``optimize``): there the
    TorchScript exporter writes the same graph with the same dynamic batch axis, and the export is verified
    against PyTorch either way.
    """
    outputs = output_names(model)
    require("onnx")
    require("onnxscript")
    example = torch.zeros(2, 3, size, size)
    params = inspect.signature(torch.onnx.export).parameters
    if "dynamic_shapes" not in params:
        return _torchscript_export(model, example, opset, outputs)
    batch = torch.export.Dim("batch", min=1, max=65536)
    optimize = {"optimize": True} if "optimize" in params else {}
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        program = torch.onnx.export(model, (example,), input_names=[INPUT_NAME], output_names=outputs,
                                    dynamic_shapes={"image": {0: batch}}, opset_version=opset, dynamo=True,
                                    verbose=False, **optimize)
    if program is None:
        raise RuntimeError("torch.onnx.export returned no program")
    return program.model_proto


def _torchscript_export(model: ExportedDetector, example: torch.Tensor, opset: int, outputs: list[str]) -> Any:
    import onnx

    buffer = io.BytesIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (example,), buffer, input_names=[INPUT_NAME], output_names=outputs,
                          dynamic_axes={INPUT_NAME: {0: "batch"}, **{n: {0: "batch"} for n in outputs}},
                          opset_version=opset)
    return onnx.load_from_string(buffer.getvalue())


def verification_inputs(size: int, seed: int = 0) -> list[np.ndarray]:
    """A few inputs of different batch sizes (the dynamic axis must work): noise, a smooth gradient, mid grey."""
    rng = np.random.default_rng(seed)
    noise = rng.uniform(-1.0, 1.0, (3, 3, size, size)).astype(np.float32)
    ramp = np.linspace(-1.0, 1.0, size, dtype=np.float32)
    gradient = np.broadcast_to(ramp[None, None, :, None] * ramp[None, None, None, :], (1, 3, size, size))
    grey = np.zeros((2, 3, size, size), dtype=np.float32)
    return [noise, np.ascontiguousarray(gradient), grey]


def compare(model: ExportedDetector, onnx_path: Path,
            inputs: list[np.ndarray]) -> tuple[float, float, float, float]:
    """Max |onnxruntime - PyTorch| over the inputs: (keypoints in px, heatmaps, confidence, joints in px or 0
    without)."""
    from dkp_tui.inference.onnx_detector import OnnxDetector

    runtime = OnnxDetector.open(onnx_path, "cpu")
    names = output_names(model)
    diffs = dict.fromkeys(names, 0.0)
    for x in inputs:
        with torch.inference_mode():
            ref = [t.numpy() for t in model(torch.from_numpy(x))]
        got = runtime.session.run(names, {INPUT_NAME: x.astype(np.float32)})
        if [g.shape for g in got] != [r.shape for r in ref]:
            raise DkpError(f"the exported model's outputs have shapes {[g.shape for g in got]}; "
                           f"PyTorch gives {[r.shape for r in ref]}")
        for name, g, r in zip(names, got, ref, strict=True):
            diffs[name] = max(diffs[name], float(np.max(np.abs(g - r))))
    return (diffs[OUTPUT_NAMES[0]], diffs[OUTPUT_NAMES[1]], diffs[CONFIDENCE_OUTPUT],
            diffs.get(JOINTS_OUTPUT, 0.0))


def export_run(run: str | Path, out: str | Path | None = None, fmt: str = "onnx", opset: int = DEFAULT_OPSET,
               keypoint_tolerance: float = KEYPOINT_TOLERANCE_PX, joints_file: str | Path | None = None) -> ExportResult:
    """Export, verify against PyTorch on CPU, and only then rename into place; ``joints_file`` (`dkp joints fit`)
    bakes the named-joints map in as a third output, checked like the keypoints."""
    from dkp_tui.atomic import atomic_path
    from dkp_tui.inference.predict import load_detector, load_edge_weights

    if fmt not in FORMATS:
        raise DkpError(f"--format must be one of {', '.join(FORMATS)} (got {fmt!r})")
    if opset < MIN_OPSET:
        raise DkpError(f"--opset {opset}: the torch.export-based exporter writes opset {MIN_OPSET} or newer")
    onnx = require("onnx")
    require("onnxruntime")
    detector, cfg, meta = load_detector(run, "cpu")
    joint_map = None
    if joints_file is not None:
        from dkp_tui.formats.joint_map import check_compatible, load_map

        joint_map = load_map(joints_file)
        check_compatible(joint_map, cfg.model.n_keypoints, cfg.model.image_size, str(joints_file))
    model = ExportedDetector(detector, joint_map).eval()
    size = cfg.model.image_size
    out_path = Path(out) if out is not None else default_out(run)
    if out_path.suffix != ".onnx":
        raise DkpError(f"--out {out_path}: an ONNX model's file name ends in .onnx")
    if out_path.is_dir():
        raise DkpError(f"--out {out_path} is a directory; give a file name ending in .onnx")

    t0 = time.perf_counter()
    try:
        proto = _torch_export(model, size, opset)
    except DkpError:
        raise
    except Exception as err:  # the exporter's failures are many and untyped; the user gets one line
        raise DkpError(f"ONNX export failed: {type(err).__name__}: {str(err).splitlines()[0][:300]}") from None
    props = metadata(cfg, meta, load_edge_weights(run), run)
    if joint_map is not None:
        props["dkp.joints"] = json.dumps({"output": JOINTS_OUTPUT, "file": str(joints_file),
                                          "joint_names": joint_map.joint_names,
                                          "skeleton": [list(e) for e in joint_map.skeleton],
                                          "coordinates": "(x, y) pixels of the S x S input, as keypoints"})
    for key, value in props.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.producer_name, proto.producer_version = "dkp", __version__
    proto.doc_string = f"dkp {meta.get('role') or 'detector'} keypoint detector (K={cfg.model.n_keypoints}, S={size})"
    with atomic_path(out_path) as tmp:
        onnx.save_model(proto, str(tmp))
        export_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        inputs = verification_inputs(size)
        kp_diff, hm_diff, conf_diff, joint_diff = compare(model, tmp, inputs)
        verify_s = time.perf_counter() - t1
        if not kp_diff <= keypoint_tolerance or not hm_diff <= HEATMAP_TOLERANCE or \
                not joint_diff <= keypoint_tolerance or not conf_diff <= HEATMAP_TOLERANCE:
            raise DkpError(f"the exported model does not match PyTorch: max keypoint difference {kp_diff:.3g} px "
                           f"(tolerance {keypoint_tolerance:g}), heatmaps {hm_diff:.3g} "
                           f"(tolerance {HEATMAP_TOLERANCE:g}), confidence {conf_diff:.3g}, joints "
                           f"{joint_diff:.3g} px; nothing written")
        n_bytes = tmp.stat().st_size
    return ExportResult(str(out_path), fmt, opset, cfg.model.n_keypoints, size, meta.get("role"),
                        int(meta.get("step", 0)), n_bytes, export_s, verify_s, kp_diff, hm_diff, conf_diff,
                        joint_diff if joint_map is not None else None, keypoint_tolerance, HEATMAP_TOLERANCE, [len(x) for x in inputs])
