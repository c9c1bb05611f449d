"""What the `dkp prepare <source>` commands for real data share: options, defaults, running and printing."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from dkp_tui.commands.common import console, print_json

if TYPE_CHECKING:
    from dkp_tui.data.prepare_common import Plan, Reporter

OutOpt = Annotated[Path | None, typer.Option("--out", "-o", help="Data-set directory to write (default: see above).")]
SizeOpt = Annotated[int | None, typer.Option("--size", help="Stored frame size in px (default: the preset's "
                                                            "model.image_size, else 128).", min=8)]
PresetOpt = Annotated[str, typer.Option("--preset", "-p", help="Preset (name or TOML path) giving the default "
                                                               "--size and --out.")]
ForceOpt = Annotated[bool, typer.Option("--force", help="Rebuild even if --out already holds a data set.")]
SkipBadOpt = Annotated[bool, typer.Option("--skip-bad", help="Leave unreadable or mislabelled files out instead of "
                                                             "failing; they are listed in prepare_report.json.")]
WorkersOpt = Annotated[int, typer.Option("--workers", "-j", help="Decoding threads (0 = up to 8, one per core).",
                                         min=0)]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the manifest summary as JSON on stdout.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars or notes (errors still print).")]


def resolve(preset: str, default_preset: str | None, size: int | None, out: Path | None,
            default_out: str) -> tuple[int, Path]:
    """--size and --out from the flags, else from the preset (default_preset when none is named), else defaults."""
    name = preset or default_preset
    if name and (size is None or out is None):
        from dkp_tui.config import load_config

        cfg = load_config(name)
        size = size if size is not None else cfg.model.image_size
        if out is None and preset:
            out = Path(cfg.data.dataset)
    return (size if size is not None else 128), (out if out is not None else Path(default_out))


def run(make_plan: Callable[[Reporter], Plan], out: Path, size: int, force: bool, skip_bad: bool, workers: int,
        json_out: bool, quiet: bool) -> None:
    """Plan, prepare and report; a DkpError anywhere becomes one line and exit 2 (the caller is ``guarded``)."""
    from dkp_tui.data.prepare_common import Reporter, prepare

    reporter = Reporter(enabled=not quiet, console=console)
    plan = make_plan(reporter)
    result = prepare(plan, out, size, force=force, skip_bad=skip_bad, workers=workers, reporter=reporter)
    if json_out:
        print_json(result.summary())
        return
    if quiet or result.reused:
        return
    counts = ", ".join(f"{name} {info.count}" + (f" (= {info.same_as})" if info.same_as else "")
                       for name, info in result.manifest.splits.items())
    skipped = f"; {len(result.skipped)} bad input(s) left out" if result.skipped else ""
    console.print(f"[green]wrote[/] {result.manifest.kind} data set at {result.manifest.image_size} px "
                  f"({counts}) in {result.seconds:.1f} s{skipped}: {result.out}")
