"""The built-in synthetic data set: articulated figures on cluttered walls, with exact depth, masks and joints.

Why it exists: Distill-DKP's claim is that an RGB keypoint model is lured onto background structures in clutter,
while a depth teacher is not, because the figure stands out in depth and the background does not. Here the
clutter is limb-like paint (capsules, bars, stick chains, textured patches with the figures' own colour and
texture statistics and the same shading) on a far, planar wall: it is in the RGB and absent from the depth. The
``clean`` background is the control: the same figures on a plain, smoothly shaded wall.

Every parameter lives in ``SyntheticParams`` and is documented in ``docs/synthetic.md``; changing any of them (or
the drawing code) is a versioned change (``GENERATOR_VERSION``). Each image draws from its own RNG seeded by
``(seed, split, index)``, so the set is reproducible byte for byte and could be generated in any order.
"""

from __future__ import annotations

import colorsys
import dataclasses
import hashlib
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from dkp_tui.atomic import check_output_dir
from dkp_tui.data.prepare_common import refuse_foreign
from dkp_tui.data.synthetic_render import NOISE, PLAIN, STRIPES, Canvas, Paint, bar, capsule, patch
from dkp_tui.data.synthetic_scene import pick as _pick
from dkp_tui.errors import DkpError
from dkp_tui.formats import dataset_dir as layout
from dkp_tui.formats import depth_cache as cache
from dkp_tui.formats.dataset_dir import Manifest, SplitInfo
from dkp_tui.locks import remove_dead_temps, writer_lock

GENERATOR_VERSION = 1
DEPTH_TAG = "exact"
BACKGROUNDS = ("cluttered", "clean")
# figure and scene families (docs/synthetic.md, "Families"); "figures" is this module's own, the default
FAMILIES = ("figures", "room", "stage")
DEFAULT_FAMILY = "figures"
SPLIT_IDS = {"train": 0, "fit": 1, "test": 2}

JOINT_NAMES = (
    "pelvis", "r_hip", "r_knee", "r_ankle", "l_hip", "l_knee", "l_ankle", "spine",
    "neck", "head", "l_shoulder", "l_elbow", "l_wrist", "r_shoulder", "r_elbow", "r_wrist",
)
SKELETON = (
    (0, 1), (1, 2), (2, 3), (0, 4), (4, 5), (5, 6), (0, 7), (7, 8),
    (8, 9), (8, 10), (10, 11), (11, 12), (8, 13), (13, 14), (14, 15),
)
J = {name: i for i, name in enumerate(JOINT_NAMES)}


