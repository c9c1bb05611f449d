"""`dkp export`: a run's detector as ONNX (verified against PyTorch), for deployment without dkp."""

from __future__ import annotations

from pathlib import Path

import typer

from dkp_tui.commands.common import console, guarded, print_json
from dkp_tui.commands.help_text import command_help

EXAMPLES = """
Examples:

  dkp export runs/demo/student --format onnx                 # runs/demo/student/model.onnx

  dkp export runs/demo/student --out student.onnx --opset 20 --json

  dkp infer --onnx student.onnx photos/                      # the same keypoints through onnxruntime

  dkp export runs/student --joints dance-joints.safetensors   # + output `joints` (B, J, 2) from `dkp joints fit`
"""


def _export_command(
    run: Path = typer.Argument(..., help="Run directory (or .safetensors) whose detector to export."),
    fmt: str = typer.Option("onnx", "--format", "-f", help="onnx (the only format so far)."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Output file (default: RUN/model.onnx)."),
    opset: int = typer.Option(18, "--opset", help="ONNX opset (18 or newer)."),
    joints: Path | None = typer.Option(None, "--joints", help="A joints file from `dkp joints fit`: adds the "
                                       "output `joints` (B, J, 2), (x, y) pixels, checked against PyTorch."),
    json_out: bool = typer.Option(False, "--json", help="Print the export summary as JSON on stdout."),
) -> None:
    r"""Export the detector (student or teacher) as ONNX and check it against PyTorch before keeping it.

    Input `image` (B, 3, S, S) float32 RGB in [-1, 1], dynamic batch; outputs `keypoints` (B, K, 2) as (x, y)
    pixels of the input and `heatmaps` (B, K, S/4, S/4). The preprocessing contract, K, S, the data set's joint
    names and the learned edge weights are in the model's metadata (dkp.* keys). Needs the `export` extra:
    pip install -e '.\[export]'. Exit 2 if onnxruntime's keypoints differ from PyTorch's by more than 1e-3 px.
    """
    from dkp_tui.inference.export import export_run

    result = export_run(run, out, fmt, opset, joints_file=joints)
    if json_out:
        print_json(result.to_dict())
        return
    console.print(f"[green]exported[/] {result.role or 'detector'} (K={result.n_keypoints}, {result.image_size} px, "
                  f"opset {result.opset}) → {result.path} ({result.bytes / 2**20:.2f} MiB) in {result.export_s:.1f} s")
    console.print(f"onnxruntime vs PyTorch on batches {result.verified_batches}: max keypoint difference "
                  f"{result.max_diff_keypoints_px:.2g} px (tolerance {result.tolerance_keypoints_px:g}), "
                  f"heatmaps {result.max_diff_heatmaps:.2g}"
                  + ("" if result.max_diff_joints_px is None else f", joints {result.max_diff_joints_px:.2g} px"))


def register(app: typer.Typer) -> None:
    app.command("export", help=command_help(_export_command.__doc__, EXAMPLES))(
        guarded(_export_command))
