"""Evaluate one run on a labelled data set: detections on the fit and test splits, then the protocol.

A teacher run is scored on depth maps of the same images (the paper's "depth teacher only" row); a student is
scored on RGB alone. The record appended to ``<run>/eval.json`` names everything a number depends on: protocol and
options, data-set manifest hash, input kind, depth tag, weights step and dkp version.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dkp_tui.config import apply_overrides, validate
from dkp_tui.errors import DkpError
from dkp_tui.eval.protocols import (
    EvalSplit,
    ProtocolResult,
    lr_pairs,
    mean_pose,
    protocol_for,
    run_protocol,
    skill,
)
from dkp_tui.version import __version__

log = logging.getLogger("dkp.eval")

EVAL_SPLITS = ("fit", "test")


@dataclass
class EvalRequest:
    """What to evaluate and how; everything the record's identity depends on is here."""

    run: Path
    data: Path | None = None  # default: the run config's data.dataset
    overrides: Sequence[str] = ()  # --set, applied to the run's config (eval.* is what matters)
    device: str = "auto"
    batch_size: int = 64


def _pairs(manifest: Any) -> list[tuple[int, int]]:
    explicit = manifest.source.get("flip_pairs") if isinstance(manifest.source, dict) else None
    if explicit:
        return [(int(a), int(b)) for a, b in explicit]
    return lr_pairs(manifest.joint_names)


def _file_hash(path: Path) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def eval_key(record: dict[str, Any]) -> str:
    """What makes two evaluations the same computation: data, protocol, its options, input and weights step."""
    opts = ",".join(f"{k}={v}" for k, v in sorted((record.get("options") or {}).items()))
    return "|".join(str(record.get(k)) for k in ("manifest_hash", "protocol", "input", "depth_tag", "step", "weights_hash")) + \
        "|" + opts


def find_previous(run: Path, wanted: dict[str, Any]) -> dict[str, Any] | None:
    """The latest record in ``eval.json`` with the same ``key`` (see ``eval_key``)."""
    import json

    from dkp_tui.formats.run_dir import EVAL_JSON

    path = Path(run) / EVAL_JSON
    if not path.is_file():
        return None
    try:
        records = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    for record in reversed(records if isinstance(records, list) else []):
        if isinstance(record, dict) and record.get("key") == wanted["key"]:
            return record
    return None


_MEAN_POSE: dict[tuple[str, ...], dict[str, Any]] = {}


def split_geometry(dataset: Path, manifest: Any, split: str, n: int) -> Any:
    """A labelled folder split's stored regions in original pixels (identity for sets that have none)."""
    from dkp_tui.formats.dataset_dir import load_geometry, split_dir

    return load_geometry(split_dir(dataset, manifest, split), n, int(manifest.image_size))


def mean_pose_reference(dataset: str | Path, name: str, swap_table: str = "reference",
                        pck: float = 0.1) -> dict[str, Any]:
    """What the constant mean pose of the fit split scores on ``dataset`` under protocol ``name``.

    It depends only on the labels, so it is computed once per data set (memoised on the manifest hash) and
    shared by every run evaluated on that set. ``figure_area`` (synthetic) is the mean fraction of test pixels on
    the figure: the on-figure fraction of keypoints placed uniformly at random. For ``folder`` the pixel error
    and PCK of the mean pose are in ``extras``.
    """
    import numpy as np

    from dkp_tui.formats.dataset_dir import manifest_hash, open_split, read_manifest

    dataset = Path(dataset)
    key = (str(dataset.resolve()), manifest_hash(dataset), name, swap_table if name == "h36m" else "",
           str(pck) if name == "folder" else "")
    if key not in _MEAN_POSE:
        manifest = read_manifest(dataset)
        splits = {s: open_split(dataset, s, manifest) for s in EVAL_SPLITS}
        for split, a in splits.items():
            if a.keypoints is None:
                raise DkpError(f"{dataset}: split {split!r} has no keypoint labels; the {name} protocol needs them")
        fit, test = (EvalSplit(None, a.keypoints, a.visible, None, float(a.info.label_scale),
                               split_geometry(dataset, manifest, s, len(a)) if name == "folder" else None)
                     for s, a in splits.items())
        result = mean_pose(name, fit, test, swap_table=swap_table,
                           pairs=_pairs(manifest) if name == "synthetic" else (), pck=pck)
        out: dict[str, Any] = {"value": result.value, "metric": result.metric,
                               "n_fit": len(splits["fit"]), "n_test": len(splits["test"])}
        if name == "folder":
            out["extras"] = {k: result.extras[k] for k in ("px_error", "pck")}
        masks = splits["test"].masks
        if name == "synthetic" and masks is not None and len(masks):
            on = sum(int(np.count_nonzero(masks[i:i + 256])) for i in range(0, len(masks), 256))
            out["figure_area"] = on / float(masks.size)
        if result.fallbacks:
            out["fallbacks"] = list(result.fallbacks)
        _MEAN_POSE[key] = out
    return dict(_MEAN_POSE[key])