@dataclass(frozen=True)
class SyntheticParams:
    """Every number the generator uses. Lengths in units of the figure height H unless named otherwise.

    Frozen on purpose: the benchmark must not be tuned after methods are compared on it. Changing a value or the
    drawing code is a new ``GENERATOR_VERSION``, documented in docs/synthetic.md.
    """

    # -- figure size, placement, camera -------------------------------------------------------------------
    height_range: tuple[float, float] = (0.5, 0.85)  # figure height H (sole to head top) / frame size
    person_height_m: float = 1.7  # metres; with focal = frame size it sets the figure's distance
    edge_margin_px: float = 1.0  # the whole figure stays this far inside the frame (shrunk if it must)
    thickness_range: tuple[float, float] = (0.8, 1.25)  # per-figure multiplier of every body radius
    # -- body proportions (fractions of H) ---------------------------------------------------------------
    lengths: tuple[tuple[str, float], ...] = (
        ("pelvis_spine", 0.12), ("spine_neck", 0.17), ("neck_head", 0.10), ("hip_half", 0.06),
        ("thigh", 0.25), ("shin", 0.25), ("shoulder_half", 0.10), ("upper_arm", 0.165), ("forearm", 0.15),
        ("hand", 0.045), ("foot", 0.065),
    )
    radii: tuple[tuple[str, float], ...] = (
        ("hips", 0.06), ("belly", 0.075), ("chest", 0.085), ("shoulders", 0.048), ("neck", 0.03),
        ("head", 0.065), ("upper_arm", 0.034), ("forearm", 0.028), ("hand", 0.026), ("thigh", 0.048),
        ("shin", 0.038), ("foot", 0.024),
    )
    # -- joint-angle limits (degrees; 0 = straight down, positive = towards the figure's own side) ----------
    torso_lean_deg: float = 20.0  # pelvis->spine from vertical
    spine_bend_deg: float = 12.0  # spine->neck relative to pelvis->spine
    head_tilt_deg: float = 25.0  # neck->head relative to the chest
    arm_abduction_deg: tuple[float, float] = (-20.0, 165.0)  # upper arm from hanging down
    elbow_flex_deg: float = 140.0  # forearm relative to upper arm, either way
    hip_abduction_deg: tuple[float, float] = (-15.0, 50.0)  # thigh from straight down
    knee_flex_deg: float = 35.0  # shin relative to thigh, either way
    hand_bend_deg: float = 30.0  # hand relative to forearm, either way
    foot_turn_deg: float = 20.0  # foot from perpendicular-outwards to the shin, either way
    chest_top_drop: float = 0.03  # the chest capsule ends this far below the neck joint
    shoulder_drop: float = 0.02  # shoulder joints sit this far below the neck joint
    # out-of-plane bone angles (degrees; negative = towards the camera): foreshortening plus depth relief
    arm_out_of_plane_deg: tuple[float, float] = (-65.0, 45.0)
    leg_out_of_plane_deg: tuple[float, float] = (-50.0, 30.0)
    torso_out_of_plane_deg: tuple[float, float] = (-15.0, 15.0)
    head_out_of_plane_deg: tuple[float, float] = (-10.0, 10.0)
    hand_foot_out_of_plane_deg: tuple[float, float] = (-30.0, 30.0)
    # -- clothing ----------------------------------------------------------------------------------------
    texture_probs: tuple[float, float, float] = (0.4, 0.3, 0.3)  # plain, stripes, noise
    stripe_period_frac: tuple[float, float] = (0.03, 0.09)  # stripe period / frame size
    noise_amp: tuple[float, float] = (0.2, 0.5)  # noise texture contrast
    cloth_sat: tuple[float, float] = (0.15, 0.9)  # HSV saturation of clothing colours
    cloth_val: tuple[float, float] = (0.25, 0.95)  # HSV value of clothing colours
    skin_hue: tuple[float, float] = (0.02, 0.10)
    skin_sat: tuple[float, float] = (0.2, 0.6)
    skin_val: tuple[float, float] = (0.3, 0.95)
    shoe_sat: tuple[float, float] = (0.0, 0.5)
    shoe_val: tuple[float, float] = (0.1, 0.4)
    long_sleeve_prob: float = 0.5
    shorts_prob: float = 0.3
    # -- shading and texture noise (figure and clutter alike) --------------------------------------------
    ambient: float = 0.45  # shading: ambient + (1 - ambient) * Lambert
    light: tuple[float, float, float] = (-0.35, -0.45, 0.82)  # towards the light: (x, y, towards camera)
    noise_cells: tuple[int, int] = (8, 2)  # texture noise: random grids of size/8 and size/2, bilinear up
    noise_coarse_weight: float = 0.6  # weight of the coarse grid (the fine one gets the rest)
    # -- wall (the far background plane) ------------------------------------------------------------------
    wall_depth_m: tuple[float, float] = (6.0, 10.0)  # distance at the frame centre
    wall_tilt: float = 0.3  # inverse depth varies by up to +-tilt (relative) across the frame (a plane)
    wall_sat: tuple[float, float] = (0.05, 0.5)
    wall_val: tuple[float, float] = (0.3, 0.9)
    wall_shading: float = 0.3  # brightness gradient across the frame, up to +-this
    # -- clutter (cluttered background only; paint on the wall, absent from the depth) ------------------------
    n_distractors: tuple[int, int] = (4, 10)  # structures per image, inclusive
    distractor_kind_probs: tuple[float, float, float, float] = (0.25, 0.2, 0.35, 0.2)  # capsule, bar, stick, patch
    stick_segments: tuple[int, int] = (2, 4)  # capsules per stick structure, inclusive
    stick_branch_prob: float = 0.35  # a stick grows a side branch at its first joint
    stick_turn_deg: float = 120.0  # angle between consecutive stick segments, either way
    stick_taper: tuple[float, float] = (0.75, 1.05)  # radius factor from one stick segment to the next
    distractor_skin_prob: float = 0.25  # a distractor takes a skin colour (else a clothing colour)
    bar_length_frac: tuple[float, float] = (0.15, 0.5)  # bar length / H of a virtual figure
    distractor_lengths: tuple[str, ...] = ("thigh", "shin", "upper_arm", "forearm", "spine_neck")  # from `lengths`
    distractor_radii: tuple[str, ...] = ("hips", "belly", "chest", "shoulders", "upper_arm", "forearm", "thigh",
                                         "shin")  # drawn from `radii`
    patch_half_frac: tuple[float, float] = (0.04, 0.13)  # patch half-size / frame size
    patch_ellipse_prob: float = 0.4

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self)))


DEFAULT = SyntheticParams()


@dataclass
class Sample:
    """One rendered image and its exact ground truth."""

    rgb: np.ndarray  # H x W x 3 uint8
    depth: np.ndarray  # H x W float32 in [0, 1], per-image min-max of inverse depth, near = 1
    mask: np.ndarray  # H x W uint8 0/1, figure pixels (coverage >= 0.5)
    joints: np.ndarray  # 16 x 2 float32, (y, x) pixels, pixel centres at integers
    n_distractors: int = 0
    extras: dict[str, float] = field(default_factory=dict)


# -- random draws ---------------------------------------------------------------------------------------------

def _hsv(h: float, s: float, v: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(h, s, v), dtype=np.float32)


def _one(rng: np.random.Generator, values: np.ndarray) -> float:
    return float(values[int(rng.random() * len(values))])


def _cloth_colour(rng: np.random.Generator, p: SyntheticParams) -> np.ndarray:
    return _hsv(rng.random(), rng.uniform(*p.cloth_sat), rng.uniform(*p.cloth_val))


