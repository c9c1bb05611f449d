"""Scene pieces the synthetic families share: colours, palettes, texture noise, full-frame textures, walls (planes in
depth) with floors, light fields.

Why: the default family's walls are plain, smoothly shaded planes, and its clothing colours are drawn apart from
the wall's. Real footage has patterned walls and floors, and clothing whose colours also occur in the scene. These
helpers draw such scenes with exact, piecewise-planar inverse depth, so that each family can combine them in its
own way (docs/synthetic.md, "Families"); the default family takes its colours, noise and wall plane from here too.
"""

from __future__ import annotations

import colorsys
from collections.abc import Callable, Iterator

import cv2
import numpy as np

from dkp_tui.data.synthetic.render import CHECKS, DOTS, NOISE, PLAIN, STRIPES, Paint

TEXTURES = (PLAIN, STRIPES, NOISE, CHECKS, DOTS)


def hsv(h: float, s: float, v: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(h % 1.0, min(max(s, 0.0), 1.0), min(max(v, 0.0), 1.0)), dtype=np.float32)


def pick(rng: np.random.Generator, probs: tuple[float, ...]) -> int:
    u, acc = rng.random() * sum(probs), 0.0
    for i, q in enumerate(probs):
        acc += q
        if u < acc:
            return i
    return len(probs) - 1


def one(rng: np.random.Generator, values: np.ndarray) -> float:
    """One of ``values``, uniformly."""
    return float(values[int(rng.random() * len(values))])


def clutter_strokes(rng: np.random.Generator, n: int, kind_probs: tuple[float, ...],
                    paint: Callable[[np.random.Generator], Paint], height_range: tuple[float, float],
                    thickness_range: tuple[float, float], radii: np.ndarray, size: int
                    ) -> Iterator[tuple[int, Paint, float, float, np.ndarray, float]]:
    """``n`` clutter items of a scene family, each as (kind, paint, h, radius, start, direction): the draws every
    item starts with, in this order, from ``rng``; h is the height of a virtual figure the item could belong to
    (pixels), the radius one of ``radii`` (units of h) times h and a thickness. Drawn lazily, so the caller's
    own draws for an item follow these."""
    for _ in range(n):
        kind = pick(rng, kind_probs)
        item_paint = paint(rng)
        h = rng.uniform(*height_range) * size
        r = one(rng, radii) * h * rng.uniform(*thickness_range)
        start = rng.uniform(0.0, size - 1.0, 2)
        theta = rng.uniform(0.0, 2.0 * np.pi)
        yield kind, item_paint, h, r, start, theta


def palette(rng: np.random.Generator, n: int, sat: tuple[float, float], val: tuple[float, float]) -> np.ndarray:
    """n colours (n, 3) in HSV ranges: a scene's paint box, shared by its walls, floor and (maybe) clothing."""
    return np.stack([hsv(rng.random(), rng.uniform(*sat), rng.uniform(*val)) for _ in range(n)])


def jitter(rng: np.random.Generator, colour: np.ndarray, amount: float) -> np.ndarray:
    """The same paint, bought twice: a small brightness and tint change."""
    out = colour * np.float32(1.0 + rng.uniform(-amount, amount)) + rng.uniform(-amount, amount, 3).astype(np.float32) / 3
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def texture_paint(rng: np.random.Generator, colour: np.ndarray, colour2: np.ndarray, texture_probs: tuple[float, ...],
                  period_px: tuple[float, float], noise_amp: tuple[float, float]) -> Paint:
    """A garment or clutter paint with one of the five textures (probabilities in ``TEXTURES`` order)."""
    angle = rng.uniform(0.0, np.pi)
    return Paint(colour=colour, colour2=colour2, texture=TEXTURES[pick(rng, texture_probs)],
                 stripe_dir=(float(np.cos(angle)), float(np.sin(angle))),
                 stripe_period=float(rng.uniform(*period_px)), stripe_phase=float(rng.uniform(0.0, 2.0 * np.pi)),
                 noise_amp=float(rng.uniform(*noise_amp)))


