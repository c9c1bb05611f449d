"""The ``room`` family: people of varied build in patterned rooms whose paint box they share.

Why: the default family's figures stand before plain walls in colours of their own. Here the scene and the
clothes are bought from one small palette (3-5 colours per image), walls carry wallpaper stripes, noise or tiles,
a floor in perspective carries boards or tiles, clothing comes in five textures (plain, stripes, noise, checks,
dots), body proportions and build vary per person, figures range from a third of the frame to nearly all of it,
and the light comes from any side. Clutter (``cluttered``) is posters and limb-like paint in the same palette on
the wall and floor: in the RGB and absent from the depth. Depth is exact: the wall and the floor are planes.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from dkp_tui.data.synthetic import figure, scene
from dkp_tui.data.synthetic.family import Family
from dkp_tui.data.synthetic.render import Canvas, Paint, capsule, patch

FAMILY_VERSION = 1


@dataclass(frozen=True)
class RoomParams:
    """Every number of the family (lengths in units of the figure height H, as in ``SyntheticParams``)."""

    height_range: tuple[float, float] = (0.35, 0.95)  # figure height / frame size
    length_jitter: float = 0.18  # each bone length x U(1 - j, 1 + j), per person: build and proportions
    head_scale: tuple[float, float] = (0.8, 1.45)  # head radius factor (child-like heads at the top end)
    thickness_range: tuple[float, float] = (0.7, 1.5)  # per-person radius factor
    palette_size: tuple[int, int] = (3, 5)  # colours in the scene's paint box, inclusive
    palette_sat: tuple[float, float] = (0.1, 0.85)
    palette_val: tuple[float, float] = (0.25, 0.95)
    paint_jitter: float = 0.08  # the same palette colour on two surfaces differs by this much
    cloth_texture_probs: tuple[float, ...] = (0.2, 0.25, 0.2, 0.2, 0.15)  # plain, stripes, noise, checks, dots
    cloth_period_frac: tuple[float, float] = (0.04, 0.12)  # texture period / frame size
    cloth_noise_amp: tuple[float, float] = (0.25, 0.55)
    wall_texture_probs: tuple[float, ...] = (0.1, 0.35, 0.3, 0.15, 0.1)  # plain, stripes, noise, checks, dots
    wall_period_frac: tuple[float, float] = (0.05, 0.2)
    floor_prob: float = 0.8  # a floor is visible below the horizon
    floor_texture_probs: tuple[float, ...] = (0.15, 0.35, 0.2, 0.3, 0.0)
    floor_period_frac: tuple[float, float] = (0.08, 0.25)
    horizon: tuple[float, float] = (0.45, 0.8)  # horizon row / frame size
    wall_depth_m: tuple[float, float] = (6.5, 10.0)
    wall_tilt: float = 0.2
    floor_near_margin: float = 0.9  # the floor's nearest inverse depth = this x the figure's farthest
    light_elevation_deg: tuple[float, float] = (15.0, 75.0)  # from the image plane towards the camera
    ambient: tuple[float, float] = (0.3, 0.6)
    wall_shading: float = 0.35  # brightness gradient across the frame, +- per axis
    n_clutter: tuple[int, int] = (4, 9)
    clutter_kind_probs: tuple[float, float, float] = (0.35, 0.35, 0.3)  # limb capsule, stick chain, poster
    poster_half_frac: tuple[float, float] = (0.05, 0.16)

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self)))


DEFAULT = RoomParams()


def _body(rng: np.random.Generator, p: RoomParams) -> figure.SyntheticParams:
    """This person's proportions: the default body with every bone and radius redrawn around it."""
    lengths = tuple((k, v * float(rng.uniform(1 - p.length_jitter, 1 + p.length_jitter)))
                    for k, v in figure.DEFAULT.lengths)
    head = float(rng.uniform(*p.head_scale))
    radii = tuple((k, v * (head if k == "head" else float(rng.uniform(0.85, 1.15)))) for k, v in figure.DEFAULT.radii)
    return dataclasses.replace(figure.DEFAULT, lengths=lengths, radii=radii)


def _light(rng: np.random.Generator, p: RoomParams) -> tuple[float, float, float]:
    azimuth = rng.uniform(0.0, 2.0 * math.pi)
    elev = math.radians(rng.uniform(*p.light_elevation_deg))
    return (math.cos(elev) * math.cos(azimuth), math.cos(elev) * math.sin(azimuth), math.sin(elev))


