"""The joints file `dkp joints fit` writes and `dkp infer` / `dkp export` read: an affine map from a detector's K
keypoints to J named joints, as safetensors (never pickle) with its names and skeleton in the metadata.

How the map is fitted and scored is ``dkp_tui.eval.joints``; this module is the file and its application.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dkp_tui.atomic import atomic_path
from dkp_tui.errors import DkpError

JOINTS_FORMAT = "dkp-joints"
JOINTS_VERSION = 1


@dataclass
class JointMap:
    """``predict(keypoints)`` -> N x J x 2 (y, x) stored pixels."""

    weight: np.ndarray  # 2K x 2J float64 (zero rows when fitted without keypoints)
    bias: np.ndarray  # 2J float64
    joint_names: list[str] = field(default_factory=list)
    skeleton: list[tuple[int, int]] = field(default_factory=list)
    image_size: int = 0
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def n_keypoints(self) -> int:
        return self.weight.shape[0] // 2

    @property
    def n_joints(self) -> int:
        return self.bias.shape[0] // 2

    def predict(self, keypoints: np.ndarray | None, n: int | None = None) -> np.ndarray:
        if keypoints is None:
            return np.broadcast_to(self.bias.reshape(1, -1, 2), (n or 1, self.n_joints, 2)).copy()
        x = features(keypoints)
        if x.shape[1] != self.weight.shape[0]:
            raise DkpError(f"the joints map is for K={self.n_keypoints} keypoints, the detector gives "
                           f"{x.shape[1] // 2}")
        return (x @ self.weight + self.bias).reshape(len(x), -1, 2)


def features(keypoints: np.ndarray) -> np.ndarray:
    """The map's input: u = (y, x) * 0.5 + 0.5 of [-1, 1] keypoints, flattened (y0, x0, y1, x1, ...)."""
    kp = np.asarray(keypoints, dtype=np.float64)
    return (kp * 0.5 + 0.5).reshape(kp.shape[0], -1)


def save_map(path: str | Path, m: JointMap) -> None:
    """safetensors (never pickle): ``weight`` 2K x 2J and ``bias`` 2J, float64; the rest as string metadata."""
    from safetensors.numpy import save_file

    meta = {"dkp.format": JOINTS_FORMAT, "dkp.format_version": str(JOINTS_VERSION),
            "joint_names": json.dumps(m.joint_names), "skeleton": json.dumps([list(e) for e in m.skeleton]),
            "n_keypoints": str(m.n_keypoints), "image_size": str(m.image_size),
            "features": "u = (y, x) * 0.5 + 0.5 of the detector's [-1, 1] keypoints, flattened (y0, x0, y1, ...)",
            "output": "(y, x) pixels of the S x S detector input, (0, 0) the centre of the top-left pixel",
            **{k: v if isinstance(v, str) else json.dumps(v) for k, v in m.meta.items()}}
    with atomic_path(Path(path)) as tmp:
        save_file({"weight": np.ascontiguousarray(m.weight), "bias": np.ascontiguousarray(m.bias)}, str(tmp),
                  metadata=meta)


def load_map(path: str | Path) -> JointMap:
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise DkpError(f"{path}: no such joints file (make one with `dkp joints fit`)")
    try:
        with safe_open(str(path), framework="numpy") as fh:
            meta = dict(fh.metadata() or {})
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118 - safe_open has no __iter__
    except (SafetensorError, OSError, ValueError) as err:
        raise DkpError(f"{path}: not a readable joints file ({err})") from None
    if meta.get("dkp.format") != JOINTS_FORMAT:
        raise DkpError(f"{path}: not a joints file written by `dkp joints fit` (no dkp.format metadata)")
    if int(meta.get("dkp.format_version", "0")) > JOINTS_VERSION:
        raise DkpError(f"{path}: written by a newer dkp; upgrade dkp")
    try:
        weight, bias = np.asarray(tensors["weight"], np.float64), np.asarray(tensors["bias"], np.float64)
        names = json.loads(meta["joint_names"])
        skeleton = [tuple(int(v) for v in e) for e in json.loads(meta.get("skeleton", "[]"))]
        k, size = int(meta["n_keypoints"]), int(meta["image_size"])
    except (KeyError, ValueError, TypeError) as err:
        raise DkpError(f"{path}: incomplete joints file ({err})") from None
    if weight.ndim != 2 or bias.ndim != 1 or weight.shape != (2 * k, bias.shape[0]) or len(names) * 2 != len(bias):
        raise DkpError(f"{path}: weight {weight.shape} and bias {bias.shape} do not fit K={k}, J={len(names)}")
    extra = {key: meta[key] for key in meta if key not in ("joint_names", "skeleton", "n_keypoints", "image_size")}
    return JointMap(weight, bias, names, skeleton, size, extra)


def check_compatible(m: JointMap, n_keypoints: int, image_size: int, where: str) -> None:
    """A joints file fitted for another detector shape would silently map the wrong numbers: refuse it."""
    if m.n_keypoints != n_keypoints or m.image_size != image_size:
        raise DkpError(f"{where}: made for K={m.n_keypoints} keypoints at {m.image_size} px, but the model has "
                       f"K={n_keypoints} at {image_size} px; fit one for this model with `dkp joints fit`")
