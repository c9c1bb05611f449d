"""`dkp depth DATASET`: the MiDaS 3.1 depth cache the teacher trains on (or `--import` of maps you already have)."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from dkp_tui.commands.common import console, guarded, print_json
from dkp_tui.commands.help_text import command_help
from dkp_tui.commands.launch import relaunch_torchrun
from dkp_tui.errors import DkpError
from dkp_tui.formats.depth_cache import DEFAULT_SHARD_SIZE

DEFAULT_MODEL = "Intel/dpt-swinv2-large-384"  # = dkp_tui.depth.midas.DEFAULT_MODEL (not imported: keeps --help fast)

EXAMPLES = """
Examples:

  dkp depth data/taichi                                       # MiDaS 3.1 DPT-SwinV2-L-384, all splits

  dkp depth data/taichi --model Intel/dpt-swinv2-tiny-256     # the fast option

  dkp depth data/h36m --model ~/models/dpt-swinv2-large-384   # a local directory (no network needed)

  dkp depth data/taichi --splits train --batch-size 64 --json  # resumes where a killed run stopped

  dkp depth data/deepfashion --import ~/depth-maps --tag sensor --polarity depth

  dkp depth data/taichi --nproc 8     # 8 GPUs: torchrun, each rank fills every 8th shard (docs/scaling.md)

Weights: a Hugging Face id is read from the cache (HF_HOME) and downloaded only when HF_HUB_OFFLINE is unset and
the hub answers; offline, put the model in the cache or pass --model PATH.
"""


def _depth_command(
    dataset: Path = typer.Argument(..., help="Data-set directory (made by `dkp prepare`)."),
    model: str = typer.Option(DEFAULT_MODEL, "--model", "-m",
                              help="Hugging Face id of a DPT depth model, or a local directory with config.json, "
                                   "preprocessor_config.json and weights."),
    batch_size: int = typer.Option(16, "--batch-size", "-b", help="Images per model call (32-64 on a large GPU)."),
    device: str = typer.Option("auto", "--device", "-d", help="auto | cpu | cuda | mps (auto: CUDA, else MPS, else CPU)."),
    splits: str = typer.Option("", "--splits", "-s",
                               help="Comma-separated splits, e.g. train,fit,test (default: all; a split that is "
                                    "`same_as` another is computed once)."),
    force: bool = typer.Option(False, "--force", help="Recompute, replacing shards already there (and a cache made "
                                                      "with other settings under this tag)."),
    import_dir: Path | None = typer.Option(None, "--import",
                                           help="Import existing depth maps (8/16-bit greyscale PNG or .npy, one "
                                                "per frame, matched by names.json or sorted order) instead."),
    polarity: str = typer.Option("inverse", "--polarity",
                                 help="With --import: inverse (larger = nearer, like MiDaS) or depth (far = large; "
                                      "inverted, 0 = no reading)."),
    tag: str = typer.Option("", "--tag", "-t",
                            help="Cache name under DATASET/depth/ (default: the model's name, or 'imported')."),
    shard_size: int = typer.Option(DEFAULT_SHARD_SIZE, "--shard-size",
                                   help="Maps per shard file: the unit of resuming (a killed run loses at most one)."),
    precision: str = typer.Option("auto", "--precision", help="auto (fp16 on CUDA, else fp32) | fp16 | fp32."),
    nproc: int = typer.Option(1, "--nproc", help="Processes (one GPU each) sharing the shards; >1 re-launches "
                                                 "through torchrun (multi-node: run torchrun yourself)."),
    json_out: bool = typer.Option(False, "--json", help="Print a summary (tag, counts, seconds, images/s) as JSON."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar or messages."),
) -> None:
    """Cache per-image normalised MiDaS inverse depth (near = 1, uint16) for every frame of a data set.

    Work is written in shards: rerunning after an interruption skips the finished ones; a cache made with another
    model or normalisation under the same tag is refused unless --force.
    """
    if import_dir is None and polarity != "inverse":
        raise DkpError("--polarity describes --import files; model output is always inverse depth")
    if nproc < 1:
        raise DkpError(f"--nproc {nproc}: must be at least 1")
    under_torchrun = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if import_dir is not None and (nproc > 1 or under_torchrun):
        raise DkpError("--import runs in one process (it is disk-bound); drop --nproc / torchrun")
    if nproc > 1 and "WORLD_SIZE" not in os.environ:
        raise typer.Exit(relaunch_torchrun(nproc))
    from dkp_tui.formats.dataset_dir import read_manifest
    from dkp_tui.formats.depth_cache import depth_root
    from dkp_tui.locks import writer_lock

    read_manifest(dataset)  # not a data set: refused before the lock creates DATASET/depth
    # one depth writer per data set (rank 0 of torchrun only): a second `dkp depth` is refused at once
    with writer_lock(depth_root(dataset), f"the depth caches of {dataset}"):
        if import_dir is not None:
            from dkp_tui.depth.importer import import_depth

            result = import_depth(dataset, import_dir, splits=splits or None, tag=tag or "imported", force=force,
                                  polarity=polarity, shard_size=shard_size, quiet=quiet)
        else:
            from dkp_tui.depth.compute import compute_depth

            result = compute_depth(dataset, model, batch_size=batch_size, device=device, splits=splits or None,
                                   force=force, tag=tag, shard_size=shard_size, precision=precision,
                                   quiet=quiet)
    if result.get("rank", 0) != 0:
        return  # rank 0 reports for all
    if json_out:
        print_json(result)
    elif not quiet:
        split_counts = ", ".join(f"{k} {v['count']}" for k, v in result["splits"].items())
        rate = f" at {result['images_per_s']:.1f} img/s" if result["computed"] else ""
        console.print(f"[green]depth cache[/] {dataset}/depth/{result['tag']}: {split_counts}; "
                      f"computed {result['computed']}{rate}, skipped {result['skipped']} already done, "
                      f"{result['constant_maps']} constant maps")


def register(app: typer.Typer) -> None:
    app.command("depth", help=command_help(_depth_command.__doc__, EXAMPLES))(guarded(_depth_command))