def render(rng: np.random.Generator, size: int, background: str, params: RoomParams = DEFAULT) -> figure.Sample:
    p = params
    figure_rng, wall_rng, clutter_rng = rng.spawn(3)
    n_colours = int(wall_rng.integers(p.palette_size[0], p.palette_size[1] + 1))
    box = scene.palette(wall_rng, n_colours, p.palette_sat, p.palette_val)

    def from_box(r: np.random.Generator) -> np.ndarray:
        return scene.jitter(r, box[int(r.random() * n_colours)], p.paint_jitter)

    # -- the room: a patterned wall and, usually, a patterned floor, both planes -----------------------------
    wall = scene.surface(wall_rng, size, from_box(wall_rng), from_box(wall_rng),
                         scene.TEXTURES[scene.pick(wall_rng, p.wall_texture_probs)],
                         wall_rng.uniform(*p.wall_period_frac) * size)
    has_floor = wall_rng.random() < p.floor_prob
    h_row = int(round(wall_rng.uniform(*p.horizon) * size))
    floor = None
    if has_floor:
        floor = scene.surface(wall_rng, size, from_box(wall_rng), from_box(wall_rng),
                              scene.TEXTURES[scene.pick(wall_rng, p.floor_texture_probs)],
                              wall_rng.uniform(*p.floor_period_frac) * size, scene.floor_coords(size, h_row))
    nearest_figure_m = figure.DEFAULT.person_height_m / p.height_range[0]  # the farthest a figure can stand
    rgb, inv_bg = scene.wall_and_floor(wall_rng, size, wall, floor, p.wall_depth_m, p.wall_tilt, h_row,
                                       p.floor_near_margin / nearest_figure_m)
    gy, gx = (float(v) for v in wall_rng.uniform(-p.wall_shading, p.wall_shading, 2))
    rgb *= scene.shade_field(size, gy, gx)[..., None]
    np.clip(rgb, 0.0, 1.0, out=rgb)
    canvas = Canvas(rgb, scene.value_noise(wall_rng, size, (8, 2), (0.6, 0.4)),
                    float(wall_rng.uniform(*p.ambient)), _light(wall_rng, p))

    def cloth(r: np.random.Generator) -> Paint:
        return scene.texture_paint(r, from_box(r), from_box(r), p.cloth_texture_probs,
                                   (p.cloth_period_frac[0] * size, p.cloth_period_frac[1] * size), p.cloth_noise_amp)

    # -- clutter: posters and limb-like paint, in the room's palette ------------------------------------------
    n_clutter = 0
    if background == "cluttered":
        n_clutter = int(clutter_rng.integers(p.n_clutter[0], p.n_clutter[1] + 1))
        body = _body(clutter_rng, p)
        lengths = np.array([v for _, v in body.lengths if v > 0.1])
        radii = np.array([v for k, v in body.radii if k not in ("head", "hand", "foot", "neck")])
        for kind, paint, h, r, start, theta in scene.clutter_strokes(
                clutter_rng, n_clutter, p.clutter_kind_probs, cloth, p.height_range, p.thickness_range, radii, size):
            if kind == 2:
                half = tuple(float(clutter_rng.uniform(*p.poster_half_frac) * size) for _ in range(2))
                patch(canvas, start, half, float(clutter_rng.uniform(-0.2, 0.2)), False, paint)  # type: ignore[arg-type]
                continue
            for _ in range(1 if kind == 0 else int(clutter_rng.integers(2, 4))):
                end = start + figure.direction(theta) * scene.one(clutter_rng, lengths) * h
                capsule(canvas, start, end, r, paint)
                start, theta = end, theta + math.radians(clutter_rng.uniform(-110, 110))

    # -- the person ------------------------------------------------------------------------------------------
    joints, facts = figure.draw_person(canvas, figure_rng, size, _body(figure_rng, p), p.thickness_range,
                                     p.height_range, cloth, lambda r: from_box(r) * np.float32(0.5))
    return figure.compose(canvas, inv_bg, joints, facts, n_clutter)


FAMILY = Family("room", FAMILY_VERSION, DEFAULT, render, stream=1001)
