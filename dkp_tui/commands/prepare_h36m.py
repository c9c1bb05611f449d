"""`dkp prepare h36m ROOT`: the processed Human3.6M crops (six actions; S1, S5-S9 train/fit, S11 test)."""

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
Layout read: S*/WithBackground/<Action.camera>/<frame>.jpg, S*/Landmarks/<same>/<frame>.mat (keypoints_2d 32x2 in [0, 1]) and, for --without-background, S*/BackgroudMask/<same>/<frame>.png. Actions are matched as folder-name prefixes (printed). Reading .mat files needs scipy: pip install 'dkp-tui[h36m]'.

Writes train (= fit, stored once) and test; labels normalised to [0, 1], (y, x). Default --out: data/h36m (data/h36m-wobg with --without-background).

Examples:

  dkp prepare h36m ~/data/h36m

  dkp prepare h36m ~/data/h36m --without-background

  dkp prepare h36m ~/data/h36m --skip-bad --json
"""


def _h36m_command(
    root: Path = typer.Argument(..., help="Processed Human3.6M root (holds S1, S5, ..., S11)."),
    without_background: bool = typer.Option(False, "--without-background",
                                            help="Multiply each frame by its BackgroudMask (the 'w/o B' column)."),
    out: OutOpt = None,
    size: SizeOpt = None,
    preset: PresetOpt = "",
    force: ForceOpt = False,
    skip_bad: SkipBadOpt = False,
    workers: WorkersOpt = 0,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Prepare Human3.6M (with background by default): crops, 32-joint landmarks, the protocol's splits."""
    from dkp_tui.data.h36m import plan_h36m

    image_size, out_dir = resolve(preset, "h36m", size, out, "data/h36m-wobg" if without_background else "data/h36m")
    run(lambda r: plan_h36m(root, without_background=without_background, reporter=r),
        out_dir, image_size, force, skip_bad, workers, json_out, quiet)


def register(prepare_app: typer.Typer) -> None:
    prepare_app.command("h36m", help=command_help(_h36m_command.__doc__, EXAMPLES))(guarded(_h36m_command))
