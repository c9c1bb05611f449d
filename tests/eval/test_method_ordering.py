"""The product's claim on a reduced scale, as CI can afford it (about 2-3 minutes on 2 CPU cores).

Reduced version of `dkp eval --runs 3 --compare --preset synthetic-cpu` (the shipped recipe: the RGB students on
EfficientNet-Lite0's ImageNet features, the depth teacher on the from-scratch AutoLink detector) on the cluttered
set of two synthetic families (the default `figures` and `stage`): 1,000 training images instead of 4,000, 100
iterations instead of 500, one seed. Two things must hold on each:

* the image-only student is a keypoint model: its error is well below what the constant mean pose of the fit
  split scores (issue 16: with the pixel loss it used to sit at ~0.9x the mean pose);
* the distilled student beats the image-only student, and the depth teacher is the best of the three.

The thresholds come from the spread measured on this reduced version over seeds 0-2 (docs/results.md, "The CI
check"), next to MAX_ONLY_VS_MEAN_POSE and MAX_RATIO below.

The image-only student needs no teacher, so it trains in a second process while this one trains the teacher and
then the distilled student: the test's core-seconds are spread over two, which is what lets the suite's two
xdist workers finish together. Every process runs one torch thread, as the thresholds were measured, so the
numbers are bit-for-bit those of the sequential run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from dkp_tui.data.synthetic import generate_dataset
from dkp_tui.experiments.repeats import plan_repeats, run_repeats

PRESET = "synthetic-cpu"
# trains the plan's image-only runs, exactly the jobs run_repeats would train (same plan, same configs)
_TRAIN_IMAGE_ONLY = """
import json, sys
import torch
torch.set_num_threads(1)
from pathlib import Path
from dkp_tui.experiments.repeats import plan_repeats
from dkp_tui.train.loop import train
preset, n_runs, out, overrides = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]), json.loads(sys.argv[4])
plan = plan_repeats(preset, n_runs, True, out, overrides)
for job in plan.jobs:
    if plan.variant_of[str(job.run)] == "student-only":
        train(job.cfg, job.run, role=job.role, teacher_run=job.teacher_run, quiet=True)
"""

# Measured on this reduced version with the shipped recipe (issue 29), one thread, seeds 0 / 1 / 2
# (docs/results.md, "The CI check"); `figures`, mean pose 17.27. At the test's 100 iterations:
#   image-only 12.43 / 10.17 / 14.44, i.e. 0.72 / 0.59 / 0.84 of the mean pose; the old pixel-loss student scored
#   0.91-1.02 here, so 0.85 fails a student that learned nothing;
#   distilled 8.84 / 9.17 / 8.64, i.e. 0.71 / 0.90 / 0.60 of image-only: 0.9 is short of 1, where a student that
#   gains nothing from its teacher sits; teacher 4.64 / 7.88 / 5.25, always the best.
# At 160 iterations the margins are wider (image-only 0.60-0.74 of the mean pose, distilled 0.64-0.83 of
# image-only), at 60 % more of the suite's time: seed 0, which the test runs bit for bit, has room at 100
# (0.72 against 0.85, 0.71 against 0.9), seeds 1 and 2 sit on the bounds. The from-scratch recipe needed 250.
MAX_ONLY_VS_MEAN_POSE = 0.85
MAX_RATIO = 0.9
# The second family, `stage` (issue 25: the claim must not rest on the generator the recipe was tuned on), the same
# reduced version, mean pose 22.26. At 100 iterations, seeds 0 / 1 / 2: image-only 0.59 / 0.63 / 0.41 of the mean
# pose, distilled 0.57 / 0.98 / 0.73 of image-only, teacher best on all three (seed 1's teacher, 12.00, is weak and
# its student gains nothing). At 160: 0.43 / 0.52 / 0.34 and 0.69 / 0.79 / 0.83, teacher best on seeds 0 and 2.
# `room` is not here: with the from-scratch detector its image-only student did not learn at this budget (0.96 of
# the mean pose); with the ImageNet one it is still above 0.5 of it at 2,000 iterations (docs/results.md).
# The `stage` case lives in test_method_ordering_stage.py, so that pytest-xdist (--dist loadfile) runs the two
# families on different workers.


def reduced_comparison(out: Path, n_runs: int = 1, iterations: int = 100, family: str = "figures") -> dict:
    """Train teacher, student-only and distilled student for seeds 0..n_runs-1; the summary by variant."""
    data = out / "data"
    generate_dataset(data, size=64, n_train=1000, n_fit=300, n_test=200, background="cluttered", seed=0,
                     progress=False, family=family)
    overrides = [f'data.dataset="{data}"', f"train.iterations={iterations}",
                 'train.device="cpu"', "train.sample_every=100000", "train.checkpoint_every=100000"]
    runs = out / "runs"
    plan = plan_repeats(PRESET, n_runs, True, runs, overrides)
    image_only = {str(j.run) for j in plan.jobs if plan.variant_of[str(j.run)] == "student-only"}
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    child = subprocess.Popen([sys.executable, "-c", _TRAIN_IMAGE_ONLY, PRESET, str(n_runs), str(runs),
                              json.dumps(overrides)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True)

    def train_fn(cfg: Any, run: Path, **kwargs: Any) -> None:
        if str(run) in image_only:  # the child's; run_repeats only evaluates it
            wait_for_child()
            return
        from dkp_tui.train.loop import train

        train(cfg, run, **kwargs)

    def wait_for_child() -> None:
        log, _ = child.communicate(timeout=1200)
        assert child.returncode == 0, f"the image-only training process failed:\n{log[-4000:]}"

    try:
        summary = run_repeats(PRESET, n_runs, True, runs, overrides, device="cpu", progress=False,
                              train_fn=train_fn)
        if child.returncode is None:  # run_repeats found the child's runs finished and never asked for them
            wait_for_child()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    return {"rows": {row["variant"]: row for row in summary["rows"]}, "mean_pose": summary["mean_pose"]["value"]}


def assert_ordering(out: Path, family: str) -> None:
    """The reduced comparison on ``family``'s cluttered set, and the two claims above."""
    result = reduced_comparison(out, family=family)
    rows, mean_pose = result["rows"], result["mean_pose"]
    only, distilled, teacher = rows["student-only"]["mean"], rows["distilled"]["mean"], rows["teacher"]["mean"]
    assert only < MAX_ONLY_VS_MEAN_POSE * mean_pose, (
        f"the image-only student ({only:.2f}) learned no keypoints: the mean pose scores {mean_pose:.2f}")
    assert teacher < distilled, f"the depth teacher ({teacher:.2f}) should be the best of the three"
    assert distilled < MAX_RATIO * only, f"distilled {distilled:.2f} vs image-only {only:.2f}"


@pytest.mark.slow
def test_image_only_student_learns_and_the_distilled_student_beats_it(tmp_path: Path):
    assert_ordering(tmp_path, "figures")
