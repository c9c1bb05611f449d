"""`dkp outliers`: the frames to label next, written as a labelling job SLEAP opens."""

from __future__ import annotations

from pathlib import Path

import typer

from dkp_tui.commands.common import console, guarded, print_json
from dkp_tui.commands.help_text import command_help

EXAMPLES = """
Examples:

  dkp outliers runs/own videos/ --n 20 --out label-next/      # label-next/job.slp, frames/*.png, picks.json

  dkp outliers runs/own videos/ --labelled labels.json --n 20 --out next/   # + the regression residual

  dkp outliers runs/own clip0.mp4 clip1.mp4 --n 10 --min-gap 10 --out next/ --json
"""


def _outliers_command(
    run: Path = typer.Argument(..., help="Run directory or .safetensors (or a `dkp export`ed .onnx)."),
    inputs: list[Path] = typer.Argument(..., help="Videos, images or folders of them.", show_default=False),
    n: int = typer.Option(20, "--n", min=1, help="Frames to pick."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for the job: job.slp, frames/, picks.json."),
    min_gap: int = typer.Option(5, "--min-gap", min=1, help="Frames kept apart within a clip."),
    stride: int = typer.Option(1, "--stride", min=1, help="Videos: score every N-th frame."),
    batch_size: int = typer.Option(32, "--batch-size", min=1, help="Frames per detector batch."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda | mps."),
    labelled: list[Path] = typer.Option([], "--labelled", help="Label files of frames labelled already: never "
                                        "picked again, and their regression residual scores the frames around "
                                        "them; repeatable."),
    residual: bool = typer.Option(True, "--residual/--no-residual", help="With --labelled: score by the "
                                  "regression residual too (--no-residual: only skip the labelled frames)."),
    json_out: bool = typer.Option(False, "--json", help="Print the picks as JSON on stdout."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Pick the frames where the model is least sure (low keypoint confidence, keypoints that jump between
    neighbouring frames and, with --labelled, a large regression residual near labelled frames), spread over the
    clips, and write them as a labelling job.

    The residual: on each labelled frame, how far its labels lie from the joints a linear map of the model's
    keypoints (as `dkp joints fit`'s, fitted on the other labelled frames) predicts; a large one means the model
    does not place its keypoints there in a way that says where the joints are, or the label is wrong. The
    frames between labelled ones get their residuals interpolated in time, and the labelled frames with the
    largest residuals are listed for review (OUT/picks.json `review`: check those labels). Each sign is ranked
    over the frames and the score is the mean rank.

    OUT/job.slp references your videos (and images) with the picks as SLEAP suggestions and the model's keypoints
    on them as predictions to correct; OUT/frames/ holds each picked frame as a PNG (for tools that label images:
    Label Studio, CVAT); OUT/picks.json lists them with their scores. Label the picks, then pass the labels (the
    .slp as saved by SLEAP, or any format `dkp prepare folder --labels` reads) back to `dkp prepare folder` and
    `dkp joints fit`. Needs the labels extra (sleap-io).
    """
    from dkp_tui.atomic import check_output_dir
    from dkp_tui.commands.eval import log_warnings_to_stderr
    from dkp_tui.extras import require
    from dkp_tui.inference.infer import run_inference
    from dkp_tui.inference.label_job import write_job
    from dkp_tui.inference.outliers import label_points, pick, residual_term, residuals, review

    require("sleap_io", extra="labels")
    check_output_dir(out, "--out")
    points = {}
    if labelled:
        from dkp_tui.data.labels import read_label_files

        label_set = read_label_files(list(labelled))
        points = label_points(label_set.xy, label_set.present)
    with log_warnings_to_stderr():
        result = run_inference(run, list(inputs), batch_size=batch_size, device=device, stride=stride,
                               progress=not quiet and console.is_terminal)
    res = residuals(result.frames, points) if residual else {}
    picks = pick(result.frames, n, min_gap, set(points), residual_term(result.frames, res) if res else None)
    summary = write_job(result.meta, result.frames, picks, out, stride, review(result.frames, res, n))
    summary["labelled_scored"] = len(res)
    if json_out:
        print_json(summary)
    elif not quiet:
        console.print(f"[green]wrote[/] {len(picks)} frames to label next (of {len(result.frames)}) from "
                      f"{len({p.source for p in picks})} source(s): {summary['job']}")
        if summary["review"]:
            top = summary["review"][0]
            console.print(f"{len(res)} labelled frames scored; the largest regression residual: "
                          f"{top['residual_px']:.1f} px at {Path(top['source']).name}#{top['frame']} (check the "
                          f"labels listed under `review` in {out / 'picks.json'})")
        elif points and residual:
            console.print("no regression residual: fewer than 6 labelled frames among those scored")


def register(app: typer.Typer) -> None:
    app.command("outliers", help=command_help(_outliers_command.__doc__, EXAMPLES))(guarded(_outliers_command))