def _skin_colour(rng: np.random.Generator, p: SyntheticParams) -> np.ndarray:
    return _hsv(rng.uniform(*p.skin_hue), rng.uniform(*p.skin_sat), rng.uniform(*p.skin_val))


def _paint(rng: np.random.Generator, p: SyntheticParams, size: int, base: np.ndarray | None = None) -> Paint:
    """A garment (or distractor) paint; textures are drawn from the same distribution for both on purpose."""
    colour = _cloth_colour(rng, p) if base is None else base
    texture = _pick(rng, p.texture_probs)
    angle = rng.uniform(0.0, np.pi)
    return Paint(colour=colour, colour2=_cloth_colour(rng, p), texture=(PLAIN, STRIPES, NOISE)[texture],
                 stripe_dir=(float(np.cos(angle)), float(np.sin(angle))),
                 stripe_period=float(rng.uniform(*p.stripe_period_frac) * size),
                 stripe_phase=float(rng.uniform(0.0, 2.0 * np.pi)), noise_amp=float(rng.uniform(*p.noise_amp)))


def _dir(theta: float) -> np.ndarray:
    """Unit (dy, dx) at angle theta from straight down, positive towards image right."""
    return np.array([np.cos(theta), np.sin(theta)])


# -- the figure -------------------------------------------------------------------------------------------------

@dataclass
class _Part:
    a: str  # start point name
    b: str  # end point name
    radius: str
    paint: str  # top | bottom | skin | shoe


def _parts(long_sleeves: bool, shorts: bool) -> list[_Part]:
    return [
        _Part("r_hip", "l_hip", "hips", "bottom"), _Part("pelvis", "spine", "belly", "top"),
        _Part("spine", "chest_top", "chest", "top"), _Part("r_shoulder", "l_shoulder", "shoulders", "top"),
        _Part("neck", "head", "neck", "skin"), _Part("head", "head", "head", "skin"),
        *[_Part(f"{s}_shoulder", f"{s}_elbow", "upper_arm", "top") for s in "lr"],
        *[_Part(f"{s}_elbow", f"{s}_wrist", "forearm", "top" if long_sleeves else "skin") for s in "lr"],
        *[_Part(f"{s}_wrist", f"{s}_hand", "hand", "skin") for s in "lr"],
        *[_Part(f"{s}_hip", f"{s}_knee", "thigh", "bottom") for s in "lr"],
        *[_Part(f"{s}_knee", f"{s}_ankle", "shin", "skin" if shorts else "bottom") for s in "lr"],
        *[_Part(f"{s}_ankle", f"{s}_toe", "foot", "shoe") for s in "lr"],
    ]


def _pose(rng: np.random.Generator, p: SyntheticParams) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """A random plausible pose facing the camera (the figure's left is image right), in units of H.

    Returns (y, x) positions and depth offsets (towards the camera negative) of every named point, pelvis at 0.
    Each bone also gets an out-of-plane angle: its image length shrinks by cos and its far end moves in depth.
    """
    L = dict(p.lengths)
    deg = np.deg2rad
    pos: dict[str, np.ndarray] = {"pelvis": np.zeros(2)}
    z: dict[str, float] = {"pelvis": 0.0}

    def bone(src: str, dst: str, theta: float, length: float, oop: tuple[float, float]) -> None:
        phi = deg(rng.uniform(*oop))
        pos[dst] = pos[src] + _dir(theta) * length * np.cos(phi)
        z[dst] = z[src] - length * np.sin(phi)

    lean = deg(rng.uniform(-p.torso_lean_deg, p.torso_lean_deg))
    up = np.pi + lean
    bone("pelvis", "spine", up, L["pelvis_spine"], p.torso_out_of_plane_deg)
    chest = up + deg(rng.uniform(-p.spine_bend_deg, p.spine_bend_deg))
    bone("spine", "neck", chest, L["spine_neck"], p.torso_out_of_plane_deg)
    pos["chest_top"], z["chest_top"] = pos["neck"] - _dir(chest) * p.chest_top_drop, z["neck"]
    bone("neck", "head", chest + deg(rng.uniform(-p.head_tilt_deg, p.head_tilt_deg)), L["neck_head"],
         p.head_out_of_plane_deg)
    down_chest, down_hips = chest - np.pi, lean
    for side, sign in (("l", 1.0), ("r", -1.0)):
        # the figure's own side: +x (sign +1) for its left when upright
        shoulder = (pos["neck"] + _dir(down_chest + sign * np.pi / 2) * L["shoulder_half"]
                    + _dir(down_chest) * p.shoulder_drop)
        pos[f"{side}_shoulder"], z[f"{side}_shoulder"] = shoulder, z["neck"]
        hip = _dir(down_hips + sign * np.pi / 2) * L["hip_half"]
        pos[f"{side}_hip"], z[f"{side}_hip"] = hip, 0.0
        upper = down_chest + sign * deg(rng.uniform(*p.arm_abduction_deg))
        bone(f"{side}_shoulder", f"{side}_elbow", upper, L["upper_arm"], p.arm_out_of_plane_deg)
        fore = upper + deg(rng.uniform(-p.elbow_flex_deg, p.elbow_flex_deg))
        bone(f"{side}_elbow", f"{side}_wrist", fore, L["forearm"], p.arm_out_of_plane_deg)
        bone(f"{side}_wrist", f"{side}_hand", fore + deg(rng.uniform(-p.hand_bend_deg, p.hand_bend_deg)),
             L["hand"], p.hand_foot_out_of_plane_deg)
        thigh = down_hips + sign * deg(rng.uniform(*p.hip_abduction_deg))
        bone(f"{side}_hip", f"{side}_knee", thigh, L["thigh"], p.leg_out_of_plane_deg)
        shin = thigh + deg(rng.uniform(-p.knee_flex_deg, p.knee_flex_deg))
        bone(f"{side}_knee", f"{side}_ankle", shin, L["shin"], p.leg_out_of_plane_deg)
        bone(f"{side}_ankle", f"{side}_toe", shin + sign * (np.pi / 2 + deg(rng.uniform(-1, 1) * p.foot_turn_deg)),
             L["foot"], p.hand_foot_out_of_plane_deg)
    return pos, z


