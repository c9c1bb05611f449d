"""`dkp eval --runs N [--compare]` figures: compare.png (the three models' keypoints on the same test images),
table.png (bars with error bars), seeds.png; drawn without a plotting library."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from dkp_testing import random_weights

from dkp_tui import charts
from dkp_tui.eval.figures import overlay_rows, write_figures


def _summary(runs: dict[str, Path] | None = None, dataset: Path | None = None) -> dict:
    rows = []
    for variant, label, values in [("student-only", "image student only", [15.0, 16.0, 14.0]),
                                   ("teacher", "depth teacher only", [4.0, 4.5, 4.2]),
                                   ("distilled", "distilled student", [10.0, 11.0, 11.5])]:
        mean = float(np.mean(values))
        rows.append({"variant": variant, "label": label, "input": "depth" if variant == "teacher" else "rgb",
                     "seeds": [0, 1, 2], "values": values, "mean": mean, "std": float(np.std(values, ddof=1)),
                     "runs": [str(runs[variant])] if runs else []})
    return {"preset": "synthetic-cpu", "n_runs": 3, "label": "L2 x100", "metric": "synthetic_l2x100",
            "higher_is_better": False, "dataset": str(dataset) if dataset else None, "rows": rows}


def _read(path: Path) -> np.ndarray:
    img = cv2.imread(str(path))
    assert img is not None, path
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def test_bar_chart_bars_are_as_tall_as_the_means():
    img = charts.bar_chart(["a", "b"], [2.0, 4.0], [0.5, None], "t", "y")
    colours = [np.array(charts.PALETTE[i]) for i in range(2)]
    heights = [int((np.abs(img.astype(int) - c).sum(axis=2) == 0).any(axis=1).sum()) for c in colours]
    assert heights[1] > 0 and abs(heights[1] / heights[0] - 2.0) < 0.1  # zero-based axis: ratio of the means


def test_seed_plot_and_ticks():
    img = charts.seed_plot([("a", [0, 1, 2], [1.0, None, 3.0]), ("b", [0, 1, 2], [2.0, 2.0, 2.0])], "t", "y")
    assert img.shape == (400, 640, 3) and img.dtype == np.uint8
    for c in charts.PALETTE[:2]:
        assert (np.abs(img.astype(int) - c).sum(axis=2) == 0).sum() > 50  # both series drawn
    np.testing.assert_allclose(charts.nice_ticks(0.0, 1.0), [0.0, 0.2, 0.4, 0.6, 0.8, 1.0])


def test_write_figures_for_runs_and_compare(tiny_dataset: Path, tmp_path: Path):
    runs = {"teacher": random_weights(tmp_path / "t.safetensors", tiny_dataset, role="teacher", seed=1),
            "student-only": random_weights(tmp_path / "o.safetensors", tiny_dataset, seed=2),
            "distilled": random_weights(tmp_path / "d.safetensors", tiny_dataset, seed=3)}
    out = tmp_path / "rep"
    written = write_figures(_summary(runs, tiny_dataset), out, compare=True, n_images=4)
    assert set(written) == {"table", "seeds", "compare"}
    compare = _read(out / "compare.png")
    grid = overlay_rows(tiny_dataset, [runs[v] for v in ("teacher", "student-only", "distilled")], 4)
    # 3 rows (teacher on depth, image-only, distilled) of 4 tiles at 128 px, plus the label column
    assert grid.shape == (2 + 3 * 130, 2 + 4 * 130, 3) and compare.shape[0] == grid.shape[0]
    np.testing.assert_array_equal(compare[:, compare.shape[1] - grid.shape[1]:], grid)
    teacher_row, student_row = grid[2:130, 2:130], grid[132:260, 2:130]
    assert not np.array_equal(teacher_row, student_row)  # depth map vs RGB of the same image
    assert _read(out / "table.png").shape == (400, 640, 3) and _read(out / "seeds.png").std() > 5


def test_without_compare_or_runs_only_the_charts(tmp_path: Path):
    written = write_figures(_summary(), tmp_path, compare=False)
    assert set(written) == {"table", "seeds"} and not (tmp_path / "compare.png").exists()
    assert write_figures({"rows": []}, tmp_path / "empty", compare=True) == {}
