"""The product's claim on a reduced scale: on the cluttered synthetic set, the distilled student beats the
image-only student (issue 9). About two minutes on 2 CPU cores, so it runs in CI.

Reduced version of `dkp eval --runs 3 --compare --preset synthetic-cpu`: 1,000 training images instead of 4,000
and 250 iterations instead of 500, one seed. The threshold is set from the spread measured on this reduced
version over seeds 0-4 (docs/results.md, "The CI check"): distilled / student-only was 0.72, 0.76, 0.84, 0.83,
0.75 (mean 0.78, std 0.05), the image-only error 15.8-17.7; 0.9 is mean + 2.4 std, and a student that gains
nothing from its teacher sits at ~1. The on-figure fraction is not asserted: at 250 iterations two teachers in
five were weak (on figure 0.18-0.20) and their students followed them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from dkp_tui.data.synthetic import generate_dataset
from dkp_tui.eval.repeats import run_repeats

MAX_RATIO = 0.9  # distilled / student-only, mean L2 x100


def reduced_comparison(out: Path, n_runs: int = 1, iterations: int = 250) -> dict[str, dict]:
    """Train teacher, student-only and distilled student for seeds 0..n_runs-1; the summary rows by variant."""
    data = out / "data"
    generate_dataset(data, size=64, n_train=1000, n_fit=300, n_test=200, background="cluttered", seed=0,
                     progress=False)
    overrides = [f'data.dataset="{data}"', f"train.iterations={iterations}",
                 'train.device="cpu"', "train.sample_every=100000", "train.checkpoint_every=100000"]
    summary = run_repeats("synthetic-cpu", n_runs, True, out / "runs", overrides, device="cpu", progress=False)
    return {row["variant"]: row for row in summary["rows"]}


@pytest.mark.slow
def test_distilled_student_beats_image_only_student_on_clutter(tmp_path: Path):
    rows = reduced_comparison(tmp_path)
    only, distilled, teacher = rows["student-only"]["mean"], rows["distilled"]["mean"], rows["teacher"]["mean"]
    assert teacher < distilled, f"the depth teacher ({teacher:.2f}) should be the best of the three"
    assert distilled < MAX_RATIO * only, f"distilled {distilled:.2f} vs image-only {only:.2f}"
