"""Keypoint overlays (training samples, `dkp infer --overlay`): pure numpy/OpenCV, no torch needed."""

from __future__ import annotations

import colorsys

import cv2
import numpy as np


def keypoint_colors(k: int) -> np.ndarray:
    """K distinct RGB colours (uint8, K x 3), stable across runs so a keypoint keeps its colour."""
    return np.array([[int(c * 255) for c in colorsys.hsv_to_rgb(i / max(k, 1), 0.85, 1.0)] for i in range(k)],
                    dtype=np.uint8)


def to_pixels(keypoints: np.ndarray, height: int, width: int) -> np.ndarray:
    """(y, x) in [-1, 1] (cell centres at +-1, align_corners style) to (x, y) float pixel coordinates."""
    y = (keypoints[..., 0] + 1.0) * 0.5 * (height - 1)
    x = (keypoints[..., 1] + 1.0) * 0.5 * (width - 1)
    return np.stack([x, y], axis=-1)


def strong_edges(weights: np.ndarray, threshold: float = 0.5) -> list[tuple[int, int, float]]:
    """Edges of the learned graph worth drawing: weight >= threshold x the largest weight."""
    k = weights.shape[0]
    top = float(np.max(weights[np.triu_indices(k, 1)])) if k > 1 else 0.0
    out = []
    for i in range(k):
        for j in range(i + 1, k):
            w = float(weights[i, j])
            if top > 0 and w >= threshold * top:
                out.append((i, j, w / top))
    return out


def draw_keypoints(image: np.ndarray, keypoints: np.ndarray, edges: list[tuple[int, int, float]] | None = None,
                   scale: int = 1, radius: int | None = None) -> np.ndarray:
    """Draw keypoints (K x 2, (y, x) in [-1, 1]) and weighted edges on an RGB uint8 image (returns a copy).

    ``scale`` upsamples first so that small (64 px) images stay readable.
    """
    img = np.ascontiguousarray(image[..., :3] if image.ndim == 3 else np.repeat(image[..., None], 3, axis=2))
    if scale > 1:
        img = cv2.resize(img, (img.shape[1] * scale, img.shape[0] * scale), interpolation=cv2.INTER_NEAREST)
    h, w = img.shape[:2]
    pts = to_pixels(np.asarray(keypoints, dtype=np.float64), h, w)
    colors = keypoint_colors(len(pts))
    r = radius or max(2, round(min(h, w) / 64))
    shift = 4  # sub-pixel drawing
    f = float(1 << shift)
    for i, j, strength in edges or []:
        p, q = pts[i], pts[j]
        if not (np.isfinite(p).all() and np.isfinite(q).all()):
            continue  # a hidden point (NaN) draws neither itself nor its edges
        colour = tuple(int(c) for c in (0.5 * (colors[i].astype(float) + colors[j].astype(float))))
        cv2.line(img, (int(p[0] * f), int(p[1] * f)), (int(q[0] * f), int(q[1] * f)), colour,
                 max(1, round(r * 0.6 * strength)), cv2.LINE_AA, shift)
    for c, p in zip(colors, pts, strict=True):
        if not np.isfinite(p).all():
            continue
        centre = (int(p[0] * f), int(p[1] * f))
        cv2.circle(img, centre, r * (1 << shift), (0, 0, 0), -1, cv2.LINE_AA, shift)
        cv2.circle(img, centre, max(1, r - 1) * (1 << shift), tuple(int(v) for v in c), -1, cv2.LINE_AA, shift)
    return img


def image_grid(images: list[np.ndarray], ncols: int = 4, pad: int = 2) -> np.ndarray:
    """Tile equally sized RGB images into one (for samples/ PNGs)."""
    if not images:
        raise ValueError("no images")
    h, w = images[0].shape[:2]
    nrows = (len(images) + ncols - 1) // ncols
    grid = np.full((nrows * (h + pad) + pad, ncols * (w + pad) + pad, 3), 255, dtype=np.uint8)
    for n, im in enumerate(images):
        r, c = divmod(n, ncols)
        grid[pad + r * (h + pad):pad + r * (h + pad) + h, pad + c * (w + pad):pad + c * (w + pad) + w] = im
    return grid


def save_png(path: str, image: np.ndarray) -> None:
    """Atomic PNG write of an RGB uint8 image."""
    from dkp_tui.atomic import write_bytes

    ok, buf = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError("PNG encoding failed")
    write_bytes(path, buf.tobytes())


def draw_trails(image: np.ndarray, tracks: np.ndarray) -> np.ndarray:
    """Each point's recent path on an RGB uint8 image (in place, returned): ``tracks`` (N, P, 2) (x, y) pixels of
    the last N frames, oldest first, NaN where a point was hidden (the path breaks there). Older segments are drawn
    darker, so the direction of motion reads at a glance."""
    n = len(tracks)
    colors = keypoint_colors(tracks.shape[1]).astype(np.float64)
    shift, f = 4, 16.0
    for t in range(1, n):
        fade = 0.35 + 0.65 * t / max(n - 1, 1)
        for p in range(tracks.shape[1]):
            a, b = tracks[t - 1, p], tracks[t, p]
            if np.isfinite(a).all() and np.isfinite(b).all():
                cv2.line(image, (int(a[0] * f), int(a[1] * f)), (int(b[0] * f), int(b[1] * f)),
                         tuple(int(c) for c in colors[p] * fade), 1, cv2.LINE_AA, shift)
    return image


def draw_names(image: np.ndarray, xy: np.ndarray, names: list[str]) -> np.ndarray:
    """Each visible point's name beside it (in place, returned); ``xy`` (P, 2) pixels, NaN for hidden points."""
    scale = max(0.3, min(image.shape[:2]) / 600)
    for (x, y), name in zip(np.asarray(xy, dtype=np.float64), names, strict=True):
        if np.isfinite(x) and np.isfinite(y):
            org = (int(x) + 4, int(y) - 3)
            cv2.putText(image, name, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 2, cv2.LINE_AA)
            cv2.putText(image, name, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return image
