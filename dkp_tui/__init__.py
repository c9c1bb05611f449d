"""dkp: self-supervised human keypoints, distilled from a depth teacher (Distill-DKP)."""

import os

# OpenMP threads that spin while idle starve each other when several processes share the cores
# (torchrun ranks, a data loader, `dkp watch`): measured up to 20x slower steps on 2 cores.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from dkp_tui.version import __version__  # noqa: E402

__all__ = ["__version__"]
