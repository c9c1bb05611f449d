"""`dkp joints fit`: named joints (your labelled skeleton) from a run's unsupervised keypoints."""

from __future__ import annotations

from pathlib import Path

import typer

from dkp_tui.commands.common import console, guarded, print_json
from dkp_tui.commands.help_text import command_help

EXAMPLES = """
Examples:

  dkp joints fit runs/student --data data/dance --out dance-joints.safetensors

  dkp infer runs/student clip.mp4 --joints dance-joints.safetensors --overlay out/   # the labelled skeleton

  dkp export runs/student --joints dance-joints.safetensors --format onnx           # + a `joints` output
"""

joints_app = typer.Typer(help="Named joints from unsupervised keypoints and a few labelled frames.",
                         no_args_is_help=True)


def _fit_command(
    run: Path = typer.Argument(..., help="Run directory (or .safetensors) whose keypoints to map."),
    data: Path = typer.Option(..., "--data", "-d", help="A labelled folder set (`dkp prepare folder --labels`)."),
    out: Path = typer.Option(..., "--out", "-o", help="The joints file to write (.safetensors)."),
    folds: int = typer.Option(5, "--folds", min=2, help="k of the k-fold cross-validated error on the fit frames (by clip for video frames)."),
    ridge: str = typer.Option("0.001", "--ridge", help="The map's ridge, or auto: the one of 0.001, 0.01, 0.1, 1, 10 "
                              "with the lowest cross-validated error (the default is `dkp eval`'s)."),
    set_: list[str] = typer.Option([], "--set", "-s", help="Override a config field, e.g. eval.pck=0.05."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda | mps."),
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON on stdout."),
) -> None:
    """Fit the K keypoints -> J named joints map (with bias) on the data set's fit frames and save it.

    The file holds the map, the joint names and skeleton, K, the model's image size, the number of fit frames,
    a k-fold cross-validated error on the fit frames and the test split's error (what `dkp eval` reports).
    Frames from videos are cross-validated by whole clip (a clip's other frames would flatter the score), still
    images by frame; `cv.by` in --json says which. `--ridge auto` picks the map's ridge by that error (on video
    footage with few clips a stronger ridge carries better to new clips); the test scores are then that map's.
    `dkp infer --joints FILE` and `dkp export --joints FILE` use it; a file made for another K or image size is
    refused.
    """
    from dkp_tui.commands.eval import log_warnings_to_stderr
    from dkp_tui.eval.evaluate import EvalRequest
    from dkp_tui.eval.joints_fit import fit_run_joints, parse_ridge

    chosen = parse_ridge(ridge)
    with log_warnings_to_stderr():
        summary = fit_run_joints(EvalRequest(run, data, list(set_), device), out, folds, chosen)
    if json_out:
        print_json(summary)
        return
    cv, test = summary["cv"], summary["test"]
    ref = (summary.get("mean_pose") or {}).get("extras") or {}
    console.print(f"[green]wrote[/] {summary['out']}: {len(summary['joint_names'])} joints from K="
                  f"{summary['n_keypoints']} keypoints at {summary['image_size']} px, fitted on {summary['n_fit']} "
                  "frames")
    by = f"by clip ({cv['groups']} clips)" if cv.get("by") == "clip" else "by frame"
    console.print(f"{cv['folds']}-fold cross-validated {by} on the fit frames: {cv['px']:.2f} px, "
                  f"{cv['l2x100']:.2f} ×100 of the frame size, PCK {cv['pck']:.1f} %"
                  + (f" (ridge {summary['ridge']:g}, chosen of " + ", ".join(
                      f"{r}: {px:.2f}" for r, px in summary["ridge_cv"].items()) + " px)" if chosen is None else ""))
    console.print(f"test split: {test['px']:.2f} px (mean pose {ref.get('px_error', float('nan')):.2f}), "
                  f"{test['l2x100']:.2f} ×100, PCK {test['pck']:.1f} % (mean pose {ref.get('pck', float('nan')):.1f} %)")


def register(app: typer.Typer) -> None:

    joints_app.command("fit", help=command_help(_fit_command.__doc__, EXAMPLES))(
        guarded(_fit_command))
    app.add_typer(joints_app, name="joints")
