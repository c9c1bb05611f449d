"""Closed-form least squares for the keypoint-regression protocols, in float64, with explicit fallbacks.

The reference computes ``(XᵀX).inverse()`` in float32 inside ``try/except`` and takes a ridge fallback when the
inverse raises. That decision depends on float32 round-off, so dkp decides it explicitly: the normal matrix is
*singular* when ``X`` has numerical rank below its column count (numpy's SVD tolerance). Only then is the
protocol's fallback used, and it is logged and reported, so a number computed with a fallback is never silent.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

log = logging.getLogger("dkp.eval")


@dataclass
class LinearFit:
    """``beta`` maps features (P columns) to targets (T columns); ``fallback`` says how it was obtained."""

    beta: np.ndarray  # P x T float64
    fallback: str | None = None  # None = ordinary least squares; "ridge=<lam>" or "lstsq-min-norm"

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x, dtype=np.float64) @ self.beta


def features(keypoints: np.ndarray, scale: float = 1.0, bias: bool = False) -> np.ndarray:
    """The protocols' feature vector: u = kp * 0.5 + 0.5 per coordinate, flattened (N x 2K), times ``scale``.

    The +0.5 shift matters for fits without a bias column; the scale only changes the ridge fallbacks.
    """
    kp = np.asarray(keypoints, dtype=np.float64)
    if kp.ndim != 3 or kp.shape[2] != 2:
        raise ValueError(f"keypoints must be N x K x 2, got {kp.shape}")
    x = (kp * 0.5 + 0.5).reshape(kp.shape[0], -1) * scale
    if bias:
        x = np.concatenate([x, np.ones((x.shape[0], 1))], axis=1)
    return x


def is_singular(x: np.ndarray) -> bool:
    """True when XᵀX cannot be inverted: fewer rows than columns, or rank deficiency at SVD tolerance."""
    n, p = x.shape
    if n < p:
        return True
    if not np.all(np.isfinite(x)):
        return True
    return int(np.linalg.matrix_rank(x)) < p


def least_squares(x: np.ndarray, y: np.ndarray, ridge: float | None = None, what: str = "",
                  log_fallback: bool = True) -> LinearFit:
    """β = (XᵀX)⁻¹Xᵀy by a linear solve; on a singular XᵀX, ridge ``(XᵀX + ridge·I)⁻¹Xᵀy`` if given, else the
    minimum-norm least-squares solution. ``y`` may be 1-D (one target) or N x T. A fallback is logged unless
    the caller logs a summary itself (``log_fallback=False``); it is always reported in ``LinearFit.fallback``.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    squeeze = y.ndim == 1
    y2 = y[:, None] if squeeze else y
    if x.ndim != 2 or y2.ndim != 2 or x.shape[0] != y2.shape[0]:
        raise ValueError(f"least_squares: X {x.shape} and y {y.shape} do not match")
    if not np.all(np.isfinite(y2)):
        raise ValueError("least_squares: targets contain NaN or inf")
    xtx = x.T @ x
    xty = x.T @ y2
    fallback: str | None = None
    beta: np.ndarray | None = None
    if not is_singular(x):
        try:
            beta = np.linalg.solve(xtx, xty)
        except np.linalg.LinAlgError:
            beta = None
    if beta is None:
        if ridge is not None:
            fallback = f"ridge={ridge:g}"
            beta = np.linalg.solve(xtx + ridge * np.eye(xtx.shape[0]), xty)
        else:
            fallback = "lstsq-min-norm"
            beta = np.linalg.lstsq(x, y2, rcond=None)[0]
        if log_fallback:
            log.warning("singular normal matrix%s (%d rows, %d columns, rank %d): using %s",
                        f" for {what}" if what else "", x.shape[0], x.shape[1],
                        int(np.linalg.matrix_rank(x)) if x.size and np.all(np.isfinite(x)) else 0, fallback)
    return LinearFit(beta[:, 0] if squeeze else beta, fallback)
