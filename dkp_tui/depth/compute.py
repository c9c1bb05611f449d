"""`dkp depth DATASET`: fill the data set's depth cache with MiDaS 3.1 (any transformers DPT depth model).

Order matters for the user: everything that can be refused (data set, splits, model location, offline, an
incompatible existing cache) is checked before the weights are loaded, so mistakes cost seconds, not minutes.

Under torchrun (`dkp depth --nproc N`, or N nodes) every rank plans the same unfinished shards and computes every
N-th of them on its own GPU (``LOCAL_RANK``); rank 0 alone opens the tag (settings, ``--force``) and, once every
rank is through, writes the manifest. A shard's bytes depend only on the shard, so the cache is the one a single
process makes on the same model, device and threads.
"""

from __future__ import annotations

from datetime import timedelta
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dkp_tui import distributed
from dkp_tui.depth.runner import Timer, physical_splits, plan_jobs, rank_share, run_jobs, summary
from dkp_tui.depth.weights import DEFAULT_MODEL, fetch_model, resolve_model
from dkp_tui.errors import DkpError
from dkp_tui.formats import depth_cache as cache
from dkp_tui.formats.dataset_dir import manifest_hash, open_split, read_manifest

if TYPE_CHECKING:
    import torch

    from dkp_tui.depth.midas import DepthEstimator

VERIFY_IMAGES = 4  # frames of the data set the batched preprocessing is checked on
# ranks meet only at the start and once each has done its share (hours on a large set): no collective timeout
RANK_TIMEOUT = timedelta(days=7)


class ModelBackend:
    """Frames from the data set's memory-mapped splits into the estimator."""

    def __init__(self, dataset: Path, splits: list[str], estimator: DepthEstimator) -> None:
        manifest = read_manifest(dataset)
        self.images = {s: open_split(dataset, s, manifest).images for s in splits}
        self.estimator = estimator

    def load(self, split: str, start: int, stop: int) -> torch.Tensor:
        return self.estimator.load(self.images[split][start:stop])

    def submit(self, loaded: torch.Tensor, frame_hw: tuple[int, int]) -> Any:
        return self.estimator.submit(loaded, frame_hw)


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "?"


def check_sizes(batch_size: int, shard_size: int) -> None:
    if batch_size < 1:
        raise DkpError(f"--batch-size {batch_size}: must be at least 1")
    if shard_size < 1:
        raise DkpError(f"--shard-size {shard_size}: must be at least 1")


def compute_depth(dataset: str | Path, model: str = DEFAULT_MODEL, *, batch_size: int = 16, device: str = "auto",
                  splits: str | None = None, force: bool = False, tag: str = "",
                  shard_size: int = cache.DEFAULT_SHARD_SIZE, precision: str = "auto",
                  quiet: bool = False) -> dict[str, Any]:
    """Compute (or finish) the depth cache ``<dataset>/depth/<tag>``; returns the run summary."""
    timer = Timer()
    dataset = Path(dataset)
    check_sizes(batch_size, shard_size)
    data_manifest = read_manifest(dataset)
    plans, aliases = physical_splits(dataset, data_manifest, splits)
    source = resolve_model(model)
    tag = cache.check_tag(tag) if tag else cache.clean_tag(source.name)
    source = fetch_model(source)
    import torch  # torch and transformers only once the model is known to be there

    from dkp_tui.depth.midas import pick_device

    dev = pick_device(device)
    ranks = distributed.setup(dev.type, timeout=RANK_TIMEOUT)
    if ranks.enabled and dev.type == "cuda":
        dev = torch.device("cuda", ranks.local_rank)
    try:
        result = _compute(dataset, source, tag, plans, aliases, data_manifest, dev, ranks, batch_size=batch_size,
                          force=force, shard_size=shard_size, precision=precision, quiet=quiet, timer=timer)
        # all ranks leave together, once rank 0 has written the manifest: a rank that tore its process group
        # down while rank 0 was still writing was seen to hang in gloo's shutdown (torch 2.3 and 2.4)
        distributed.barrier(ranks)
        return result
    finally:
        distributed.cleanup(ranks)


def _open_tag_on_rank0(dataset: Path, tag: str, settings: dict[str, Any], force: bool, splits: list[str],
                       ranks: distributed.DistInfo) -> None:
    """Rank 0 prepares the tag (it may refuse, or delete with --force) while the others wait; all stop on a refusal."""
    refusal: DkpError | None = None
    if ranks.is_main:
        try:
            cache.open_tag(dataset, tag, settings, force, splits)
        except DkpError as err:
            refusal = err
    if not distributed.all_true(refusal is None, ranks):
        raise refusal or DkpError(f"rank 0 refused {dataset}/depth/{tag} (its error says why)")