def _draw_figure(canvas: Canvas, rng: np.random.Generator, p: SyntheticParams, size: int) -> tuple[np.ndarray, dict]:
    """Draw one figure (z-buffered, far parts first); returns the 16 joints (y, x) in pixels and facts."""
    pos, zoff = _pose(rng, p)
    thick = rng.uniform(*p.thickness_range)
    radii = {k: v * thick for k, v in p.radii}
    parts = _parts(rng.random() < p.long_sleeve_prob, rng.random() < p.shorts_prob)
    skin = _skin_colour(rng, p)
    paints = {"top": _paint(rng, p, size), "bottom": _paint(rng, p, size),
              "skin": Paint(colour=skin, colour2=skin),
              "shoe": Paint(colour=_hsv(rng.random(), rng.uniform(*p.shoe_sat), rng.uniform(*p.shoe_val)),
                            colour2=skin)}
    return place_figure(canvas, rng, size, pos, zoff, parts, radii, paints, p.height_range, p.edge_margin_px,
                        p.person_height_m)


def draw_person(canvas: Canvas, rng: np.random.Generator, size: int, body: SyntheticParams,
                thickness_range: tuple[float, float], height_range: tuple[float, float],
                cloth: Callable[[np.random.Generator], Paint],
                shoe: Callable[[np.random.Generator], np.ndarray]) -> tuple[np.ndarray, dict]:
    """A figure of another family: this module's pose and parts with that family's body, clothes and shoes."""
    pos, zoff = _pose(rng, body)
    thick = rng.uniform(*thickness_range)
    radii = {k: v * thick for k, v in body.radii}
    parts = _parts(rng.random() < body.long_sleeve_prob, rng.random() < body.shorts_prob)
    skin = _skin_colour(rng, body)
    paints = {"top": cloth(rng), "bottom": cloth(rng), "skin": Paint(colour=skin, colour2=skin),
              "shoe": Paint(colour=shoe(rng), colour2=skin)}
    return place_figure(canvas, rng, size, pos, zoff, parts, radii, paints, height_range, body.edge_margin_px,
                        body.person_height_m)


def place_figure(canvas: Canvas, rng: np.random.Generator, size: int, pos: dict[str, np.ndarray],
                 zoff: dict[str, float], parts: list[_Part], radii: dict[str, float], paints: dict[str, Paint],
                 height_range: tuple[float, float], edge_margin_px: float, person_height_m: float
                 ) -> tuple[np.ndarray, dict]:
    """Scale a pose (units of H) into the frame at a random height and place, then draw it far to near.

    Shared by every family, so that all of them frame, z-buffer and label a figure the same way.
    """
    # fit the frame: the standing height H = h * size, shrunk if this pose would not fit
    names = list(pos)
    pts = np.stack([pos[n] for n in names])
    rad = np.zeros(len(names))
    for part in parts:
        for end in (part.a, part.b):
            i = names.index(end)
            rad[i] = max(rad[i], radii[part.radius])
    lo, hi = (pts - rad[:, None]).min(0), (pts + rad[:, None]).max(0)
    extent = hi - lo
    room = size - 1 - 2 * edge_margin_px
    height_px = min(rng.uniform(*height_range) * size, room / extent[0], room / extent[1])
    free = room - extent * height_px
    origin = edge_margin_px - lo * height_px + rng.uniform(0.0, 1.0, 2) * free
    px = {n: origin + pos[n] * height_px for n in names}
    # camera: focal = size px, so a person of person_height_m filling height_px stands at this distance
    metres = person_height_m  # one H in metres
    root_z = metres * size / height_px
    zm = {n: root_z + zoff[n] * metres for n in names}
    order = sorted(parts, key=lambda q: min(zm[q.a], zm[q.b]) - radii[q.radius] * metres, reverse=True)
    for part in order:
        r_px = radii[part.radius] * height_px
        capsule(canvas, px[part.a], px[part.b], r_px, paints[part.paint], za=zm[part.a], zb=zm[part.b],
                r_depth=radii[part.radius] * metres)
    joints = np.stack([px[n] for n in JOINT_NAMES]).astype(np.float32)
    lowest = float(max(px[n][0] + rad[names.index(n)] * height_px for n in names))
    return joints, {"height_px": float(height_px), "root_depth_m": float(root_z), "lowest_px": lowest}