def add_mean_pose(record: dict[str, Any], swap_table: str = "reference") -> dict[str, Any]:
    """``record`` with ``mean_pose`` (the reference, see ``mean_pose_reference``) and ``skill`` filled in."""
    options = record.get("options") or {}
    if "mean_pose" not in record:
        record["mean_pose"] = mean_pose_reference(record["dataset"], record["protocol"],
                                                  options.get("swap_table", swap_table), options.get("pck", 0.1))
    record["skill"] = skill(record.get("value"), record["mean_pose"].get("value"),
                            bool(record.get("higher_is_better")))
    if record["protocol"] == "folder":  # each score beside the mean pose's, and its skill
        ref, extras = record["mean_pose"].get("extras") or {}, record.get("extras") or {}
        record["skills"] = {"l2x100": record["skill"],
                            "px_error": skill(extras.get("px_error"), ref.get("px_error"), False),
                            "pck": skill(extras.get("pck"), ref.get("pck"), True)}
    return record


def detect_eval_splits(detector: Any, dataset: Path, manifest: Any, name: str, cfg: Any, kind: str, depth_tag: str,
                       batch_size: int, device: Any,
                       progress: Callable[[str, int, int], None] | None = None) -> tuple[EvalSplit, EvalSplit]:
    """The frozen detector's keypoints on the fit and test splits, with their labels, as the protocols take them."""
    from dkp_tui.formats.dataset_dir import open_split
    from dkp_tui.inference.predict import predict_split

    if "fit" not in manifest.splits and manifest.kind == "folder":
        raise DkpError(f"{dataset}: a folder set without labels (no fit and test splits); prepare it with "
                       "`dkp prepare folder SRC --labels FILE` to score on your own labelled frames")
    splits = {}
    for split in EVAL_SPLITS:
        arrays = open_split(dataset, split, manifest)
        if arrays.keypoints is None:
            raise DkpError(f"{dataset}: split {split!r} has no keypoint labels; the {name} protocol needs them")
        splits[split] = arrays
    total = sum(len(a) for a in splits.values())
    done = 0
    detections = {}
    for split in splits:
        def advance(n: int, _split: str = split) -> None:
            nonlocal done
            done += n
            if progress is not None:
                progress(f"{_split} split", done, total)

        detections[split] = predict_split(detector, dataset, split, image_size=cfg.model.image_size, kind=kind,
                                          depth_tag=depth_tag, batch_size=batch_size, device=device,
                                          advance=advance)

    def as_eval(split: str) -> EvalSplit:
        a = splits[split]
        geometry = split_geometry(dataset, manifest, split, len(a)) if name == "folder" else None
        return EvalSplit(detections[split], a.keypoints, a.visible, a.masks if split == "test" else None,
                         float(a.info.label_scale), geometry, a.names)

    return as_eval("fit"), as_eval("test")


