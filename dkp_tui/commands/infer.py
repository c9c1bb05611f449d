"""`dkp infer`: keypoints for your own images, folders and videos (JSON or CSV), with skeleton overlays."""

from __future__ import annotations

from pathlib import Path

import typer

from dkp_tui.commands.common import console, guarded
from dkp_tui.commands.help_text import command_help
from dkp_tui.errors import DkpError

EXAMPLES = """
Examples:

  dkp infer runs/student photo.jpg > keypoints.json

  dkp infer runs/student ~/videos/dance.mp4 --overlay out/        # out/dance.mp4 with the learned skeleton

  dkp infer runs/student frames/ --format csv --out kp.csv --crop none

  dkp infer runs/student clip.mp4 --stride 5 --batch-size 64 --device cuda

  dkp infer --onnx student.onnx photos/ --overlay out/         # a `dkp export`ed model through onnxruntime

  dkp infer runs/student clip.mp4 --joints dance-joints.safetensors --overlay out/   # named joints (dkp joints fit)

  dkp infer runs/student clip.mp4 --smooth savgol --min-confidence 0.2 --overlay out/   # filtered trajectories

  dkp infer runs/student clip.mp4 --joints j.safetensors --overlay out/ --trail 10   # paths and joint names
"""


def _infer_command(
    run: Path | None = typer.Argument(None, help="Run directory, .safetensors, or .onnx from `dkp export`.",
                                      show_default=False),
    inputs: list[Path] | None = typer.Argument(None, help="Images, videos or folders of them.", show_default=False),
    onnx: Path | None = typer.Option(None, "--onnx", help="Run this `dkp export`ed model with onnxruntime "
                                     "(then every argument is an input)."),
    fmt: str = typer.Option("json", "--format", "-f", help="json | csv, or through sleap-io (needs --out): slp | "
                            "nwb | dlc | analysis-h5 | labelstudio."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Write keypoints here (default: stdout)."),
    overlay: Path | None = typer.Option(None, "--overlay", help="Folder for overlay PNGs / mp4 videos."),
    crop: str = typer.Option("center", "--crop", help="center: largest centred square (undistorted); none: squash."),
    stride: int = typer.Option(1, "--stride", min=1, help="Videos: every N-th frame."),
    batch_size: int = typer.Option(32, "--batch-size", min=1, help="Frames per detector batch."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda | mps."),
    edge_threshold: float = typer.Option(0.5, "--edge-threshold", min=0.0, max=1.0,
                                         help="Draw edges with weight >= this fraction of the strongest."),
    joints: Path | None = typer.Option(None, "--joints", help="A joints file from `dkp joints fit`: adds each "
                                       "frame's named joints; overlays draw the labelled skeleton."),
    smooth: str = typer.Option("none", "--smooth", help="Videos: filter each track in time: none | savgol | "
                               "median | oneeuro (raw coordinates kept beside the filtered ones)."),
    smooth_window: int = typer.Option(7, "--smooth-window", help="Frames in the savgol / median window (odd)."),
    min_confidence: float = typer.Option(0.0, "--min-confidence", help="Videos: hide points below this "
                                         "confidence (0..1) and bridge the gaps; overlays leave them out."),
    max_gap: int = typer.Option(5, "--max-gap", help="Bridge hidden runs of at most this many frames by linear "
                                "interpolation."),
    trail: int = typer.Option(0, "--trail", min=0, help="Video overlays: draw each point's path over the last N "
                              "frames."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Detect keypoints in images, folders and videos; coordinates are (x, y) pixels of each input frame.

    Non-square frames are centre-cropped to a square by default (--crop center, as `dkp prepare folder` does),
    or squashed (--crop none); the keypoints are mapped back to the original frame either way.

    With --onnx MODEL.onnx (or a .onnx file as RUN) the detector runs in onnxruntime instead of PyTorch, with
    the same output; that route does not import torch (needs the `export` extra).

    Every point carries a confidence in [0, 1]: its heatmap's probability within 2 heatmap cells of it. For videos,
    --smooth filters each keypoint's (and joint's) track over the clip in time order; --min-confidence hides the
    points below it, and hidden runs of up to --max-gap frames are interpolated. The filtered point is x, y (null
    where hidden), the detection raw_x, raw_y, and filled marks interpolated points.
    """
    from dkp_tui.atomic import check_output_file, write_text
    from dkp_tui.inference.infer import run_inference, to_csv, to_json
    from dkp_tui.inference.smoothing import TemporalFilter

    temporal = TemporalFilter(smooth, smooth_window, min_confidence, max_gap)  # bad values: one line, exit 2

    if fmt not in ("json", "csv"):
        from dkp_tui.inference import predictions_sleapio

        predictions_sleapio.check_format(fmt, out)  # a known format, --out given, sleap-io installed
    if out is not None:
        check_output_file(out, "--out")  # before the work, not after it
    model, sources = _model_and_inputs(run, list(inputs or []), onnx)
    from dkp_tui.commands.eval import log_warnings_to_stderr

    with log_warnings_to_stderr():
        result = run_inference(model, sources, batch_size=batch_size, device=device, crop=crop, stride=stride,
                               overlay_dir=overlay, edge_threshold=edge_threshold,
                               progress=not quiet and console.is_terminal, joints_file=joints,
                               temporal=temporal, trail=trail)
    if fmt not in ("json", "csv"):
        assert out is not None
        predictions_sleapio.write(result.meta, result.frames, out, fmt)
    elif out is None:
        typer.echo(to_json(result) if fmt == "json" else to_csv(result), nl=False)
    else:
        write_text(out, to_json(result) if fmt == "json" else to_csv(result))
    if out is not None:
        if not quiet:
            console.print(f"{len(result.frames)} frames → {out}"
                          + (f"; overlays in {overlay}" if overlay is not None else ""))


def _model_and_inputs(run: Path | None, inputs: list[Path], onnx: Path | None) -> tuple[Path, list[Path]]:
    """With --onnx every positional argument is an input; without it the first one is the model."""
    if onnx is not None:
        if onnx.suffix.lower() != ".onnx":
            raise DkpError(f"--onnx {onnx}: expected a .onnx file written by `dkp export`")
        model, sources = onnx, ([run] if run is not None else []) + inputs
    elif run is None:
        raise DkpError("give a RUN (directory, .safetensors or .onnx) and the inputs, or --onnx MODEL.onnx INPUT...")
    else:
        model, sources = run, inputs
    if not sources:
        raise DkpError("no inputs: give image files, video files or folders")
    return model, sources


def register(app: typer.Typer) -> None:
    app.command("infer", help=command_help(_infer_command.__doc__, EXAMPLES))(guarded(_infer_command))
