"""A detector exported by `dkp export`, run with onnxruntime: no torch import anywhere on this path.

This is what a deployment needs (``pip install onnxruntime numpy``): the file carries its own preprocessing
contract, keypoint count, input size and learned edge weights in its metadata, so nothing else from the run is read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dkp_tui.errors import DkpError
from dkp_tui.extras import require

EXPORT_FORMAT = "dkp-detector"  # the value of the ``dkp.format`` metadata key
EXPORT_VERSION = 1
INPUT_NAME = "image"
OUTPUT_NAMES = ("keypoints", "heatmaps")
CONFIDENCE_OUTPUT = "confidence"  # (B, K) heatmap confidence per keypoint (dkp_tui.model.confidence); since 0.1.0+31
JOINTS_OUTPUT = "joints"  # exported with `dkp export --joints FILE`: (B, J, 2) named joints, (x, y) pixels


def uint8_to_array(frames: np.ndarray) -> np.ndarray:
    """B x H x W x 3 uint8 RGB to B x 3 x H x W float32 in [-1, 1]: the same float32 arithmetic as
    ``predict.uint8_to_input``, so both routes feed identical numbers."""
    x = np.ascontiguousarray(frames).transpose(0, 3, 1, 2).astype(np.float32)
    return np.ascontiguousarray(x / np.float32(127.5) - np.float32(1.0))


def pixels_to_unit(xy: np.ndarray, size: int) -> np.ndarray:
    """(..., 2) exported (x, y) pixels of the S x S input to the detector's (y, x) in [-1, 1]."""
    xy = np.asarray(xy, dtype=np.float64)
    return np.stack([xy[..., 1] / (size - 1) * 2.0 - 1.0, xy[..., 0] / (size - 1) * 2.0 - 1.0], axis=-1)


@dataclass
class OnnxDetector:
    """An onnxruntime session on an exported detector, with the metadata `dkp infer` needs."""

    path: Path
    session: Any
    metadata: dict[str, str]
    image_size: int
    n_keypoints: int
    edge_weights: np.ndarray  # K x K
    role: str | None
    step: int

    @classmethod
    def open(cls, path: str | Path, device: str = "auto") -> OnnxDetector:
        ort = require("onnxruntime")
        path = Path(path)
        if not path.is_file():
            raise DkpError(f"ONNX model not found: {path}")
        available = ort.get_available_providers()
        if device in ("auto", "cpu"):
            providers = (["CUDAExecutionProvider"] if device == "auto" and "CUDAExecutionProvider" in available
                         else []) + ["CPUExecutionProvider"]
        elif device.startswith("cuda"):
            if "CUDAExecutionProvider" not in available:
                raise DkpError(f"--device {device}: this onnxruntime has no CUDA provider (available: "
                               f"{', '.join(available)}); install onnxruntime-gpu or use --device cpu")
            providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
        else:
            raise DkpError(f"--device {device}: ONNX models run on auto, cpu or cuda")
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only: onnxruntime's info lines would land in the user's output
        try:
            session = ort.InferenceSession(str(path), options, providers=providers)
        except Exception as err:  # onnxruntime raises its own untyped errors for unreadable files
            raise DkpError(f"{path}: not a readable ONNX model ({str(err).splitlines()[0][:200]})") from None
        meta = dict(session.get_modelmeta().custom_metadata_map)
        if meta.get("dkp.format") != EXPORT_FORMAT:
            raise DkpError(f"{path}: not a detector exported by `dkp export` (no dkp.format metadata)")
        if int(meta.get("dkp.format_version", "0")) > EXPORT_VERSION:
            raise DkpError(f"{path}: exported by a newer dkp ({meta.get('dkp.version')}); upgrade dkp")
        try:
            size, k = int(meta["dkp.image_size"]), int(meta["dkp.n_keypoints"])
            weights = np.asarray(json.loads(meta["dkp.edge_weights"]), dtype=np.float64).reshape(k, k)
        except (KeyError, ValueError) as err:
            raise DkpError(f"{path}: incomplete dkp metadata ({err})") from None
        return cls(path, session, meta, size, k, weights, meta.get("dkp.role") or None,
                   int(meta.get("dkp.step", "0")))

    def run(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(keypoints B x K x 2 as (x, y) pixels, heatmaps B x K x h x w) for B x 3 x S x S float32 in [-1, 1]."""
        keypoints, heatmaps = self.session.run(list(OUTPUT_NAMES), {INPUT_NAME: images.astype(np.float32)})
        return keypoints, heatmaps

    @property
    def has_confidence(self) -> bool:
        return CONFIDENCE_OUTPUT in {o.name for o in self.session.get_outputs()}

    def detect(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(keypoints B x K x 2 as (y, x) in [-1, 1], as the torch detector gives them, and their confidence B x K)
        of B x S x S x 3 uint8 frames. A model exported before it had a confidence output gets the same definition
        computed here from its heatmaps (``model.confidence`` imports no torch)."""
        images = uint8_to_array(frames)
        if self.has_confidence:
            keypoints, confidence = self.session.run([OUTPUT_NAMES[0], CONFIDENCE_OUTPUT], {INPUT_NAME: images})
            return pixels_to_unit(keypoints, self.image_size), confidence
        from dkp_tui.model.confidence import cell_centres, heatmap_confidence

        keypoints, heatmaps = self.run(images)
        b, k, h, w = heatmaps.shape
        unit = pixels_to_unit(keypoints, self.image_size)
        return unit, heatmap_confidence(heatmaps.reshape(b, k, h * w).astype(np.float64), unit, cell_centres(h, w), h)