# -- the background ----------------------------------------------------------------------------------------------

def _wall(rng: np.random.Generator, p: SyntheticParams, size: int) -> tuple[np.ndarray, np.ndarray]:
    """A far plane: a smoothly shaded colour and an inverse depth that is affine in the image (a true plane)."""
    u = (np.arange(size, dtype=np.float32) + 0.5) / size - 0.5
    colour = _hsv(rng.random(), rng.uniform(*p.wall_sat), rng.uniform(*p.wall_val))
    gy, gx = (float(v) for v in rng.uniform(-p.wall_shading, p.wall_shading, 2))
    shade = (1.0 + gy * u)[:, None] + (gx * u)[None, :]
    rgb = shade[..., None] * colour
    np.minimum(rgb, 1.0, out=rgb)
    ty, tx = (float(v) for v in rng.uniform(-p.wall_tilt, p.wall_tilt, 2))
    inv0 = 1.0 / rng.uniform(*p.wall_depth_m)
    inv = (inv0 * (1.0 + ty * u))[:, None] + (inv0 * tx * u)[None, :]
    return rgb, inv


def _distractor_paint(rng: np.random.Generator, p: SyntheticParams, size: int) -> Paint:
    if rng.random() < p.distractor_skin_prob:
        skin = _skin_colour(rng, p)
        return Paint(colour=skin, colour2=skin)
    return _paint(rng, p, size)


def _draw_clutter(canvas: Canvas, rng: np.random.Generator, p: SyntheticParams, size: int) -> int:
    """Limb-like paint on the wall, with shapes and colours drawn from the figures' own statistics."""
    n = int(rng.integers(p.n_distractors[0], p.n_distractors[1] + 1))
    lengths = np.array([v for k, v in p.lengths if k in p.distractor_lengths])
    radii = np.array([v for k, v in p.radii if k in p.distractor_radii])
    for _ in range(n):
        kind = _pick(rng, p.distractor_kind_probs)
        h = rng.uniform(*p.height_range) * size  # the H of a virtual figure this structure could belong to
        thick = rng.uniform(*p.thickness_range)
        paint = _distractor_paint(rng, p, size)
        start = rng.uniform(0.0, size - 1.0, 2)
        theta = rng.uniform(0.0, 2.0 * np.pi)
        if kind == 0:  # a single limb-like capsule
            end = start + _dir(theta) * _one(rng, lengths) * h
            capsule(canvas, start, end, _one(rng, radii) * thick * h, paint)
        elif kind == 1:  # a square-ended bar
            end = start + _dir(theta) * rng.uniform(*p.bar_length_frac) * h
            bar(canvas, start, end, _one(rng, radii) * thick * h, paint)
        elif kind == 2:  # a stick structure: a chain of capsules (an arm or a leg), sometimes branched
            segments = int(rng.integers(p.stick_segments[0], p.stick_segments[1] + 1))
            r = _one(rng, radii) * thick * h
            joints = [start]
            for _ in range(segments):
                nxt = joints[-1] + _dir(theta) * _one(rng, lengths) * h
                capsule(canvas, joints[-1], nxt, r, paint)
                joints.append(nxt)
                theta += np.deg2rad(rng.uniform(-p.stick_turn_deg, p.stick_turn_deg))
                r *= rng.uniform(*p.stick_taper)
            if rng.random() < p.stick_branch_prob:
                branch = joints[1] + _dir(rng.uniform(0.0, 2.0 * np.pi)) * _one(rng, lengths) * h
                capsule(canvas, joints[1], branch, r, paint)
        else:  # a flat textured patch
            half = (float(rng.uniform(*p.patch_half_frac) * size), float(rng.uniform(*p.patch_half_frac) * size))
            patch(canvas, start, half, theta, bool(rng.random() < p.patch_ellipse_prob), paint)
    return n


