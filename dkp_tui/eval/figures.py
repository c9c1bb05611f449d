"""Figures for `dkp eval --runs N [--compare]`: the models' keypoints side by side, the table as bars, per seed.

``compare.png``: one row per model on the same test images, the learned skeleton drawn; the depth teacher on the
depth maps it sees, the students on RGB (the overlays of docs/results.md, also `benchmarks/compare_overlays.py`).
``table.png``: mean +/- std per variant with each seed's value as a dot. ``seeds.png``: score against seed.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger("dkp.eval")

FIGURES = {"compare": "compare.png", "table": "table.png", "seeds": "seeds.png"}
OVERLAY_ORDER = ("teacher", "student-only", "distilled")  # teacher on depth, then the two students on RGB
TILE = 128  # overlays are upscaled to this many pixels so 64-px models stay readable


def overlay_rows(dataset: str | Path, runs: Sequence[str | Path], n: int = 6, split: str = "test",
                 labels: Sequence[str] | None = None) -> np.ndarray:
    """One row per run of keypoint overlays on the first ``n`` images of ``split`` (teachers on depth)."""
    import torch

    from dkp_tui.charts import label_rows
    from dkp_tui.data.loader import eval_batches
    from dkp_tui.inference.predict import load_detector, load_edge_weights
    from dkp_tui.train.samples import to_uint8
    from dkp_tui.viz import draw_keypoints, image_grid, strong_edges

    tiles: list[np.ndarray] = []
    height = 0
    for run in runs:
        detector, cfg, meta = load_detector(run, "cpu")
        kind = "depth" if meta.get("role") == "teacher" else "rgb"
        images, _ = next(iter(eval_batches(dataset, split, cfg.model.image_size, batch_size=n, kind=kind,
                                           depth_tag=cfg.data.depth_tag)))
        with torch.no_grad():
            keypoints = detector(images).keypoints.float().numpy()
        edges = strong_edges(load_edge_weights(run))
        scale = max(1, TILE // cfg.model.image_size)
        row = [draw_keypoints(im, kp, edges, scale=scale) for im, kp in zip(to_uint8(images), keypoints, strict=True)]
        height = height or row[0].shape[0]
        if row[0].shape[0] != height:  # runs of different image sizes: bring them to the first one's tile size
            import cv2

            row = [cv2.resize(t, (height, height), interpolation=cv2.INTER_AREA) for t in row]
        tiles.extend(row)
    grid = image_grid(tiles, ncols=n)
    return label_rows(grid, labels, height) if labels else grid


def _metric_label(summary: dict[str, Any]) -> str:
    arrow = "(higher is better)" if summary.get("higher_is_better") else "(lower is better)"
    return f"{summary.get('label') or summary.get('metric') or 'score'} {arrow}"


def table_chart(summary: dict[str, Any]) -> np.ndarray:
    from dkp_tui.charts import bar_chart

    rows = summary["rows"]
    return bar_chart([r["label"] for r in rows], [r.get("mean") for r in rows], [r.get("std") for r in rows],
                     f"{summary.get('preset')}: mean +/- std over {summary.get('n_runs')} seeds", _metric_label(summary),
                     points=[r.get("values") or [] for r in rows])


def seeds_chart(summary: dict[str, Any]) -> np.ndarray:
    from dkp_tui.charts import seed_plot

    series = [(r["label"], r.get("seeds") or [], r.get("values") or []) for r in summary["rows"]]
    return seed_plot(series, f"{summary.get('preset')}: score per seed", _metric_label(summary))


def write_figures(summary: dict[str, Any], out: str | Path, compare: bool, n_images: int = 6) -> dict[str, str]:
    """The PNGs next to summary.json; returns {figure: path}. A figure that cannot be drawn (no finished runs, the
    data set gone) is a warning, not a failed evaluation: the table is the result, the figures are views of it."""
    from dkp_tui.viz import save_png

    out = Path(out)
    written: dict[str, str] = {}
    if not summary.get("rows"):
        return written
    for name, draw in (("table", table_chart), ("seeds", seeds_chart)):
        path = out / FIGURES[name]
        save_png(str(path), draw(summary))
        written[name] = str(path)
    if compare:
        by_variant = {r["variant"]: r for r in summary["rows"]}
        chosen = [by_variant[v] for v in OVERLAY_ORDER if v in by_variant and by_variant[v].get("runs")]
        if chosen and summary.get("dataset"):
            try:
                grid = overlay_rows(summary["dataset"], [r["runs"][0] for r in chosen], n_images,
                                    labels=[f"{r['label']} ({r.get('input')})" for r in chosen])
            except Exception as err:  # noqa: BLE001 - see the docstring
                log.warning("compare.png not written: %s", err)
            else:
                path = out / FIGURES["compare"]
                save_png(str(path), grid)
                written["compare"] = str(path)
    return written
