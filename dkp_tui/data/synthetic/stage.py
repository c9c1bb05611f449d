"""The ``stage`` family: stocky, outlined, flat-lit figures in a spotlight before a noisy backdrop.

Why: it differs from the default family and from ``room`` along the other axes real footage varies in. Bodies
are stockier (thicker limbs, shorter legs, bigger heads), clothing comes from a saturated palette of its own that
the scene never uses, shading is flat (cel-like: high ambient light, a dark outline round the figure, as in
graphic or strongly lit footage) instead of round, the backdrop is grainy multi-scale noise in muted colours under
a spotlight with a colour cast, and figures are small to medium (a quarter to three quarters of the frame) and
often off-centre. Clutter (``cluttered``) is saturated props painted on the backdrop (limb-like sticks, blobs and
stripes of the clothing palette): in the RGB and absent from the depth. Depth is exact: the backdrop is a plane.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from dkp_tui.data.synthetic import figure, scene
from dkp_tui.data.synthetic.family import Family
from dkp_tui.data.synthetic.render import Canvas, Paint, bar, capsule, patch

FAMILY_VERSION = 1


@dataclass(frozen=True)
class StageParams:
    """Every number of the family (lengths in units of the figure height H, as in ``SyntheticParams``)."""

    height_range: tuple[float, float] = (0.25, 0.75)  # figure height / frame size
    leg_scale: tuple[float, float] = (0.8, 0.95)  # thigh and shin length factor: shorter legs
    head_scale: tuple[float, float] = (1.1, 1.5)
    thickness_range: tuple[float, float] = (1.1, 1.6)
    cloth_sat: tuple[float, float] = (0.65, 1.0)  # the clothing palette: saturated, hue uniform
    cloth_val: tuple[float, float] = (0.55, 1.0)
    cloth_texture_probs: tuple[float, ...] = (0.45, 0.25, 0.05, 0.15, 0.1)  # plain, stripes, noise, checks, dots
    cloth_period_frac: tuple[float, float] = (0.03, 0.08)
    ambient: tuple[float, float] = (0.75, 0.9)  # flat light: little Lambert shading
    outline_px: float = 1.0  # dark outline width round the figure
    outline_darkness: tuple[float, float] = (0.35, 0.7)  # outline colour = this x the figure's colour
    backdrop_sat: tuple[float, float] = (0.0, 0.3)  # muted backdrop colours (never the clothing palette)
    backdrop_val: tuple[float, float] = (0.3, 0.8)
    backdrop_grain: tuple[float, float] = (0.25, 0.6)  # noise contrast of the backdrop
    backdrop_cells: tuple[int, ...] = (16, 6, 2, 1)  # value-noise scales (frame / cells)
    backdrop_weights: tuple[float, ...] = (0.35, 0.25, 0.25, 0.15)
    spot_sigma_frac: tuple[float, float] = (0.25, 0.6)  # spotlight radius / frame size
    spot_floor: tuple[float, float] = (0.35, 0.7)  # brightness far from the spot
    spot_offset_frac: float = 0.2  # spot centre from the figure's centre, +- per axis
    cast: float = 0.12  # colour cast of the light, +- per channel
    wall_depth_m: tuple[float, float] = (7.0, 12.0)
    wall_tilt: float = 0.3
    n_props: tuple[int, int] = (4, 10)
    prop_kind_probs: tuple[float, float, float] = (0.45, 0.25, 0.3)  # stick (1-3 capsules), bar, blob

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self)))


DEFAULT = StageParams()


def _body(rng: np.random.Generator, p: StageParams) -> figure.SyntheticParams:
    legs = float(rng.uniform(*p.leg_scale))
    head = float(rng.uniform(*p.head_scale))
    lengths = tuple((k, v * (legs if k in ("thigh", "shin") else 1.0)) for k, v in figure.DEFAULT.lengths)
    radii = tuple((k, v * (head if k == "head" else 1.0)) for k, v in figure.DEFAULT.radii)
    return dataclasses.replace(figure.DEFAULT, lengths=lengths, radii=radii)


def _cloth_colour(rng: np.random.Generator, p: StageParams) -> np.ndarray:
    return scene.hsv(rng.random(), rng.uniform(*p.cloth_sat), rng.uniform(*p.cloth_val))


def _outline(canvas: Canvas, width: float, darkness: float) -> None:
    """Darken a band of the figure just inside its silhouette (the mask and the depth stay as drawn)."""
    inside = (canvas.cover >= 0.5).astype(np.uint8)
    dist = cv2.distanceTransform(inside, cv2.DIST_L2, 3)
    band = np.clip(np.float32(width + 0.5) - dist, 0.0, 1.0) * (inside > 0)
    canvas.rgb *= (1.0 - band * np.float32(1.0 - darkness))[..., None]


def render(rng: np.random.Generator, size: int, background: str, params: StageParams = DEFAULT) -> figure.Sample:
    p = params
    figure_rng, wall_rng, clutter_rng = rng.spawn(3)
    # -- the backdrop: muted grainy noise on a plane --------------------------------------------------------
    colour = scene.hsv(wall_rng.random(), wall_rng.uniform(*p.backdrop_sat), wall_rng.uniform(*p.backdrop_val))
    grain = scene.value_noise(wall_rng, size, p.backdrop_cells, p.backdrop_weights)
    amp = np.float32(wall_rng.uniform(*p.backdrop_grain))
    rgb = (colour[None, None, :] * (np.float32(1.0) - amp + np.float32(2.0) * amp * grain)[..., None]).astype(np.float32)
    rgb, inv_bg = scene.wall_and_floor(wall_rng, size, rgb, None, p.wall_depth_m, p.wall_tilt, size, 0.0)
    canvas = Canvas(np.clip(rgb, 0.0, 1.0), scene.value_noise(wall_rng, size, (8, 2), (0.6, 0.4)),
                    float(wall_rng.uniform(*p.ambient)), (-0.3, -0.5, 0.8))

    def cloth(r: np.random.Generator) -> Paint:
        return scene.texture_paint(r, _cloth_colour(r, p), _cloth_colour(r, p), p.cloth_texture_probs,
                                   (p.cloth_period_frac[0] * size, p.cloth_period_frac[1] * size), (0.3, 0.5))

    # -- props: saturated paint on the backdrop -----------------------------------------------------------
    n_props = 0
    if background == "cluttered":
        n_props = int(clutter_rng.integers(p.n_props[0], p.n_props[1] + 1))
        body = _body(clutter_rng, p)
        lengths = np.array([v for k, v in body.lengths if k in ("thigh", "shin", "upper_arm", "forearm")])
        radii = np.array([v for k, v in body.radii if k in ("upper_arm", "forearm", "thigh", "shin", "belly")])
        for kind, paint, h, r, start, theta in scene.clutter_strokes(
                clutter_rng, n_props, p.prop_kind_probs, cloth, p.height_range, p.thickness_range, radii, size):
            length = scene.one(clutter_rng, lengths) * h
            if kind == 0:
                for _ in range(int(clutter_rng.integers(1, 4))):
                    end = start + figure.direction(theta) * length
                    capsule(canvas, start, end, r, paint)
                    start, theta = end, theta + math.radians(clutter_rng.uniform(-120, 120))
            elif kind == 1:
                bar(canvas, start, start + figure.direction(theta) * length, r, paint)
            else:
                half = (float(clutter_rng.uniform(0.5, 1.5) * r * 1.5), float(clutter_rng.uniform(0.5, 1.5) * r * 1.5))
                patch(canvas, start, half, theta, True, paint)

    # -- the figure: stocky, flat-lit, outlined ------------------------------------------------------------
    joints, facts = figure.draw_person(canvas, figure_rng, size, _body(figure_rng, p), p.thickness_range,
                                     p.height_range, cloth, lambda r: _cloth_colour(r, p) * np.float32(0.4))
    _outline(canvas, p.outline_px, float(figure_rng.uniform(*p.outline_darkness)))
    # -- the light: a spotlight near the figure and a colour cast, on everything -------------------------------
    centre = joints.mean(0) + figure_rng.uniform(-p.spot_offset_frac, p.spot_offset_frac, 2) * size
    light = scene.spotlight(size, centre, figure_rng.uniform(*p.spot_sigma_frac) * size,
                            figure_rng.uniform(*p.spot_floor))
    cast = (1.0 + figure_rng.uniform(-p.cast, p.cast, 3)).astype(np.float32)
    canvas.rgb *= light[..., None] * cast[None, None, :]
    np.clip(canvas.rgb, 0.0, 1.0, out=canvas.rgb)
    return figure.compose(canvas, inv_bg, joints, facts, n_props)


FAMILY = Family("stage", FAMILY_VERSION, DEFAULT, render, stream=1002)
