"""Anti-aliased signed-distance drawing for the synthetic generator: capsules, bars and patches on one canvas.

Every shape is drawn only inside its bounding box with vectorised numpy, and its coverage comes from the distance
to its outline (``clip(r + 0.5 - d, 0, 1)``), which anti-aliases at the stored size without rendering at 2x.
Figure parts also carry an exact depth (a capsule's surface is ``z_axis - r_depth * sqrt(1 - (d / r)^2)``) and go
through a z-buffer; background shapes are paint on the flat wall and never touch the depth. Limbs and limb-like
paint share one shading function, so shading cannot tell them apart.

The code is written for speed (about 30 shapes per image at >= 300 images/s on one core): in-place ufuncs, the
``clip`` ufunc instead of the ``np.clip`` wrapper, Python floats for per-shape scalars.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy._core import umath

_clip = umath.clip  # the ufunc: several times cheaper per call than np.clip on small arrays

PLAIN, STRIPES, NOISE, CHECKS, DOTS = 0, 1, 2, 3, 4  # CHECKS and DOTS: the other families only


@dataclass(frozen=True)
class Paint:
    """How a shape is coloured: a base colour and an optional texture (stripes or blotchy noise)."""

    colour: np.ndarray  # (3,) float32 RGB in [0, 1]
    colour2: np.ndarray  # (3,) second stripe colour
    texture: int = PLAIN  # PLAIN | STRIPES | NOISE | CHECKS | DOTS
    stripe_dir: tuple[float, float] = (1.0, 0.0)  # (dy, dx) unit vector across the stripes
    stripe_period: float = 6.0  # pixels
    stripe_phase: float = 0.0
    noise_amp: float = 0.35


class Canvas:
    """RGB, figure coverage/depth and clutter coverage of one image (float32, (y, x) with pixel centres at
    integer coordinates)."""

    def __init__(self, rgb: np.ndarray, noise: np.ndarray, ambient: float,
                 light: tuple[float, float, float] = (-0.35, -0.45, 0.82)) -> None:
        self.size = s = rgb.shape[0]
        self.rgb = rgb  # (S, S, 3) float32
        self.noise = noise  # (S, S) float32 in [0, 1], the shared texture field
        self.ambient = float(ambient)
        norm = math.sqrt(sum(v * v for v in light))
        self.light = tuple(v / norm for v in light)  # unit (x, y, towards the camera), for Lambert shading
        self.zbuf = np.full((s, s), np.inf, dtype=np.float32)  # figure surface depth (metres)
        self.cover = np.zeros((s, s), dtype=np.float32)  # figure coverage in [0, 1]
        self.paint = np.zeros((s, s), dtype=np.float32)  # clutter (wall paint) coverage in [0, 1]
        self.ys = np.arange(s, dtype=np.float32)[:, None]
        self.xs = np.arange(s, dtype=np.float32)[None, :]

    def box(self, lo_y: float, hi_y: float, lo_x: float, hi_x: float) -> tuple[slice, slice] | None:
        y0, y1 = max(0, math.floor(lo_y)), min(self.size, math.ceil(hi_y) + 1)
        x0, x1 = max(0, math.floor(lo_x)), min(self.size, math.ceil(hi_x) + 1)
        if y0 >= y1 or x0 >= x1:
            return None
        return slice(y0, y1), slice(x0, x1)


def _colour(canvas: Canvas, paint: Paint, sy: slice, sx: slice, shade: np.ndarray) -> np.ndarray:
    """(h, w, 3) shaded texture colours; stripes and noise live in image coordinates, so they continue across
    the parts of one garment."""
    if paint.texture == STRIPES:
        u = canvas.ys[sy] * np.float32(paint.stripe_dir[0] * 2.0 * math.pi / paint.stripe_period)
        u = u + canvas.xs[:, sx] * np.float32(paint.stripe_dir[1] * 2.0 * math.pi / paint.stripe_period)
        u += np.float32(paint.stripe_phase)
        np.sin(u, out=u)
        u *= 2.0
        u += 0.5
        _clip(u, 0.0, 1.0, out=u)
        out = u[..., None] * (paint.colour2 - paint.colour)
        out += paint.colour
        out *= shade[..., None]
        return out
    if paint.texture in (CHECKS, DOTS):
        return _print(canvas, paint, sy, sx, shade)
    if paint.texture == NOISE:
        n = canvas.noise[sy, sx] * np.float32(2.0 * paint.noise_amp)
        n += np.float32(1.0 - paint.noise_amp)
        n *= shade
        return n[..., None] * paint.colour
    return shade[..., None] * paint.colour


def _print(canvas: Canvas, paint: Paint, sy: slice, sx: slice, shade: np.ndarray) -> np.ndarray:
    """Checks (two crossed square waves) or a dot print on a lattice, in image coordinates like the stripes."""
    cy, cx = paint.stripe_dir
    w = np.float32(2.0 * math.pi / paint.stripe_period)
    u = (canvas.ys[sy] * np.float32(cy) + canvas.xs[:, sx] * np.float32(cx)) * w + np.float32(paint.stripe_phase)
    v = (canvas.xs[:, sx] * np.float32(cy) - canvas.ys[sy] * np.float32(cx)) * w
    if paint.texture == CHECKS:
        mix = np.sin(u) * np.sin(v) * np.float32(3.0) + np.float32(0.5)
    else:  # dots of radius ~ a quarter period at the lattice points
        mix = (np.cos(u) + np.cos(v)) * np.float32(2.0) - np.float32(2.5)
    _clip(mix, 0.0, 1.0, out=mix)
    out = mix[..., None] * (paint.colour2 - paint.colour)
    out += paint.colour
    out *= shade[..., None]
    return out


def _shade(canvas: Canvas, ey: np.ndarray, ex: np.ndarray, height: np.ndarray, r: float) -> np.ndarray:
    """Lambert shading of a tube of radius r: normal (ex/r, ey/r, height), height = sqrt(1 - (d/r)^2)."""
    lx, ly, lz = canvas.light
    lam = ex * np.float32(lx / r)
    lam += ey * np.float32(ly / r)
    lam += height * np.float32(lz)
    _clip(lam, 0.0, 1.0, out=lam)
    lam *= np.float32(1.0 - canvas.ambient)
    lam += np.float32(canvas.ambient)
    return lam


def _blend(canvas: Canvas, sy: slice, sx: slice, alpha: np.ndarray, colour: np.ndarray) -> None:
    rgb = canvas.rgb[sy, sx]
    colour -= rgb
    colour *= alpha[..., None]
    rgb += colour


def _paint_on_wall(canvas: Canvas, sy: slice, sx: slice, cover: np.ndarray, colour: np.ndarray) -> None:
    _blend(canvas, sy, sx, cover, colour)
    np.maximum(canvas.paint[sy, sx], cover, out=canvas.paint[sy, sx])


def capsule(canvas: Canvas, a: np.ndarray, b: np.ndarray, r: float, paint: Paint,
            za: float | None = None, zb: float | None = None, r_depth: float = 0.0) -> None:
    """A shaded capsule from a to b ((y, x) pixels), radius r pixels.

    With depths ``za``/``zb`` (metres at a and b) it is a figure part: z-tested against the figure buffer, its
    surface bulging towards the camera by ``r_depth`` metres on the axis. Without, it is paint on the wall.
    """
    ay, ax, by, bx, r = float(a[0]), float(a[1]), float(b[0]), float(b[1]), float(r)
    box = canvas.box(min(ay, by) - r - 1.0, max(ay, by) + r + 1.0, min(ax, bx) - r - 1.0, max(ax, bx) + r + 1.0)
    if box is None or r <= 0.0:
        return
    sy, sx = box
    py, px = canvas.ys[sy] - np.float32(ay), canvas.xs[:, sx] - np.float32(ax)
    dy, dx = by - ay, bx - ax
    length2 = dy * dy + dx * dx
    t = None
    if length2 > 1e-6:
        t = py * np.float32(dy / length2) + px * np.float32(dx / length2)
        _clip(t, 0.0, 1.0, out=t)
        ey, ex = py - t * np.float32(dy), px - t * np.float32(dx)
    else:
        ey, ex = py + 0.0 * px, px + 0.0 * py
    d = ey * ey
    d += ex * ex
    height = d * np.float32(-1.0 / (r * r))
    height += 1.0
    _clip(height, 0.0, 1.0, out=height)
    np.sqrt(height, out=height)
    np.sqrt(d, out=d)
    cover = np.subtract(np.float32(r + 0.5), d, out=d)
    _clip(cover, 0.0, 1.0, out=cover)
    colour = _colour(canvas, paint, sy, sx, _shade(canvas, ey, ex, height, r))
    if za is None or zb is None:
        _paint_on_wall(canvas, sy, sx, cover, colour)
        return
    z = height * np.float32(-r_depth)
    z += np.float32(za) if t is None else t * np.float32(zb - za) + np.float32(za)
    zbuf = canvas.zbuf[sy, sx]
    alpha = cover * (z < zbuf)
    np.copyto(zbuf, z, where=alpha > 0.0)
    np.maximum(canvas.cover[sy, sx], alpha, out=canvas.cover[sy, sx])
    _blend(canvas, sy, sx, alpha, colour)


def bar(canvas: Canvas, a: np.ndarray, b: np.ndarray, r: float, paint: Paint) -> None:
    """A square-ended bar (a rectangle of half-width r along a-b), shaded across like a tube; wall paint only."""
    ay, ax, by, bx, r = float(a[0]), float(a[1]), float(b[0]), float(b[1]), float(r)
    box = canvas.box(min(ay, by) - r - 1.0, max(ay, by) + r + 1.0, min(ax, bx) - r - 1.0, max(ax, bx) + r + 1.0)
    if box is None or r <= 0.0:
        return
    sy, sx = box
    dy, dx = by - ay, bx - ax
    length = max(math.hypot(dy, dx), 1e-3)
    uy, ux = dy / length, dx / length
    py, px = canvas.ys[sy] - np.float32(ay), canvas.xs[:, sx] - np.float32(ax)
    along = py * np.float32(uy) + px * np.float32(ux)
    across = px * np.float32(uy) - py * np.float32(ux)  # signed distance from the axis
    inside = np.minimum(along, np.float32(length) - along)
    np.minimum(inside, np.float32(r) - np.abs(across), out=inside)
    inside += 0.5
    cover = _clip(inside, 0.0, 1.0, out=inside)
    height = across * across * np.float32(-1.0 / (r * r))
    height += 1.0
    _clip(height, 0.0, 1.0, out=height)
    np.sqrt(height, out=height)
    shade = _shade(canvas, -across * np.float32(ux), across * np.float32(uy), height, r)
    _paint_on_wall(canvas, sy, sx, cover, _colour(canvas, paint, sy, sx, shade))


def patch(canvas: Canvas, centre: np.ndarray, half: tuple[float, float], angle: float, ellipse: bool,
          paint: Paint) -> None:
    """A flat textured rectangle or ellipse (half-sizes along its own axes), rotated by ``angle``; wall paint."""
    cy, cx = float(centre[0]), float(centre[1])
    ext = math.hypot(*half) + 1.0
    box = canvas.box(cy - ext, cy + ext, cx - ext, cx + ext)
    if box is None:
        return
    sy, sx = box
    c, s = math.cos(angle), math.sin(angle)
    py, px = canvas.ys[sy] - np.float32(cy), canvas.xs[:, sx] - np.float32(cx)
    u = py * np.float32(c) + px * np.float32(s)
    v = px * np.float32(c) - py * np.float32(s)
    if ellipse:
        u *= np.float32(1.0 / half[0])
        v *= np.float32(1.0 / half[1])
        q = u * u
        q += v * v
        np.sqrt(q, out=q)
        inside = np.subtract(1.0, q, out=q)
        inside *= np.float32(min(half))  # distance to the outline, first order
    else:
        inside = np.minimum(np.float32(half[0]) - np.abs(u), np.float32(half[1]) - np.abs(v))
    inside += 0.5
    cover = _clip(inside, 0.0, 1.0, out=inside)
    shade = np.ones_like(cover)
    _paint_on_wall(canvas, sy, sx, cover, _colour(canvas, paint, sy, sx, shade))