def value_noise(rng: np.random.Generator, size: int, cells: tuple[int, ...], weights: tuple[float, ...]) -> np.ndarray:
    """Multi-scale value noise in [0, 1]: random grids of size/c cells, bilinear upsampled, weighted."""
    out = np.zeros((size, size), dtype=np.float32)
    for c, w in zip(cells, weights, strict=True):
        grid = rng.random((max(2, size // c),) * 2, dtype=np.float32)
        out += np.float32(w) * cv2.resize(grid, (size, size), interpolation=cv2.INTER_LINEAR)
    return out / np.float32(sum(weights))


def surface(rng: np.random.Generator, size: int, colour: np.ndarray, colour2: np.ndarray, kind: int,
            period_px: float, coords: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """A full-frame (S, S, 3) texture for a wall or floor: plain, wallpaper stripes, noise, checks (tiles) or dots.

    ``coords`` gives each pixel's texture coordinates (Y, X); a floor passes ``floor_coords`` so that its tiles
    shrink towards the horizon as on a ground plane.
    """
    if coords is None:
        ys = np.arange(size, dtype=np.float32)[:, None] + np.zeros((1, size), np.float32)
        xs = np.arange(size, dtype=np.float32)[None, :] + np.zeros((size, 1), np.float32)
    else:
        ys, xs = coords
    w = np.float32(2.0 * np.pi / period_px)
    phase = np.float32(rng.uniform(0.0, 2.0 * np.pi))
    if kind == PLAIN:
        mix = np.zeros((size, size), dtype=np.float32)
    elif kind == STRIPES:  # vertical wallpaper stripes (or floor boards)
        mix = np.clip(np.sin(xs * w + phase) * 2.0 + 0.5, 0.0, 1.0)
    elif kind == NOISE:
        mix = value_noise(rng, size, (16, 4, 2), (0.5, 0.3, 0.2))
    elif kind == CHECKS:
        mix = np.clip(np.sin(ys * w) * np.sin(xs * w + phase) * 3.0 + 0.5, 0.0, 1.0)
    else:
        mix = np.clip((np.cos(ys * w) + np.cos(xs * w + phase)) * 2.0 - 2.5, 0.0, 1.0)
    mix = mix.astype(np.float32)
    return (colour[None, None, :] + mix[..., None] * (colour2 - colour)[None, None, :]).astype(np.float32)


def floor_coords(size: int, h_row: int) -> tuple[np.ndarray, np.ndarray]:
    """Texture coordinates of a ground plane seen from above its horizon row: distance grows as 1 / (v - h),
    sideways offsets shrink with it; one texture pixel is one image pixel across the bottom row."""
    d = np.maximum(np.arange(size, dtype=np.float32) - h_row + 1.0, 1.0)[:, None]
    bottom = np.float32(max(size - h_row, 1))
    ys = np.float32(size) * bottom / d + np.zeros((1, size), np.float32)
    xs = (np.arange(size, dtype=np.float32)[None, :] - np.float32(size / 2)) * bottom / d
    return ys.astype(np.float32), xs.astype(np.float32)


def wall_plane(rng: np.random.Generator, size: int, depth_m: tuple[float, float], tilt: float
               ) -> tuple[np.ndarray, float]:
    """A far wall's exact inverse depth, affine in the image (a true plane) with up to +-``tilt`` (relative) across
    the frame, and its value at the frame centre."""
    u = (np.arange(size, dtype=np.float32) + 0.5) / size - 0.5
    ty, tx = (float(v) for v in rng.uniform(-tilt, tilt, 2))
    inv0 = 1.0 / rng.uniform(*depth_m)
    return ((inv0 * (1.0 + ty * u))[:, None] + (inv0 * tx * u)[None, :]).astype(np.float32), inv0


def wall_and_floor(rng: np.random.Generator, size: int, wall_rgb: np.ndarray, floor_rgb: np.ndarray | None,
                   wall_depth_m: tuple[float, float], wall_tilt: float, h_row: int,
                   floor_near_inv: float) -> tuple[np.ndarray, np.ndarray]:
    """Compose a wall and (optionally) a floor from image row ``h_row`` (the horizon) down, with exact inverse depth.

    The wall is a plane (inverse depth affine in the image). The floor is a second plane: its inverse depth grows
    linearly from the wall's at the horizon row to ``floor_near_inv`` at the bottom row, which is what a ground
    plane under perspective gives. ``floor_near_inv`` is kept below the nearest figure's, so the figure is always
    nearer than what lies behind it. Returns (rgb, inverse depth).
    """
    inv, inv0 = wall_plane(rng, size, wall_depth_m, wall_tilt)
    rgb = wall_rgb.copy()
    if floor_rgb is not None:
        v = np.arange(size, dtype=np.float32)
        t = np.clip((v - h_row) / max(size - 1 - h_row, 1), 0.0, None)[:, None]
        floor_inv = inv[h_row - 1 if h_row > 0 else 0][None, :] + t * np.float32(floor_near_inv - inv0)
        below = (v >= h_row)[:, None]
        inv = np.where(below, np.maximum(floor_inv, inv), inv).astype(np.float32)
        rgb = np.where(below[..., None], floor_rgb, rgb).astype(np.float32)
    return rgb, inv


def shade_field(size: int, gy: float, gx: float) -> np.ndarray:
    """A linear brightness gradient across the frame (1 at the centre)."""
    u = (np.arange(size, dtype=np.float32) + 0.5) / size - 0.5
    return ((1.0 + gy * u)[:, None] + (gx * u)[None, :]).astype(np.float32)


def spotlight(size: int, centre: np.ndarray, sigma_px: float, floor: float) -> np.ndarray:
    """A soft round light pool: 1 at ``centre`` (y, x) falling to ``floor`` far from it."""
    ys = np.arange(size, dtype=np.float32)[:, None] - np.float32(centre[0])
    xs = np.arange(size, dtype=np.float32)[None, :] - np.float32(centre[1])
    pool = np.exp(-(ys * ys + xs * xs) / np.float32(2.0 * sigma_px * sigma_px))
    return (np.float32(floor) + np.float32(1.0 - floor) * pool).astype(np.float32)