def _noise_field(rng: np.random.Generator, size: int, p: SyntheticParams) -> np.ndarray:
    """Blotchy texture noise in [0, 1] at two scales (bilinear upsampled), shared by every noise texture."""
    coarse, fine = (cv2.resize(rng.random((max(2, size // c),) * 2, dtype=np.float32), (size, size),
                               interpolation=cv2.INTER_LINEAR) for c in p.noise_cells)
    return p.noise_coarse_weight * coarse + (1.0 - p.noise_coarse_weight) * fine


# -- one sample --------------------------------------------------------------------------------------------------

def render_sample(rng: np.random.Generator, size: int, background: str, params: SyntheticParams = DEFAULT) -> Sample:
    """Render one image. The figure draws from its own child stream, so ``clean`` and ``cluttered`` share figures."""
    if background not in BACKGROUNDS:
        raise DkpError(f"unknown background {background!r}; choose {' or '.join(BACKGROUNDS)}")
    if size < 16:
        raise DkpError(f"image size {size} is too small; use 64 or 128")
    figure_rng, wall_rng, clutter_rng = rng.spawn(3)
    rgb, inv_wall = _wall(wall_rng, params, size)
    canvas = Canvas(rgb, _noise_field(wall_rng, size, params), params.ambient, params.light)
    n_distractors = _draw_clutter(canvas, clutter_rng, params, size) if background == "cluttered" else 0
    joints, facts = _draw_figure(canvas, figure_rng, params, size)
    return compose(canvas, inv_wall, joints, facts, n_distractors)


def compose(canvas: Canvas, inv_wall: np.ndarray, joints: np.ndarray, facts: dict[str, float],
            n_distractors: int) -> Sample:
    """The finished sample of every family: the figure's inverse depth over the background's by coverage,
    min-max normalised (near = 1), the uint8 RGB, the mask and the facts."""
    # inverse depth, figure over wall by coverage (1 / inf = 0 off the figure, where the coverage is 0 anyway)
    cover = canvas.cover
    inv = np.divide(1.0, canvas.zbuf, out=canvas.zbuf)
    inv -= inv_wall
    inv *= cover
    inv += inv_wall
    lo, hi = float(inv.min()), float(inv.max())
    depth = (inv - np.float32(lo)) * np.float32(1.0 / (hi - lo)) if hi > lo else np.zeros_like(inv)
    rgb8 = cv2.convertScaleAbs(canvas.rgb, alpha=255.0)  # rounds and saturates to uint8
    mask = (cover >= 0.5).view(np.uint8)
    facts["figure_area"] = float(mask.mean())
    facts["clutter_area"] = float(((canvas.paint >= 0.5) & (mask == 0)).mean())  # visible clutter
    return Sample(rgb8, depth, mask, joints, n_distractors, facts)


def sample_rng(seed: int, split: str, index: int, family: str = DEFAULT_FAMILY) -> np.random.Generator:
    """The RNG of image ``index`` of ``split``: independent of every other image, so order never matters.

    Other families prefix their name's index and version, so no two families share a stream."""
    if family == DEFAULT_FAMILY:
        return np.random.default_rng([GENERATOR_VERSION, seed, SPLIT_IDS[split], index])
    return np.random.default_rng([1000 + FAMILIES.index(family), family_version(family), seed, SPLIT_IDS[split],
                                  index])


def check_family(family: str) -> None:
    if family not in FAMILIES:
        raise DkpError(f"unknown family {family!r}; choose one of {', '.join(FAMILIES)}")


def family_version(family: str) -> int:
    check_family(family)
    if family == DEFAULT_FAMILY:
        return GENERATOR_VERSION
    return _family_module(family).FAMILY_VERSION


def _family_module(family: str) -> Any:
    # imported here: the family modules build on this one (its pose, placement and composition)
    if family == "room":
        from dkp_tui.data import synthetic_room as module
    else:
        from dkp_tui.data import synthetic_stage as module
    return module


def render_family(family: str, rng: np.random.Generator, size: int, background: str,
                  params: SyntheticParams = DEFAULT, variant: dict[str, Any] | None = None) -> Sample:
    """One image of ``family``; ``params`` applies to the default family, ``variant`` (field overrides of the
    family's own parameters, for ablation ladders) to the others."""
    check_family(family)
    if family == DEFAULT_FAMILY:
        return render_sample(rng, size, background, params)
    if background not in BACKGROUNDS:
        raise DkpError(f"unknown background {background!r}; choose {' or '.join(BACKGROUNDS)}")
    if size < 16:
        raise DkpError(f"image size {size} is too small; use 64 or 128")
    module = _family_module(family)
    return module.render(rng, size, background, dataclasses.replace(module.DEFAULT, **(variant or {})))


def family_params(family: str, params: SyntheticParams = DEFAULT, variant: dict[str, Any] | None = None
                  ) -> dict[str, Any]:
    if family == DEFAULT_FAMILY:
        return params.to_dict()
    module = _family_module(family)
    try:
        return dataclasses.replace(module.DEFAULT, **(variant or {})).to_dict()
    except TypeError as err:
        raise DkpError(f"family {family}: {err}") from None


# -- the data set --------------------------------------------------------------------------------------------------

class _Uint16AsUnit:
    """Presents stored uint16 depth as [0, 1] floats chunk by chunk, so a split's depth is never held as floats."""

    def __init__(self, encoded: np.ndarray) -> None:
        self.encoded = encoded

    def __len__(self) -> int:
        return len(self.encoded)

    def __getitem__(self, index: slice) -> np.ndarray:
        return self.encoded[index].astype(np.float32) / np.float32(65535.0)


def _source(params: SyntheticParams, seed: int, background: str, family: str = DEFAULT_FAMILY,
            variant: dict[str, Any] | None = None) -> dict[str, Any]:
    source = {"generator_version": GENERATOR_VERSION, "seed": seed, "background": background,
              "params": family_params(family, params, variant)}
    if family != DEFAULT_FAMILY:  # the default family's manifests stay as they were before families existed
        source.update(family=family, family_version=family_version(family))
    return source


def _manifest(size: int, counts: dict[str, int], source: dict[str, Any]) -> Manifest:
    splits = {s: SplitInfo(count=n, labelled=True, label_scale=float(size), has_masks=True) for s, n in counts.items()}
    return Manifest(kind="synthetic", image_size=size, splits=splits, joint_names=list(JOINT_NAMES),
                    skeleton=[tuple(e) for e in SKELETON], source=source)


def _existing(root: Path, wanted: Manifest) -> Manifest | None:
    """The manifest already at ``root`` if it describes exactly ``wanted`` (and its depth is there), else None."""
    if not (root / layout.MANIFEST).is_file():
        if root.is_dir():
            refuse_foreign(root, force=False)
        return None
    have = layout.read_manifest(root)
    requested = {k: v for k, v in have.source.items() if k != "stats"}  # stats are facts of a build
    same = (have.kind == "synthetic" and have.image_size == wanted.image_size and requested == wanted.source
            and {k: v.count for k, v in have.splits.items()} == {k: v.count for k, v in wanted.splits.items()})
    if not same:
        raise DkpError(f"{root} already holds a different data set ({have.kind}, {have.image_size} px, "
                       f"{', '.join(f'{k} {v.count}' for k, v in have.splits.items())}); "
                       "use --force to rebuild it, or choose another --out")
    return have if DEPTH_TAG in cache.list_tags(root) else None


CHUNK = 256  # images per work unit (one depth shard)
PARALLEL_FROM = 2000  # images; below this, starting worker processes costs more than it saves


def render_chunk(split: str, start: int, stop: int, size: int, background: str, seed: int,
                 params: SyntheticParams, family: str = DEFAULT_FAMILY, variant: dict[str, Any] | None = None
                 ) -> tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """Images [start, stop) of ``split``: (start, rgb, masks, uint16 depth, joints, distractor count).

    A pure function of its arguments, so chunks can be rendered in any process and in any order.
    """
    cv2.setNumThreads(1)  # per-image OpenCV calls are tiny: threads only add overhead
    n = stop - start
    images = np.empty((n, size, size, 3), dtype=np.uint8)
    masks = np.empty((n, size, size), dtype=np.uint8)
    depth = np.empty((n, size, size), dtype=np.uint16)
    joints = np.empty((n, len(JOINT_NAMES), 2), dtype=np.float32)
    clutter = 0
    for k in range(n):
        s = render_family(family, sample_rng(seed, split, start + k, family), size, background, params, variant)
        images[k], masks[k], joints[k] = s.rgb, s.mask, s.joints
        depth[k] = cache.encode_depth(s.depth)
        clutter += s.n_distractors
    return start, images, masks, depth, joints, clutter


def _render_all(counts: dict[str, int], size: int, background: str, seed: int, params: SyntheticParams,
                workers: int, advance: Any, family: str = DEFAULT_FAMILY, variant: dict[str, Any] | None = None) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]]:
    """Every split's arrays, rendered chunk by chunk in this process or in ``workers`` processes."""
    out = {split: (np.empty((n, size, size, 3), np.uint8), np.empty((n, size, size), np.uint8),
                   np.empty((n, size, size), np.uint16), np.empty((n, len(JOINT_NAMES), 2), np.float32), 0)
           for split, n in counts.items()}
    jobs = [(split, a, min(n, a + CHUNK)) for split, n in counts.items() for a in range(0, n, CHUNK)]

    def store(split: str, result: tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]) -> None:
        start, images, masks, depth, joints, clutter = result
        stop = start + len(images)
        arrays = out[split]
        arrays[0][start:stop], arrays[1][start:stop], arrays[2][start:stop], arrays[3][start:stop] = (
            images, masks, depth, joints)
        out[split] = (*arrays[:4], arrays[4] + clutter)
        advance(len(images))

    if workers <= 1:
        for split, a, b in jobs:
            store(split, render_chunk(split, a, b, size, background, seed, params, family, variant))
        return out
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    # spawn: the parent may hold torch/OpenMP threads, which fork does not survive reliably
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(render_chunk, split, a, b, size, background, seed, params, family, variant): split
                   for split, a, b in jobs}
        for future in as_completed(futures):
            store(futures[future], future.result())
    return out


