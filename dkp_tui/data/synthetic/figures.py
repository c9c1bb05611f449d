"""The ``figures`` family (the default): articulated figures on cluttered walls, with exact depth, masks and joints.

Why it exists: Distill-DKP's claim is that an RGB keypoint model is lured onto background structures in clutter,
while a depth teacher is not, because the figure stands out in depth and the background does not. Here the
clutter is limb-like paint (capsules, bars, stick chains, textured patches with the figures' own colour and
texture statistics and the same shading) on a far, planar wall: it is in the RGB and absent from the depth. The
``clean`` background is the control: the same figures on a plain, smoothly shaded wall.

Every parameter lives in ``SyntheticParams`` (``figure.py``) and is documented in ``docs/synthetic.md``; changing
any of them (or the drawing code) is a versioned change (``GENERATOR_VERSION``). Each image draws from its own RNG
seeded by ``(seed, split, index)``, so the set is reproducible byte for byte and could be generated in any order.
"""

from __future__ import annotations

import numpy as np

from dkp_tui.data.synthetic import scene
from dkp_tui.data.synthetic.family import Family
from dkp_tui.data.synthetic.figure import (
    DEFAULT,
    GENERATOR_VERSION,
    Sample,
    SyntheticParams,
    check_request,
    compose,
    direction,
    draw_person,
    skin_colour,
)
from dkp_tui.data.synthetic.render import NOISE, PLAIN, STRIPES, Canvas, Paint, bar, capsule, patch


def _cloth_colour(rng: np.random.Generator, p: SyntheticParams) -> np.ndarray:
    return scene.hsv(rng.random(), rng.uniform(*p.cloth_sat), rng.uniform(*p.cloth_val))


def _paint(rng: np.random.Generator, p: SyntheticParams, size: int, base: np.ndarray | None = None) -> Paint:
    """A garment (or distractor) paint; textures are drawn from the same distribution for both on purpose."""
    colour = _cloth_colour(rng, p) if base is None else base
    texture = scene.pick(rng, p.texture_probs)
    angle = rng.uniform(0.0, np.pi)
    return Paint(colour=colour, colour2=_cloth_colour(rng, p), texture=(PLAIN, STRIPES, NOISE)[texture],
                 stripe_dir=(float(np.cos(angle)), float(np.sin(angle))),
                 stripe_period=float(rng.uniform(*p.stripe_period_frac) * size),
                 stripe_phase=float(rng.uniform(0.0, 2.0 * np.pi)), noise_amp=float(rng.uniform(*p.noise_amp)))


def _draw_figure(canvas: Canvas, rng: np.random.Generator, p: SyntheticParams, size: int) -> tuple[np.ndarray, dict]:
    """One figure with this family's clothes (its own colours, three textures) and shoes."""
    return draw_person(canvas, rng, size, p, p.thickness_range, p.height_range, lambda r: _paint(r, p, size),
                       lambda r: scene.hsv(r.random(), r.uniform(*p.shoe_sat), r.uniform(*p.shoe_val)))


# -- the background ----------------------------------------------------------------------------------------------

def _wall(rng: np.random.Generator, p: SyntheticParams, size: int) -> tuple[np.ndarray, np.ndarray]:
    """A far plane: a smoothly shaded colour and an inverse depth that is affine in the image (a true plane)."""
    colour = scene.hsv(rng.random(), rng.uniform(*p.wall_sat), rng.uniform(*p.wall_val))
    gy, gx = (float(v) for v in rng.uniform(-p.wall_shading, p.wall_shading, 2))
    rgb = scene.shade_field(size, gy, gx)[..., None] * colour
    np.minimum(rgb, 1.0, out=rgb)
    return rgb, scene.wall_plane(rng, size, p.wall_depth_m, p.wall_tilt)[0]


def _distractor_paint(rng: np.random.Generator, p: SyntheticParams, size: int) -> Paint:
    if rng.random() < p.distractor_skin_prob:
        skin = skin_colour(rng, p)
        return Paint(colour=skin, colour2=skin)
    return _paint(rng, p, size)


def _draw_clutter(canvas: Canvas, rng: np.random.Generator, p: SyntheticParams, size: int) -> int:
    """Limb-like paint on the wall, with shapes and colours drawn from the figures' own statistics."""
    n = int(rng.integers(p.n_distractors[0], p.n_distractors[1] + 1))
    lengths = np.array([v for k, v in p.lengths if k in p.distractor_lengths])
    radii = np.array([v for k, v in p.radii if k in p.distractor_radii])
    for _ in range(n):
        kind = scene.pick(rng, p.distractor_kind_probs)
        h = rng.uniform(*p.height_range) * size  # the H of a virtual figure this structure could belong to
        thick = rng.uniform(*p.thickness_range)
        paint = _distractor_paint(rng, p, size)
        start = rng.uniform(0.0, size - 1.0, 2)
        theta = rng.uniform(0.0, 2.0 * np.pi)
        if kind == 0:  # a single limb-like capsule
            end = start + direction(theta) * scene.one(rng, lengths) * h
            capsule(canvas, start, end, scene.one(rng, radii) * thick * h, paint)
        elif kind == 1:  # a square-ended bar
            end = start + direction(theta) * rng.uniform(*p.bar_length_frac) * h
            bar(canvas, start, end, scene.one(rng, radii) * thick * h, paint)
        elif kind == 2:  # a stick structure: a chain of capsules (an arm or a leg), sometimes branched
            segments = int(rng.integers(p.stick_segments[0], p.stick_segments[1] + 1))
            r = scene.one(rng, radii) * thick * h
            joints = [start]
            for _ in range(segments):
                nxt = joints[-1] + direction(theta) * scene.one(rng, lengths) * h
                capsule(canvas, joints[-1], nxt, r, paint)
                joints.append(nxt)
                theta += np.deg2rad(rng.uniform(-p.stick_turn_deg, p.stick_turn_deg))
                r *= rng.uniform(*p.stick_taper)
            if rng.random() < p.stick_branch_prob:
                branch = joints[1] + direction(rng.uniform(0.0, 2.0 * np.pi)) * scene.one(rng, lengths) * h
                capsule(canvas, joints[1], branch, r, paint)
        else:  # a flat textured patch
            half = (float(rng.uniform(*p.patch_half_frac) * size), float(rng.uniform(*p.patch_half_frac) * size))
            patch(canvas, start, half, theta, bool(rng.random() < p.patch_ellipse_prob), paint)
    return n


# -- one sample --------------------------------------------------------------------------------------------------

def render(rng: np.random.Generator, size: int, background: str, params: SyntheticParams = DEFAULT) -> Sample:
    """Render one image. The figure draws from its own child stream, so ``clean`` and ``cluttered`` share figures."""
    check_request(size, background)
    figure_rng, wall_rng, clutter_rng = rng.spawn(3)
    rgb, inv_wall = _wall(wall_rng, params, size)
    noise = scene.value_noise(wall_rng, size, params.noise_cells,
                              (params.noise_coarse_weight, 1.0 - params.noise_coarse_weight))
    canvas = Canvas(rgb, noise, params.ambient, params.light)
    n_distractors = _draw_clutter(canvas, clutter_rng, params, size) if background == "cluttered" else 0
    joints, facts = _draw_figure(canvas, figure_rng, params, size)
    return compose(canvas, inv_wall, joints, facts, n_distractors)


# its RNG streams and manifests predate the other families: they carry no family name or stream key
FAMILY = Family("figures", GENERATOR_VERSION, DEFAULT, render, stream=None)