def _compute(dataset: Path, source: Any, tag: str, plans: list[Any], aliases: dict[str, str], data_manifest: Any,
             dev: torch.device, ranks: distributed.DistInfo, *, batch_size: int, force: bool, shard_size: int,
             precision: str, quiet: bool, timer: Timer) -> dict[str, Any]:
    import torch

    from dkp_tui.depth.midas import DepthEstimator, InputTransform, load_model, load_processor, pick_dtype
    from dkp_tui.depth.normalise import ENCODING, NORMALISATION, OUTPUT_INTERPOLATION, POLARITY

    dtype = pick_dtype(dev, precision)
    processor, model_info = load_processor(source)
    transform = InputTransform.from_processor(processor)
    settings: dict[str, Any] = {
        "source": "model",
        "model": model_info,
        "input": transform.describe(),
        "output": {"size": [data_manifest.image_size, data_manifest.image_size],
                   "interpolation": OUTPUT_INTERPOLATION},
        "normalisation": NORMALISATION,
        "polarity": POLARITY,
        "encoding": ENCODING,
        "shard_size": shard_size,
        "dataset_manifest_hash": manifest_hash(dataset),
        "model_path": str(source.directory),
        "backend": f"transformers {_version('transformers')}",
    }
    _open_tag_on_rank0(dataset, tag, settings, force, [p.split for p in plans], ranks)
    jobs, skipped = plan_jobs(dataset, tag, plans, shard_size)
    previous = cache.read_depth_manifest(dataset, tag) if tag in cache.list_tags(dataset) else None
    distributed.barrier(ranks)  # every rank has planned the same shards before any rank writes one
    totals: dict[str, Any] = {"images": 0, "constant": 0, "seconds": 0.0}
    if not jobs and previous is not None and all(p.split in previous.get("splits", {}) for p in plans):
        return {**summary(dataset, tag, previous, totals, skipped, timer.seconds), **_ranks(ranks)}  # nothing to do
    check: dict[str, Any] = {}
    mine = rank_share(jobs, ranks.rank, ranks.world_size)
    if mine or (jobs and ranks.is_main):  # rank 0 records the preprocessing check even with no shard of its own
        if dev.type == "cuda":
            torch.backends.cudnn.benchmark = True  # every batch has the same shape (bar a shard's last)
        estimator = DepthEstimator(load_model(source, dev, dtype), processor, dev, dtype)
        first = jobs[0]  # the same frames on every rank (and in one process): the manifest does not depend on N
        sample = open_split(dataset, first.split, data_manifest).images[first.start:first.start + VERIFY_IMAGES]
        check = estimator.verify(sample)
        backend = ModelBackend(dataset, [p.split for p in plans], estimator)
        label = f"depth {tag}" + (f" (rank 0 of {ranks.world_size})" if ranks.enabled else "")
        totals = run_jobs(dataset, tag, mine, plans, backend, batch_size, label, quiet or not ranks.is_main)
    if ranks.enabled:  # every rank's shards are written once all have come here
        images, constant = distributed.sum_all([totals["images"], totals["constant"]], ranks)
        (loop_seconds,) = distributed.max_all([totals["seconds"]], ranks)  # the slowest rank's shard loop
        totals = {"images": int(images), "constant": int(constant), "seconds": loop_seconds}
    seconds = timer.seconds
    extra = {
        "same_as": {**((previous or {}).get("same_as") or {}), **aliases},
        "compute": {"device": str(dev), "precision": "fp16" if dtype == torch.float16 else "fp32",
                    "batch_size": batch_size, "preprocessing": check, "torch": torch.__version__,
                    "ranks": ranks.world_size, "images": totals["images"], "seconds": round(seconds, 3)},
    }
    if not ranks.is_main:
        return {**summary(dataset, tag, previous or {}, totals, skipped, seconds), **_ranks(ranks)}
    manifest = cache.finish_tag(dataset, tag, settings, {p.split: p.count for p in plans}, extra)
    return {**summary(dataset, tag, manifest, totals, skipped, seconds), **_ranks(ranks)}


def _ranks(ranks: distributed.DistInfo) -> dict[str, int]:
    return {"rank": ranks.rank, "world_size": ranks.world_size}