def _write_split(root: Path, split: str, arrays: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]
                 ) -> dict[str, float]:
    images, masks, depth, joints, clutter = arrays
    n = len(images)
    layout.write_split(root, split, images, joints, np.ones(joints.shape[:2], dtype=bool), masks,
                       [f"{split}/{i:06d}" for i in range(n)])
    cache.write_depth_split(root, DEPTH_TAG, split, _Uint16AsUnit(depth))  # type: ignore[arg-type]
    return {"mean_distractors": clutter / max(n, 1), "figure_fraction": float(masks.mean()) if n else 0.0}


def generate_dataset(root: str | Path, size: int = 64, n_train: int = 4000, n_fit: int = 1000, n_test: int = 500,
                     background: str = "cluttered", seed: int = 0, progress: bool = True, force: bool = False,
                     params: SyntheticParams = DEFAULT, workers: int = 0, family: str = DEFAULT_FAMILY,
                     variant: dict[str, Any] | None = None) -> Manifest:
    """Render the three labelled splits, their exact depth cache (tag ``exact``), and the manifest last.

    Idempotent: the same request on an existing set returns it untouched; a different one needs ``force``.
    """
    return prepare(root, size, n_train, n_fit, n_test, background, seed, progress, force, params, workers,
                   family, variant)[0]


