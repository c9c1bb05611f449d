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
from dkp_tui.commands.help_text import command_help

EXAMPLES = """
Reads every image (jpg, png, bmp, webp, tif) and video (mp4, avi, mov, mkv, webm, ...) under PATH, sub-folders included. Videos are sampled at --fps. Frames are center-cropped to a square (--crop none resizes the whole frame instead, changing its aspect ratio) and resized to --size. Default --out: data/<name of PATH>.

Examples:

  dkp prepare folder ~/videos/dance --out data/dance --fps 5

  dkp prepare folder ~/photos --crop none --size 128

  dkp prepare folder clip.mp4 --fps 10 --test-fraction 0.1 --json

  dkp prepare folder ~/videos/dance --labels dance_coco.json --out data/dance   # + fit/test splits from labels

  dkp prepare folder ~/videos/dance --labels dance_coco.json --labels next/labelled.slp --out data/dance2

Labels (--labels): COCO keypoints JSON, DeepLabCut CollectedData_*.csv (single animal), a CSV with the header image,joint,x,y, and through sleap-io (the labels extra) SLEAP .slp, NWB .nwb (ndx-pose), Label Studio JSON and Ultralytics YOLO pose (its data.yaml or folder); pixels of the original image or video frame (video frames named clip.mp4#<frame index>). They get the same crop and resize as the pixels; the labelled frames form the fit and test splits (--test-fraction, default 0.2 with labels, drawn by whole file), and the test files are left out of train.
"""


def _folder_command(
    path: Path = typer.Argument(..., help="A folder of images and/or videos (or one file)."),
    fps: float = typer.Option(5.0, "--fps", help="Frames sampled per second of video (0 = every frame).", min=0),
    crop: str = typer.Option("center", "--crop", help="center: centred square crop; none: resize the whole frame."),
    test_fraction: float | None = typer.Option(
        None, "--test-fraction", show_default=False,
        help="Fraction of the files (whole videos) held out as a test split (default 0, or 0.2 with --labels)."),
    labels: list[Path] | None = typer.Option(None, "--labels", help="Keypoint labels in original-frame pixels "
                                             "(see above); repeat to add the frames labelled next."),
    label_format: str = typer.Option("auto", "--label-format", help="auto (by name and content) | coco | dlc | csv | slp | nwb | labelstudio | ultralytics."),
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
    """Prepare your own footage: images and video frames, cropped and resized; with --labels, fit/test splits."""
    from dkp_tui.data.folder import plan_folder

    name = path.resolve().stem or "folder"
    image_size, out_dir = resolve(preset, None, size, out, f"data/{name}")
    run(lambda r: plan_folder(path, fps=fps or None, crop=crop, test_fraction=test_fraction, seed=seed, reporter=r,
                              labels=list(labels or []), label_format=label_format, size=image_size),
        out_dir, image_size, force, skip_bad, workers, json_out, quiet)


def register(prepare_app: typer.Typer) -> None:
    prepare_app.command("folder", help=command_help(_folder_command.__doc__, EXAMPLES))(guarded(_folder_command))
