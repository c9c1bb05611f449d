"""`dkp prepare synthetic`: render the built-in data set (figures, exact depth, masks, joints) into the layout."""

from __future__ import annotations

from pathlib import Path

import typer

from dkp_tui.commands.common import console, guarded, print_json
from dkp_tui.commands.help_text import command_help
from dkp_tui.errors import DkpError

DEFAULT_PRESET = "synthetic-cpu"

EXAMPLES = """
Examples:

  dkp prepare synthetic                      # preset synthetic-cpu: 64 px, data/synthetic-cpu

  dkp prepare synthetic --preset synthetic   # 128 px, data/synthetic

  dkp prepare synthetic --background clean --out data/synthetic-clean   # the control

  dkp prepare synthetic --family room --background clean --out data/room-clean   # another figure/scene family

  dkp prepare synthetic --n-train 500 --n-fit 200 --n-test 100 --out /tmp/tiny --json
"""


def _synthetic_command(
    preset: str = typer.Option("", "--preset", "-p",
                               help=f"Preset giving the image size and output folder (default {DEFAULT_PRESET})."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Data-set directory (default: the preset's data.dataset)."),
    size: int | None = typer.Option(None, "--size", help="Stored image size in pixels (default: model.image_size)."),
    n_train: int = typer.Option(4000, "--n-train", help="Training images (their labels are stored, never trained on)."),
    n_fit: int = typer.Option(1000, "--n-fit", help="Labelled images for the evaluation's regression fit."),
    n_test: int = typer.Option(500, "--n-test", help="Labelled test images."),
    background: str = typer.Option("cluttered", "--background", "-b",
                                   help="cluttered (limb-like paint on the wall, absent from depth) or clean."),
    family: str = typer.Option("figures", "--family", "-f",
                               help="Figure and scene family: figures (default), room or stage (docs/synthetic.md)."),
    seed: int = typer.Option(0, "--seed", help="Data seed: the same seed gives the same bytes."),
    workers: int = typer.Option(0, "--workers", help="Rendering processes (0 = one per CPU for large sets)."),
    force: bool = typer.Option(False, "--force", help="Rebuild even if the folder holds a (different) data set."),
    json_out: bool = typer.Option(False, "--json", help="Print the manifest summary as JSON on stdout."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar or messages."),
) -> None:
    """Render the built-in synthetic figures with exact depth, masks and joints (train, fit and test splits).

    The cluttered background paints limb-like distractors on a far, flat wall: they mislead an RGB model but
    are invisible in depth. Parameters are fixed and documented in docs/synthetic.md.
    """
    from dkp_tui.config import load_config
    from dkp_tui.data.synthetic import (
        BACKGROUNDS,
        DEPTH_TAG,
        FAMILIES,
        GENERATOR_VERSION,
        family_version,
        prepare,
    )

    if background not in BACKGROUNDS:
        raise DkpError(f"--background {background!r}: choose {' or '.join(BACKGROUNDS)}")
    if family not in FAMILIES:
        raise DkpError(f"--family {family!r}: choose one of {', '.join(FAMILIES)}")
    cfg = load_config(preset or DEFAULT_PRESET)
    root = out if out is not None else Path(cfg.data.dataset)
    image_size = size if size is not None else cfg.model.image_size
    manifest, reused = prepare(root, size=image_size, n_train=n_train, n_fit=n_fit, n_test=n_test,
                               background=background, seed=seed, progress=not quiet, force=force,
                               workers=workers, family=family)
    if json_out:
        print_json({
            "dataset": str(root), "kind": manifest.kind, "image_size": manifest.image_size, "reused": reused,
            "splits": {k: v.to_dict() for k, v in manifest.splits.items()}, "depth_tag": DEPTH_TAG,
            "background": background, "family": family, "family_version": family_version(family), "seed": seed,
            "generator_version": GENERATOR_VERSION,
            "joint_names": manifest.joint_names, "stats": manifest.source.get("stats", {}),
        })
    elif not quiet and not reused:  # a reuse has already been reported
        counts = ", ".join(f"{k} {v.count}" for k, v in manifest.splits.items())
        console.print(f"[green]wrote[/] synthetic ({family}, {background}, {manifest.image_size} px; {counts}) "
                      f"with depth cache '{DEPTH_TAG}': {root}")


def register(prepare_app: typer.Typer) -> None:
    prepare_app.command("synthetic", help=command_help(_synthetic_command.__doc__, EXAMPLES))(
        guarded(_synthetic_command))
