"""`dkp prepare deepfashion ROOT`: the In-shop subset with the AlphaPose split (CSV + JSON + img/)."""

from __future__ import annotations

from pathlib import Path

import typer

from dkp_tui.commands._prepare_cli import (
    ForceOpt,
    JsonOpt,
    OutOpt,
    PresetOpt,
    QuietOpt,
    SizeOpt,
    SkipBadOpt,
    WorkersOpt,
    resolve,
    run,
)
from dkp_tui.commands.common import guarded
from dkp_tui.commands.help_text import command_help

EXAMPLES = """
Layout read: data_{train,test}.csv (header id,filename), data_{train,test}.json (17 COCO keypoints, (x, y) px of the 256-px image) and img/ (or images/). A CSV filename that disagrees with its JSON image_path is refused.

Writes train (= fit, stored once) and test; labels in pixels of the 256-px image, (y, x). Default --out: data/deepfashion.

Examples:

  dkp prepare deepfashion ~/data/deepfashion

  dkp prepare deepfashion ~/data/deepfashion --size 128 --out data/deepfashion --json
"""


def _deepfashion_command(
    root: Path = typer.Argument(..., help="DeepFashion root (holds data_train.csv, data_train.json and img/)."),
    out: OutOpt = None,
    size: SizeOpt = None,
    preset: PresetOpt = "",
    force: ForceOpt = False,
    skip_bad: SkipBadOpt = False,
    workers: WorkersOpt = 0,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Prepare DeepFashion (In-shop): 10,604 train/fit and 1,179 test images with 17 keypoints."""
    from dkp_tui.data.deepfashion import plan_deepfashion

    image_size, out_dir = resolve(preset, "deepfashion", size, out, "data/deepfashion")
    run(lambda r: plan_deepfashion(root), out_dir, image_size, force, skip_bad, workers, json_out, quiet)


def register(prepare_app: typer.Typer) -> None:
    prepare_app.command("deepfashion", help=command_help(_deepfashion_command.__doc__, EXAMPLES))(
        guarded(_deepfashion_command))
