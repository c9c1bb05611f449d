"""`dkp prepare folder PATH`: your own images and videos as an unlabelled training set."""

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

EXAMPLES = """
Reads every image (jpg, png, bmp, webp, tif) and video (mp4, avi, mov, mkv, webm, ...) under PATH, sub-folders included. Videos are sampled at --fps. Frames are center-cropped to a square (--crop none resizes the whole frame instead, changing its aspect ratio) and resized to --size. Default --out: data/<name of PATH>.

Examples:

  dkp prepare folder ~/videos/dance --out data/dance --fps 5

  dkp prepare folder ~/photos --crop none --size 128

  dkp prepare folder clip.mp4 --fps 10 --test-fraction 0.1 --json
"""


def _folder_command(
    path: Path = typer.Argument(..., help="A folder of images and/or videos (or one file)."),
    fps: float = typer.Option(5.0, "--fps", help="Frames sampled per second of video (0 = every frame).", min=0),
    crop: str = typer.Option("center", "--crop", help="center: centred square crop; none: resize the whole frame."),
    test_fraction: float = typer.Option(0.0, "--test-fraction",
                                        help="Fraction of the files (whole videos) held out as a test split."),
    seed: int = typer.Option(0, "--seed", help="Seed of the --test-fraction draw."),
    out: OutOpt = None,
    size: SizeOpt = None,
    preset: PresetOpt = "",
    force: ForceOpt = False,
    skip_bad: SkipBadOpt = False,
    workers: WorkersOpt = 0,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Prepare your own footage: images and video frames, cropped and resized, no labels (train split only)."""
    from dkp_tui.data.folder import plan_folder

    name = path.resolve().stem or "folder"
    image_size, out_dir = resolve(preset, None, size, out, f"data/{name}")
    run(lambda r: plan_folder(path, fps=fps or None, crop=crop, test_fraction=test_fraction, seed=seed, reporter=r),
        out_dir, image_size, force, skip_bad, workers, json_out, quiet)


def register(prepare_app: typer.Typer) -> None:
    prepare_app.command("folder", help=(_folder_command.__doc__ or "") + "\n" + EXAMPLES)(guarded(_folder_command))
