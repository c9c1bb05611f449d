"""The figure engine every synthetic family draws with: the skeleton, the body and its parameters, a random pose,
its placement in the frame, the z-buffered drawing of its parts, and the finished sample.

Why one engine: every family (``figures``, ``room``, ``stage``) must frame, z-buffer and label a figure the same
way, so that their ground truth means the same thing and one family's scores compare with another's. A family
changes the body's proportions, the clothes and the scene; the skeleton, the pose limits and the camera are here.

``SyntheticParams`` is the default family's whole parameter set (its manifests record it as it is); its body fields
are also the base body the other families redraw around. Changing any of them, or the drawing code, is a versioned
change (``GENERATOR_VERSION``), documented in docs/synthetic.md.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from dkp_tui.data.synthetic import scene
from dkp_tui.data.synthetic.render import Canvas, Paint, capsule
from dkp_tui.errors import DkpError

GENERATOR_VERSION = 1
BACKGROUNDS = ("cluttered", "clean")

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


def check_request(size: int, background: str) -> None:
    """What is checked before any family draws (``render_family``, the data-set writer, ``figures.render``)."""
    if background not in BACKGROUNDS:
        raise DkpError(f"unknown background {background!r}; choose {' or '.join(BACKGROUNDS)}")
    if size < 16:
        raise DkpError(f"image size {size} is too small; use 64 or 128")


def direction(theta: float) -> np.ndarray:
    """Unit (dy, dx) at angle theta from straight down, positive towards image right."""
    return np.array([np.cos(theta), np.sin(theta)])


def skin_colour(rng: np.random.Generator, p: SyntheticParams) -> np.ndarray:
    return scene.hsv(rng.uniform(*p.skin_hue), rng.uniform(*p.skin_sat), rng.uniform(*p.skin_val))


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
        pos[dst] = pos[src] + direction(theta) * length * np.cos(phi)
        z[dst] = z[src] - length * np.sin(phi)

    lean = deg(rng.uniform(-p.torso_lean_deg, p.torso_lean_deg))
    up = np.pi + lean
    bone("pelvis", "spine", up, L["pelvis_spine"], p.torso_out_of_plane_deg)
    chest = up + deg(rng.uniform(-p.spine_bend_deg, p.spine_bend_deg))
    bone("spine", "neck", chest, L["spine_neck"], p.torso_out_of_plane_deg)
    pos["chest_top"], z["chest_top"] = pos["neck"] - direction(chest) * p.chest_top_drop, z["neck"]
    bone("neck", "head", chest + deg(rng.uniform(-p.head_tilt_deg, p.head_tilt_deg)), L["neck_head"],
         p.head_out_of_plane_deg)
    down_chest, down_hips = chest - np.pi, lean
    for side, sign in (("l", 1.0), ("r", -1.0)):
        # the figure's own side: +x (sign +1) for its left when upright
        shoulder = (pos["neck"] + direction(down_chest + sign * np.pi / 2) * L["shoulder_half"]
                    + direction(down_chest) * p.shoulder_drop)
        pos[f"{side}_shoulder"], z[f"{side}_shoulder"] = shoulder, z["neck"]
        hip = direction(down_hips + sign * np.pi / 2) * L["hip_half"]
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


def draw_person(canvas: Canvas, rng: np.random.Generator, size: int, body: SyntheticParams,
                thickness_range: tuple[float, float], height_range: tuple[float, float],
                cloth: Callable[[np.random.Generator], Paint],
                shoe: Callable[[np.random.Generator], np.ndarray]) -> tuple[np.ndarray, dict]:
    """A family's figure: the engine's pose and parts with the family's body, clothes and shoes."""
    pos, zoff = _pose(rng, body)
    thick = rng.uniform(*thickness_range)
    radii = {k: v * thick for k, v in body.radii}
    parts = _parts(rng.random() < body.long_sleeve_prob, rng.random() < body.shorts_prob)
    skin = skin_colour(rng, body)
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


# -- the finished sample ------------------------------------------------------------------------------------------

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
