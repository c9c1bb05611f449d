"""What a synthetic family module exposes to the registry: one ``Family`` record.

Why a record: the registry (``registry.py``), the data-set writer and the CLI treat every family alike (draw an
image, record its parameters and version, seed its images' RNGs) without knowing which family it is. A family
module builds its scene, clothes and body from the shared pieces (``scene.py``, ``figure.py``, ``render.py``) and
imports no other family.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from dkp_tui.data.synthetic.figure import Sample


@dataclass(frozen=True)
class Family:
    name: str  # as given to `dkp prepare synthetic --family`
    version: int  # bumped with any change to what the family draws (docs/synthetic.md)
    defaults: Any  # the family's frozen parameter dataclass (with ``to_dict``), recorded in each manifest
    render: Callable[[np.random.Generator, int, str, Any], Sample]  # (rng, size, background, params) -> one image
    # the first entry of each image's RNG seed after the version; None for the one family (``figures``) whose
    # streams and manifests predate families, so that its data sets are byte for byte what they were
    stream: int | None

    @property
    def named(self) -> bool:
        """Whether its data sets record the family's name and version (all but the original family's do)."""
        return self.stream is not None

    def rng(self, seed: int, split_id: int, index: int) -> np.random.Generator:
        prefix = [self.version] if self.stream is None else [self.stream, self.version]
        return np.random.default_rng([*prefix, seed, split_id, index])