def evaluate_run(req: EvalRequest, *, save: bool = True, reuse: bool = False,
                 progress: Callable[[str, int, int], None] | None = None) -> dict[str, Any]:
    """Score ``req.run`` and return the record (appended to ``<run>/eval.json`` when ``save``).

    ``reuse`` returns an earlier identical record instead of recomputing (used by repeats and sweeps).
    ``progress(stage, done, total)`` is called as images are processed.
    """
    return _evaluate(req, save, reuse, progress)[0]


def evaluate_with_splits(req: EvalRequest, *, save: bool = True,
                         progress: Callable[[str, int, int], None] | None = None
                         ) -> tuple[dict[str, Any], EvalSplit, EvalSplit]:
    """``evaluate_run`` plus the detections and labels it scored (for the shots curve and `dkp joints fit`)."""
    record, fit, test = _evaluate(req, save, False, progress)
    assert fit is not None and test is not None
    return record, fit, test


def _evaluate(req: EvalRequest, save: bool, reuse: bool, progress: Callable[[str, int, int], None] | None
              ) -> tuple[dict[str, Any], EvalSplit | None, EvalSplit | None]:
    from dkp_tui.devices import pick_device
    from dkp_tui.formats.dataset_dir import manifest_hash, read_manifest
    from dkp_tui.formats.run_dir import append_eval, is_run_dir, read_run_info
    from dkp_tui.inference.predict import load_detector, weights_path

    run = Path(req.run)
    device = pick_device(req.device)
    detector, cfg, meta = load_detector(run, device)
    apply_overrides(cfg, list(req.overrides))
    validate(cfg)
    if cfg.train.threads > 0:
        import torch

        torch.set_num_threads(cfg.train.threads)
    role = meta.get("role", "student")
    run_dir = run if run.is_dir() else run.parent  # a .safetensors file may be given directly
    status = read_run_info(run_dir).status if is_run_dir(run_dir) else "unknown"
    if status not in ("finished", "unknown"):
        log.warning("%s is %s (step %s): evaluating its latest weights", run, status, meta.get("step"))

    dataset = Path(req.data) if req.data is not None else Path(cfg.data.dataset)
    manifest = read_manifest(dataset)
    name = protocol_for(manifest.kind, cfg.eval.protocol)
    kind = "depth" if role == "teacher" else "rgb"
    depth_tag = ""
    if kind == "depth":
        from dkp_tui.formats.depth_cache import resolve_tag

        depth_tag = resolve_tag(dataset, cfg.data.depth_tag)
    options: dict[str, Any] = {"image_size": cfg.model.image_size}
    if name == "h36m":
        options["swap_table"] = cfg.eval.h36m_swap_table
    if name == "folder":
        options["pck"] = cfg.eval.pck
    record: dict[str, Any] = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "dkp_version": __version__, "run": str(run), "role": role,
        "step": int(meta.get("step", 0)), "weights_hash": _file_hash(weights_path(run)), "status": status, "input": kind, "depth_tag": depth_tag,
        "dataset": str(dataset), "manifest_hash": manifest_hash(dataset), "dataset_kind": manifest.kind,
        "protocol": name, "options": options,
    }
    record["key"] = eval_key(record)
    if reuse:
        previous = find_previous(run_dir, record)
        if previous is not None:
            return add_mean_pose(previous), None, None  # records written before the reference get it here

    fit, test = detect_eval_splits(detector, dataset, manifest, name, cfg, kind, depth_tag, req.batch_size, device,
                                   progress)
    result: ProtocolResult = run_protocol(name, fit, test, swap_table=cfg.eval.h36m_swap_table,
                                          pairs=_pairs(manifest) if name == "synthetic" else (), pck=cfg.eval.pck)
    out = result.to_dict()
    record.update({k: v for k, v in out.items() if k != "options"})
    record["options"] = {**options, **out["options"]}
    record["n_fit"], record["n_test"] = len(fit.gt), len(test.gt)
    add_mean_pose(record, cfg.eval.h36m_swap_table)
    if save and is_run_dir(run_dir):
        append_eval(run_dir, record)
    return record, fit, test
