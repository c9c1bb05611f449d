"""`--runs N --compare` and `dkp sweep` orchestration with a fake trainer: plan, reuse, resume, tables, plot."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dkp_tui.config import Config
from dkp_tui.errors import DkpError
from dkp_tui.experiments import jobs, repeats, sweep
from dkp_tui.formats.job_list import read_job_list
from dkp_tui.formats.run_dir import RunInfo, read_run_info, write_run_config, write_run_info

OVERRIDES = ["train.iterations=5", 'data.dataset="unused"']
# the sweep compares hidden KD layers, which only the AutoLink student has
SWEEP_OVERRIDES = [*OVERRIDES, 'model.backbone="autolink"']
REAL_EVALUATE_JOB = jobs.evaluate_job  # taken before the autouse fixture swaps in fake_eval


class FakeTrainer:
    """Writes a run directory like the real loop would (config, run.json), records every call."""

    def __init__(self, fail_on: str | None = None) -> None:
        self.calls: list[tuple[str, str, bool, str | None]] = []
        self.fail_on = fail_on

    def __call__(self, cfg: Config, run: Path, *, role: str, teacher_run: Path | None, resume: bool,
                 quiet: bool) -> RunInfo:
        assert quiet
        self.calls.append((str(run), role, resume, str(teacher_run) if teacher_run else None))
        run.mkdir(parents=True, exist_ok=True)
        write_run_config(run, cfg)
        status = "failed" if self.fail_on and self.fail_on in str(run) else "finished"
        info = RunInfo(role=role, status=status, step=cfg.train.iterations if status == "finished" else 2,
                       total_steps=cfg.train.iterations, seed=cfg.train.seed,
                       teacher_run=str(teacher_run) if teacher_run else None)
        write_run_info(run, info)
        if status == "failed":
            raise KeyboardInterrupt
        return info


def fake_eval(job: jobs.Job, device: str, batch_size: int = 64, progress: Any = None) -> dict[str, Any]:
    """Scores that depend on the variant and seed only: distilled 3 + s, teacher 5 + s, student-only 6 + 2 s."""
    name = job.run.name
    s = job.cfg.train.seed
    value = {"student": 3.0 + s, "teacher": 5.0 + s, "student-only": 6.0 + 2 * s}.get(name)
    if value is None:  # sweep points: output best, then mid, then early; smaller γ better
        value = {"output": 1.0, "mid": 2.0, "early": 3.0}[name.split("-g")[0]] + job.cfg.kd.gamma
    return {"run": str(job.run), "protocol": "synthetic", "metric": "synthetic_l2x100", "label": "L2 ×100",
            "value": value, "higher_is_better": False, "input": "depth" if job.role == "teacher" else "rgb",
            "options": {"image_size": 64}, "extras": {"on_figure": 0.5 + 0.1 * s}, "fallbacks": [],
            "mean_pose": {"value": 10.0, "figure_area": 0.1}}


@pytest.fixture(autouse=True)
def _fake_eval(monkeypatch):
    monkeypatch.setattr(jobs, "evaluate_job", fake_eval)


def test_compare_plan_trains_teacher_before_its_student(tmp_path: Path):
    plan = repeats.plan_repeats("synthetic-cpu", 2, True, tmp_path, OVERRIDES)
    names = [str(j.run.relative_to(tmp_path)) for j in plan.jobs]
    assert names == ["seed0/teacher", "seed0/student", "seed0/student-only",
                     "seed1/teacher", "seed1/student", "seed1/student-only"]
    assert plan.jobs[1].teacher_run == plan.jobs[0].run and plan.jobs[2].teacher_run is None
    assert plan.jobs[2].cfg.kd.gamma == 0 and plan.jobs[1].cfg.kd.gamma > 0
    assert [j.cfg.train.seed for j in plan.jobs] == [0, 0, 0, 1, 1, 1]


def test_table2_summary_reuse_and_resume(tmp_path: Path):
    trainer = FakeTrainer()
    summary = repeats.run_repeats("synthetic-cpu", 3, True, tmp_path, OVERRIDES, progress=False, train_fn=trainer)
    assert len(trainer.calls) == 9 and not any(c[2] for c in trainer.calls)
    rows = {r["variant"]: r for r in summary["rows"]}
    assert list(rows) == ["student-only", "teacher", "distilled"]
    assert rows["distilled"]["values"] == [3.0, 4.0, 5.0]
    assert rows["distilled"]["mean"] == pytest.approx(4.0) and rows["distilled"]["std"] == pytest.approx(1.0)
    assert rows["student-only"]["std"] == pytest.approx(2.0)  # sample std (ddof = 1) of 6, 8, 10
    assert rows["teacher"]["input"] == "depth" and rows["distilled"]["input"] == "rgb"
    assert (rows["distilled"]["min"], rows["distilled"]["max"]) == (3.0, 5.0)
    assert summary["ratio_distilled_to_student_only"] == pytest.approx(4.0 / 8.0)
    assert json.loads((tmp_path / "summary.json").read_text())["rows"][2]["values"] == [3.0, 4.0, 5.0]
    # the mean-pose reference (10) and every run's skill 1 - value / 10, mean ± sample std over seeds
    assert summary["mean_pose"]["value"] == 10.0
    assert rows["distilled"]["skill"] == pytest.approx([0.7, 0.6, 0.5])
    assert rows["distilled"]["skill_stats"]["mean"] == pytest.approx(0.6)
    assert rows["distilled"]["skill_stats"]["std"] == pytest.approx(0.1)

    # a second invocation reuses everything
    trainer2 = FakeTrainer()
    repeats.run_repeats("synthetic-cpu", 3, True, tmp_path, OVERRIDES, progress=False, train_fn=trainer2)
    assert trainer2.calls == []

    # a stopped run is resumed, and --runs 4 adds only the new seed
    info = read_run_info(tmp_path / "seed1" / "student")
    info.status = "failed"
    write_run_info(tmp_path / "seed1" / "student", info)
    trainer3 = FakeTrainer()
    summary = repeats.run_repeats("synthetic-cpu", 4, True, tmp_path, OVERRIDES, progress=False, train_fn=trainer3)
    resumed = [c for c in trainer3.calls if c[2]]
    assert [Path(c[0]).relative_to(tmp_path).as_posix() for c in resumed] == ["seed1/student"]
    assert sorted(Path(c[0]).parent.name for c in trainer3.calls if not c[2]) == ["seed3"] * 3
    assert len(summary["rows"][0]["values"]) == 4

    # the table renders with the Table 2 rows and the on-figure column
    from rich.console import Console

    console = Console(record=True, width=160)
    console.print(repeats.table(summary))
    text = console.export_text()
    assert "image student only" in text and "depth teacher only" in text and "distilled" in text
    assert "4.50 ± 1.29" in text and "on figure %" in text
    assert "skill" in text and "constant mean pose (fit split)" in text and "10.00" in text
    distilled = next(line for line in text.splitlines() if "distilled student" in line)
    assert "│  0.55 │" in distilled and "1 − error / mean-pose error" in text  # the skill of the mean, 1 - 4.5 / 10


def test_interrupted_job_list_continues(tmp_path: Path):
    trainer = FakeTrainer(fail_on="seed0/student")
    with pytest.raises(KeyboardInterrupt):
        repeats.run_repeats("synthetic-cpu", 2, False, tmp_path, OVERRIDES, progress=False, train_fn=trainer)
    assert read_run_info(tmp_path / "seed0" / "student").status == "failed"
    trainer2 = FakeTrainer()
    repeats.run_repeats("synthetic-cpu", 2, False, tmp_path, OVERRIDES, progress=False, train_fn=trainer2)
    assert [(Path(c[0]).relative_to(tmp_path).as_posix(), c[2]) for c in trainer2.calls] == [
        ("seed0/student", True), ("seed1/teacher", False), ("seed1/student", False)]


def test_a_run_with_another_config_is_not_silently_reused(tmp_path: Path):
    repeats.run_repeats("synthetic-cpu", 1, False, tmp_path, OVERRIDES, progress=False, train_fn=FakeTrainer())
    with pytest.raises(DkpError, match="different config"):
        repeats.run_repeats("synthetic-cpu", 1, False, tmp_path, [*OVERRIDES, "kd.gamma=0.9"], progress=False,
                            train_fn=FakeTrainer())
    # logging cadence and device do not count as a different config
    repeats.run_repeats("synthetic-cpu", 1, False, tmp_path, [*OVERRIDES, "train.log_every=3", 'train.device="cpu"'],
                        progress=False, train_fn=FakeTrainer())


def test_runs_need_a_positive_gamma(tmp_path: Path):
    with pytest.raises(DkpError, match="kd.gamma"):
        repeats.plan_repeats("synthetic-cpu", 1, True, tmp_path, [*OVERRIDES, "kd.gamma=0"])


def test_sweep_grid_table_chart_and_plot(tmp_path: Path):
    trainer = FakeTrainer()
    summary = sweep.run_sweep("synthetic-cpu", [0.0, 0.1, 0.4], ["output", "mid", "early"], [0, 1], tmp_path,
                              SWEEP_OVERRIDES, progress=False, train_fn=trainer)
    runs = sorted(Path(c[0]).relative_to(tmp_path).as_posix() for c in trainer.calls)
    assert "seed0/teacher" in runs and "seed1/student-only" in runs and "seed1/early-g0.4" in runs
    assert len(runs) == 2 * (1 + 1 + 3 * 2)
    students = [c for c in trainer.calls if "-g" in Path(c[0]).name]  # (xdist's tmp_path holds "popen-gw0")
    assert all(c[3] == str(Path(c[0]).parent / "teacher") for c in students)  # one teacher per seed, shared
    assert summary["best"] == {"layer": "output", "gamma": 0.1, "mean": pytest.approx(1.1)}
    assert summary["best_by_layer"]["early"]["gamma"] == 0.1
    png = tmp_path / "sweep.png"
    import cv2

    img = cv2.imread(str(png))
    assert img is not None and img.shape[:2] == (520, 880) and img.std() > 5
    chart = sweep.terminal_chart(summary)
    assert "output" in chart and "█" in chart and "lower is better" in chart
    from rich.console import Console

    console = Console(record=True, width=160)
    console.print(sweep.table(summary))
    text = " ".join(console.export_text().split())
    assert "γ=0.4" in text
    assert "constant mean pose: 10.00 (best point's skill 0.890" in text
    best = next(g for g in summary["grid"] if g["layer"] == "output" and g["gamma"] == 0.1)
    assert best["skill_stats"]["mean"] == pytest.approx(0.89) and summary["mean_pose"]["value"] == 10.0
    # resumable: nothing retrained
    again = FakeTrainer()
    sweep.run_sweep("synthetic-cpu", [0.0, 0.1, 0.4], ["output", "mid", "early"], [0, 1], tmp_path, SWEEP_OVERRIDES,
                    progress=False, train_fn=again)
    assert again.calls == []


def test_sweep_argument_parsing():
    assert sweep.parse_floats("0.4, 0.1,0.1", "--gamma") == [0.1, 0.4]
    with pytest.raises(DkpError):
        sweep.parse_floats("a,b", "--gamma")
    with pytest.raises(DkpError, match="unknown layer"):
        sweep.parse_layers("output,bogus")
    assert sweep.parse_ints("2,0,2", "--seeds") == [2, 0]


def test_stats_sample_std():
    s = jobs.stats([1.0, 2.0, 3.0, None, float("nan")])
    assert s["n"] == 3 and s["mean"] == 2.0 and s["std"] == pytest.approx(1.0)
    assert jobs.stats([2.0])["std"] is None and jobs.fmt_mean_std(jobs.stats([2.0])) == "2.00"
    assert np.isclose(jobs.stats([0.0, 2.0])["std"], np.std([0.0, 2.0], ddof=1))


def test_one_teacher_is_shared_by_every_seed(tmp_path: Path):
    plan = repeats.plan_repeats("synthetic-cpu", 3, False, tmp_path, OVERRIDES, one_teacher=True)
    names = [j.run.relative_to(tmp_path).as_posix() for j in plan.jobs]
    assert names == ["seed0/teacher", "seed0/student", "seed1/student", "seed2/student"]
    assert {j.teacher_run for j in plan.jobs[1:]} == {tmp_path / "seed0" / "teacher"}
    assert [j.cfg.train.seed for j in plan.jobs[1:]] == [0, 1, 2]


def test_a_job_is_scored_on_the_data_set_it_was_planned_on(monkeypatch, tmp_path: Path):
    """A reused run (say a depth teacher copied from the cluttered table into the clean one) carries its old
    data set in its weights; the table must score it on the one the plan names."""
    from dkp_tui.eval import evaluate

    seen: list[Any] = []
    monkeypatch.setattr(evaluate, "evaluate_run", lambda req, **kw: seen.append(req) or {"value": 1.0})
    plan = repeats.plan_repeats("synthetic-cpu", 1, False, tmp_path, ['data.dataset="data/clean"'])
    REAL_EVALUATE_JOB(plan.jobs[0], "cpu")
    assert seen and Path(seen[0].data) == Path("data/clean")



def test_the_sweeps_default_layers_follow_the_students_backbone():
    assert sweep.default_layers("synthetic-cpu", OVERRIDES) == "output,output_prob"  # the ImageNet student
    assert sweep.default_layers("synthetic-cpu", SWEEP_OVERRIDES) == "output,mid,early"
    assert sweep.default_layers("taichi", []) == "output,mid,early"  # the paper presets are untouched
    with pytest.raises(DkpError, match="hidden features"):
        sweep.run_sweep("synthetic-cpu", [0.1], ["mid"], [0], Path("unused"), OVERRIDES, progress=False)


def test_collect_summarises_the_finished_runs_and_starts_nothing(tmp_path: Path):
    from dkp_tui.experiments.launchers import LaunchOptions

    collect = LaunchOptions(collect=True)
    with pytest.raises(DkpError, match="no finished run"):
        repeats.run_repeats("synthetic-cpu", 2, False, tmp_path, OVERRIDES, progress=False, launch=collect)
    with pytest.raises(KeyboardInterrupt):
        repeats.run_repeats("synthetic-cpu", 2, False, tmp_path, OVERRIDES, progress=False,
                            train_fn=FakeTrainer(fail_on="seed1/student"))
    notes: list[str] = []
    summary = repeats.run_repeats("synthetic-cpu", 2, False, tmp_path, OVERRIDES, progress=False, launch=collect,
                                  note=notes.append, train_fn=FakeTrainer(fail_on=""))
    rows = {r["variant"]: r for r in summary["rows"]}
    assert rows["teacher"]["values"] == [5.0, 6.0] and rows["distilled"]["values"] == [3.0]  # seed 1's is not done
    assert notes == ["--collect: 1 of 4 runs not finished; the summary covers the other 3"]
    assert json.loads((tmp_path / "summary.json").read_text())["rows"][1]["values"] == [3.0]
    states = {e.run: e.state for e in read_job_list(tmp_path).jobs}  # the sequential launch's job list
    assert states == {"seed0/teacher": "finished", "seed0/student": "finished", "seed1/teacher": "finished",
                      "seed1/student": "failed"}
    grid = sweep.run_sweep("synthetic-cpu", [0.1], ["output"], [0], tmp_path / "sw", OVERRIDES, progress=False,
                           train_fn=FakeTrainer())
    assert sweep.run_sweep("synthetic-cpu", [0.1], ["output"], [0], tmp_path / "sw", OVERRIDES, progress=False,
                           launch=collect)["grid"] == grid["grid"]
