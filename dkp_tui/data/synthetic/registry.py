"""The registry of synthetic families: which exist, and everything the data-set writer and the CLI ask of one by
name (its version, its parameters, one image, the RNG of one image).

Why here: adding a family is one module that builds a ``Family`` record and one line below; nothing else
dispatches on a family's name.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from dkp_tui.data.synthetic import figures, room, stage
from dkp_tui.data.synthetic.family import Family
from dkp_tui.data.synthetic.figure import DEFAULT, Sample, SyntheticParams, check_request
from dkp_tui.errors import DkpError

_FAMILIES = {f.name: f for f in (figures.FAMILY, room.FAMILY, stage.FAMILY)}
# figure and scene families (docs/synthetic.md, "Families"); the first is the default
FAMILIES = tuple(_FAMILIES)
DEFAULT_FAMILY = figures.FAMILY.name
SPLIT_IDS = {"train": 0, "fit": 1, "test": 2}


def get(family: str) -> Family:
    try:
        return _FAMILIES[family]
    except KeyError:
        raise DkpError(f"unknown family {family!r}; choose one of {', '.join(FAMILIES)}") from None


def check_family(family: str) -> None:
    get(family)


def family_version(family: str) -> int:
    return get(family).version


def resolve_params(family: str, params: SyntheticParams = DEFAULT, variant: dict[str, Any] | None = None) -> Any:
    """The parameters ``family`` draws with: ``params`` if they are of the family's own kind (the default family's
    ``SyntheticParams``), else its defaults; then ``variant``'s field overrides (ablation ladders)."""
    fam = get(family)
    base = params if isinstance(params, type(fam.defaults)) else fam.defaults
    try:
        return dataclasses.replace(base, **(variant or {}))
    except TypeError as err:
        raise DkpError(f"family {family}: {err}") from None


def family_params(family: str, params: SyntheticParams = DEFAULT, variant: dict[str, Any] | None = None
                  ) -> dict[str, Any]:
    """What a data set's manifest records of the parameters (see ``resolve_params``)."""
    return resolve_params(family, params, variant).to_dict()


def render_family(family: str, rng: np.random.Generator, size: int, background: str,
                  params: SyntheticParams = DEFAULT, variant: dict[str, Any] | None = None) -> Sample:
    """One image of ``family`` (parameters as in ``resolve_params``)."""
    fam = get(family)
    check_request(size, background)
    return fam.render(rng, size, background, resolve_params(family, params, variant))


def sample_rng(seed: int, split: str, index: int, family: str = DEFAULT_FAMILY) -> np.random.Generator:
    """The RNG of image ``index`` of ``split``: independent of every other image, so order never matters.

    Every family but the original prefixes its own stream key and version, so no two families share a stream."""
    return get(family).rng(seed, SPLIT_IDS[split], index)
