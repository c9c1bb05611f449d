"""`dkp prepare taichi ROOT`: the Taichi reference layout (clips, eval frames, ground-truth pickles) as a data set."""

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
Layout read (AutoLink's): train/<clip>/*.png or train/<clip>.mp4, eval_images/taichi-256/{train,test}/, landmark/taichi_{train,test}_gt.pkl (or landmarks/, or a .json copy).

Writes train (clip frames), fit (5,000 labelled eval frames) and test (300) at --size; labels stay in pixels of the 256-px frame, (y, x), -1 = missing. Default --out: data/taichi.

Examples:

  dkp prepare taichi ~/data/taichi

  dkp prepare taichi ~/data/taichi --clips-from paper_clips.txt --out data/taichi-paper

  dkp prepare taichi ~/data/taichi --skip-bad --json
"""


def _taichi_command(
    root: Path = typer.Argument(..., help="Taichi data root (holds train/, eval_images/ and landmark/)."),
    clips_from: Path | None = typer.Option(None, "--clips-from",
                                           help="Text file naming the train clips to use, one per line."),
    gt_train: Path | None = typer.Option(None, "--gt-train", help="Fit ground truth (.pkl or .json) if not in "
                                                                  "landmark/."),
    gt_test: Path | None = typer.Option(None, "--gt-test", help="Test ground truth (.pkl or .json) if not in "
                                                                "landmark/."),
    out: OutOpt = None,
    size: SizeOpt = None,
    preset: PresetOpt = "",
    force: ForceOpt = False,
    skip_bad: SkipBadOpt = False,
    workers: WorkersOpt = 0,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Prepare Taichi (TaiChi-HD): training clips plus the labelled eval frames of the keypoint protocol.

    The ground-truth pickles are read with a restricted unpickler (nothing in them is executed) and kept as JSON.
    """
    from dkp_tui.data.taichi import plan_taichi

    image_size, out_dir = resolve(preset, "taichi", size, out, "data/taichi")
    run(lambda r: plan_taichi(root, clips_from=clips_from, gt_train=gt_train, gt_test=gt_test, reporter=r),
        out_dir, image_size, force, skip_bad, workers, json_out, quiet)


def register(prepare_app: typer.Typer) -> None:
    prepare_app.command("taichi", help=command_help(_taichi_command.__doc__, EXAMPLES))(guarded(_taichi_command))
