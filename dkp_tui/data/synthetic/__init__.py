"""The built-in synthetic data set (`dkp prepare synthetic`): articulated figures with exact depth, masks and
joints, in three families of figure and scene (docs/synthetic.md).

The package, from the bottom up (each module imports only those above it):

- ``render``: anti-aliased shapes (capsules, bars, patches) on one canvas, with a z-buffer for figure parts;
- ``scene``: colours, palettes, texture noise, textured walls and floors with exact planar depth, light fields;
- ``figure``: the figure engine every family draws with: skeleton, body parameters, pose, placement, the sample;
- ``family``: the ``Family`` record a family module exposes;
- ``figures``, ``room``, ``stage``: one module per family, each importing no other family;
- ``registry``: the families by name, their versions, parameters, images and RNG streams;
- ``dataset``: the data set written through the prepare engine, streamed chunk by chunk.

The names below are the package's public interface; code outside it imports them from here.
"""

from dkp_tui.data.synthetic.dataset import (
    CHUNK,
    DEPTH_TAG,
    PARALLEL_FROM,
    generate_dataset,
    prepare,
    render_chunk,
)
from dkp_tui.data.synthetic.family import Family
from dkp_tui.data.synthetic.figure import (
    BACKGROUNDS,
    DEFAULT,
    GENERATOR_VERSION,
    JOINT_NAMES,
    SKELETON,
    Sample,
    SyntheticParams,
    compose,
    draw_person,
    place_figure,
)
from dkp_tui.data.synthetic.figures import render as render_sample
from dkp_tui.data.synthetic.registry import (
    DEFAULT_FAMILY,
    FAMILIES,
    SPLIT_IDS,
    check_family,
    family_params,
    family_version,
    render_family,
    sample_rng,
)

__all__ = [
    "BACKGROUNDS", "CHUNK", "DEFAULT", "DEFAULT_FAMILY", "DEPTH_TAG", "FAMILIES", "GENERATOR_VERSION", "JOINT_NAMES",
    "PARALLEL_FROM", "SKELETON", "SPLIT_IDS", "Family", "Sample", "SyntheticParams", "check_family", "compose",
    "draw_person", "family_params", "family_version", "generate_dataset", "place_figure", "prepare", "render_chunk",
    "render_family", "render_sample", "sample_rng",
]
