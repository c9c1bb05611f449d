"""dkp: self-supervised human keypoints, distilled from a depth teacher (Distill-DKP)."""

import os

if int(os.environ.get("WORLD_SIZE", "1")) > 1:
    # Several ranks on one machine (torchrun): OpenMP threads that spin while idle steal the cores the other
    # ranks need (steps up to 20x slower, docs/performance.md). A single process keeps libgomp's default, whose
    # short spin is 1.7x faster for the small CPU presets. libgomp reads this once, when torch loads.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from dkp_tui.version import __version__  # noqa: E402

__all__ = ["__version__"]