def prepare(root: str | Path, size: int = 64, n_train: int = 4000, n_fit: int = 1000, n_test: int = 500,
            background: str = "cluttered", seed: int = 0, progress: bool = True, force: bool = False,
            params: SyntheticParams = DEFAULT, workers: int = 0, family: str = DEFAULT_FAMILY,
            variant: dict[str, Any] | None = None) -> tuple[Manifest, bool]:
    """``generate_dataset`` that also says whether an existing set was reused (for the CLI's report).

    ``workers``: rendering processes; 0 = one per CPU (at most 8) for sets of 2,000 images or more, else 1. The
    bytes written do not depend on it.
    """
    root = Path(root)
    if background not in BACKGROUNDS:
        raise DkpError(f"unknown background {background!r}; choose {' or '.join(BACKGROUNDS)}")
    if size < 16 or size > 1024:
        raise DkpError(f"--size {size}: choose an image size between 16 and 1024 (64 or 128 are the presets')")
    counts = {"train": n_train, "fit": n_fit, "test": n_test}
    for split, n in counts.items():
        if n < 1:
            raise DkpError(f"--n-{split} must be at least 1 (got {n})")
    check_family(family)
    source = _source(params, seed, background, family, variant)
    wanted = _manifest(size, counts, source)
    check_output_dir(root, "--out")
    with writer_lock(root, f"data set {root}", clean=False):  # a second prepare of the folder is refused at once
        return _prepare_locked(root, size, counts, background, seed, progress, force, params, workers, family,
                               variant, source, wanted)


def _prepare_locked(root: Path, size: int, counts: dict[str, int], background: str, seed: int, progress: bool,
                    force: bool, params: SyntheticParams, workers: int, family: str, variant: dict[str, Any] | None,
                    source: dict[str, Any], wanted: Manifest) -> tuple[Manifest, bool]:
    if not force:
        have = _existing(root, wanted)
        if have is not None:
            _say(progress, f"{root}: synthetic data set already prepared with these parameters; reusing it "
                           "(--force rebuilds)")
            return have, True
    # a rebuild: unmark the directory first, so an interrupted run never looks finished, and drop stale depth
    (root / layout.MANIFEST).unlink(missing_ok=True)
    remove_dead_temps(root)  # of a killed prepare; the folder passed its checks above
    if (cache.depth_root(root) / DEPTH_TAG).is_dir():
        shutil.rmtree(cache.depth_root(root) / DEPTH_TAG)
    root.mkdir(parents=True, exist_ok=True)

    total = sum(counts.values())
    if workers <= 0:
        workers = min(os.cpu_count() or 1, 8) if total >= PARALLEL_FROM else 1
    threads = cv2.getNumThreads()
    try:
        with _progress(progress, total) as advance:
            rendered = _render_all(counts, size, background, seed, params, workers, advance, family, variant)
    finally:
        cv2.setNumThreads(threads)
    facts = {split: _write_split(root, split, arrays) for split, arrays in rendered.items()}
    source["stats"] = {"mean_distractors": {k: round(v["mean_distractors"], 3) for k, v in facts.items()},
                       "figure_fraction": {k: round(v["figure_fraction"], 4) for k, v in facts.items()}}
    manifest = _manifest(size, counts, source)
    text = json.dumps(manifest.to_dict(), indent=2, sort_keys=False) + "\n"  # what write_manifest writes
    shard = cache.DEFAULT_SHARD_SIZE
    cache.write_depth_manifest(root, DEPTH_TAG, {  # the keys of `dkp depth`'s manifests, where they apply
        "source": "synthetic", "model": "exact-synthetic", "backend": "dkp synthetic renderer",
        "generator_version": GENERATOR_VERSION, "output": {"size": [size, size], "interpolation": "none"},
        "normalisation": "minmax-inverse-depth", "polarity": "near=1", "encoding": "uint16 round(d * 65535)",
        "shard_size": shard, "dataset_manifest_hash": hashlib.sha256(text.encode("utf-8")).hexdigest()[:16],
        "splits": {k: {"count": n, "constant": 0, "shards": (n + shard - 1) // shard} for k, n in counts.items()},
        "images": sum(counts.values()), "constant_maps": 0,
    })
    layout.write_manifest(root, manifest)
    return manifest, False


def _say(enabled: bool, message: str) -> None:
    if enabled:
        from rich.console import Console

        Console(stderr=True).print(message)


class _progress:
    """A rich progress bar with ETA on stderr (or nothing); yields ``advance(n)``."""

    def __init__(self, enabled: bool, total: int) -> None:
        self.enabled, self.total = enabled, total
        self.bar: Any = None

    def __enter__(self) -> Any:
        if not self.enabled:
            return lambda n: None
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.bar = Progress(TextColumn("synthetic"), BarColumn(), MofNCompleteColumn(), TextColumn("images"),
                            TimeRemainingColumn(), console=Console(stderr=True), transient=False)
        self.bar.start()
        task = self.bar.add_task("render", total=self.total)
        return lambda n: self.bar.advance(task, n)

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()
