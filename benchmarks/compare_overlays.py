"""Keypoint overlays of several runs on the same test images, one row per run (the figure in docs/results.md).

    python benchmarks/compare_overlays.py DATASET OUT.png RUN [RUN ...] [--n 6] [--labels]

Teachers are drawn on the depth maps they see, students on RGB; the learned skeleton (strong edges) is drawn too.
The drawing is `dkp_tui.eval.figures.overlay_rows`, which also makes `dkp eval --runs N --compare`'s compare.png.
"""

from __future__ import annotations

import argparse

from dkp_tui.eval.figures import overlay_rows
from dkp_tui.viz import save_png


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset")
    parser.add_argument("out")
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--n", type=int, default=6)
    parser.add_argument("--labels", action="store_true", help="Write each run's path to the left of its row.")
    args = parser.parse_args()
    grid = overlay_rows(args.dataset, args.runs, args.n, labels=args.runs if args.labels else None)
    save_png(args.out, grid)
    print(f"wrote {args.out}: rows = {', '.join(args.runs)}")


if __name__ == "__main__":
    main()
