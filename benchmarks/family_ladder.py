"""Build the data sets of a family's ablation ladder: one change per rung, from depth-as-grey to the full family.

    python benchmarks/family_ladder.py room [--out data/ladder] [--size 64]

Each rung is a ``dkp prepare synthetic``-layout data set under OUT/<family>-<rung> (exact depth included), so a
rung trains and scores with the usual commands (docs/results.md, "Why the RGB student stops"):

- ``depth-grey``: the full clean family, its exact depth maps written as grey RGB images
- ``flat``: plain clothing and plain walls/floor (colours and the shared palette stay)
- ``limbs``: textured clothing, plain walls/floor
- ``full``: the family as shipped (textured clothing, walls and floor)
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from dkp_tui.data.synthetic import prepare
from dkp_tui.formats import dataset_dir
from dkp_tui.formats.depth_cache import open_depth

PLAIN5 = (1.0, 0.0, 0.0, 0.0, 0.0)
RUNGS: dict[str, dict[str, dict]] = {
    "room": {
        "flat": {"cloth_texture_probs": PLAIN5, "wall_texture_probs": PLAIN5, "floor_texture_probs": PLAIN5},
        "limbs": {"wall_texture_probs": PLAIN5, "floor_texture_probs": PLAIN5},
        "full": {},
    },
    "stage": {
        "flat": {"cloth_texture_probs": PLAIN5, "backdrop_grain": (0.0, 0.0)},
        "limbs": {"backdrop_grain": (0.0, 0.0)},
        "full": {},
    },
}


def depth_as_grey(dst: Path, size: int, family: str) -> None:
    """A copy of the full clean set whose RGB images are its depth maps (the same pixels in all channels)."""
    prepare(dst, size=size, background="clean", family=family, progress=False)
    manifest = dataset_dir.read_manifest(dst)
    for split in manifest.splits:
        path = dataset_dir.split_dir(dst, manifest, split) / "images.npy"
        images = np.load(path)
        depth = open_depth(dst, split)[:]
        grey = np.round(np.asarray(depth, dtype=np.float32) * (255.0 / 65535.0)).clip(0, 255).astype(np.uint8)
        images[:] = grey[..., None]
        dataset_dir.save_array(path, images)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("family", choices=sorted(RUNGS))
    parser.add_argument("--out", default="data/ladder")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--rungs", default="depth-grey,flat,limbs,full")
    args = parser.parse_args()
    out = Path(args.out)
    for rung in args.rungs.split(","):
        dst = out / f"{args.family}-{rung}"
        if rung == "depth-grey":
            depth_as_grey(dst, args.size, args.family)
        else:
            prepare(dst, size=args.size, background="clean", family=args.family, variant=RUNGS[args.family][rung],
                    progress=False)
        print(f"{rung}\t{dst}")


if __name__ == "__main__":
    main()
