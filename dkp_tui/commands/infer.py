"""`dkp infer`: keypoints for your own images, folders and videos (JSON or CSV), with skeleton overlays."""

from __future__ import annotations

import inspect
from pathlib import Path

import typer

from dkp_tui.commands.common import console, guarded
from dkp_tui.errors import DkpError

EXAMPLES = """
Examples:

  dkp infer runs/student photo.jpg > keypoints.json

  dkp infer runs/student ~/videos/dance.mp4 --overlay out/        # out/dance.mp4 with the learned skeleton

  dkp infer runs/student frames/ --format csv --out kp.csv --crop none

  dkp infer runs/student clip.mp4 --stride 5 --batch-size 64 --device cuda
"""


def _infer_command(
    run: Path = typer.Argument(..., help="Run directory (or .safetensors) whose detector to use."),
    inputs: list[Path] = typer.Argument(..., help="Images, videos or folders of them."),
    fmt: str = typer.Option("json", "--format", "-f", help="json | csv."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Write keypoints here (default: stdout)."),
    overlay: Path | None = typer.Option(None, "--overlay", help="Folder for overlay PNGs / mp4 videos."),
    crop: str = typer.Option("center", "--crop", help="center: largest centred square (undistorted); none: squash."),
    stride: int = typer.Option(1, "--stride", min=1, help="Videos: every N-th frame."),
    batch_size: int = typer.Option(32, "--batch-size", min=1, help="Frames per detector batch."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda | mps."),
    edge_threshold: float = typer.Option(0.5, "--edge-threshold", min=0.0, max=1.0,
                                         help="Draw edges with weight >= this fraction of the strongest."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Detect keypoints in images, folders and videos; coordinates are (x, y) pixels of each input frame.

    Non-square frames are centre-cropped to a square by default (--crop center, as `dkp prepare folder` does),
    or squashed (--crop none); the keypoints are mapped back to the original frame either way.
    """
    from dkp_tui.atomic import check_output_file, write_text
    from dkp_tui.eval.infer import run_inference, to_csv, to_json

    if fmt not in ("json", "csv"):
        raise DkpError(f"--format must be json or csv (got {fmt!r})")
    if out is not None:
        check_output_file(out, "--out")  # before the work, not after it
    from dkp_tui.commands.eval import log_warnings_to_stderr

    with log_warnings_to_stderr():
        result = run_inference(run, inputs, batch_size=batch_size, device=device, crop=crop, stride=stride,
                               overlay_dir=overlay, edge_threshold=edge_threshold,
                               progress=not quiet and console.is_terminal)
    text = to_json(result) if fmt == "json" else to_csv(result)
    if out is None:
        typer.echo(text, nl=False)
    else:
        write_text(out, text)
        if not quiet:
            console.print(f"{len(result.frames)} frames → {out}"
                          + (f"; overlays in {overlay}" if overlay is not None else ""))


def register(app: typer.Typer) -> None:
    app.command("infer", help=inspect.cleandoc(_infer_command.__doc__ or "") + "\n" + EXAMPLES)(guarded(_infer_command))
