"""End-to-end checks of the training loop on the tiny synthetic set (CPU, a few steps each)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch
from dkp_testing import tiny_overrides
from typer.testing import CliRunner

from dkp_tui.cli import app
from dkp_tui.config import load_config
from dkp_tui.errors import DkpError
from dkp_tui.formats.run_dir import load_weights, read_run_info
from dkp_tui.train import loop

runner = CliRunner()


def _train(dataset: Path, run: Path, role: str = "student", teacher: Path | None = None, **extra: object):
    cfg = load_config(None, tiny_overrides(dataset, **extra))
    return loop.train(cfg, run, role=role, teacher_run=teacher, quiet=True)


@pytest.fixture(scope="module")
def teacher_run(tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("runs") / "teacher"
    _train(tiny_dataset, run, role="teacher")
    return run


def _lines(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_teacher_run_directory(teacher_run: Path):
    info = read_run_info(teacher_run)
    assert (info.role, info.status, info.step) == ("teacher", "finished", 4)
    tensors, meta = load_weights(teacher_run / "model.safetensors")
    assert meta["role"] == "teacher" and meta["step"] == "4"
    assert json.loads(meta["config"])["model"]["n_keypoints"] == 8
    assert any(k.startswith("detector.") for k in tensors) and "alpha" in tensors
    steps = [r for r in _lines(teacher_run) if r["kind"] == "step"]
    assert [r["step"] for r in steps] == [1, 2, 3, 4]
    assert all(r["loss_kd"] is None and r["loss"] > 0 for r in steps)
    assert (teacher_run / "config.toml").is_file()
    assert sorted(p.name for p in (teacher_run / "samples").iterdir()) == ["step_0000002.png", "step_0000004.png"]
    assert not list(teacher_run.rglob(".*.tmp*"))


def test_distilled_student_keeps_the_teacher_frozen(tiny_dataset: Path, teacher_run: Path, tmp_path: Path):
    before = hashlib.sha256((teacher_run / "model.safetensors").read_bytes()).hexdigest()
    _train(tiny_dataset, tmp_path / "student", teacher=teacher_run, kd__gamma=0.5)
    assert hashlib.sha256((teacher_run / "model.safetensors").read_bytes()).hexdigest() == before
    steps = [r for r in _lines(tmp_path / "student") if r["kind"] == "step"]
    assert all(r["loss_kd"] is not None and 0 <= r["loss_kd"] <= 2 for r in steps)
    assert abs(steps[-1]["loss"] - (steps[-1]["loss_rec"] + 0.5 * steps[-1]["loss_kd"])) < 1e-4
    assert (tmp_path / "student" / "samples" / "step_0000004_teacher.png").is_file()
    assert read_run_info(tmp_path / "student").teacher_run == str(teacher_run)


def test_teacher_with_other_k_is_refused(tiny_dataset: Path, teacher_run: Path, tmp_path: Path):
    with pytest.raises(DkpError, match="K=8"):
        _train(tiny_dataset, tmp_path / "s", teacher=teacher_run, model__n_keypoints=6)


def test_resume_after_interruption_equals_uninterrupted(tiny_dataset: Path, tmp_path: Path, monkeypatch):
    _train(tiny_dataset, tmp_path / "full", iterations=6)

    real_step, calls = loop.train_step, {"n": 0}

    def crashing_step(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:  # after the checkpoint at step 2, during step 4
            raise KeyboardInterrupt
        return real_step(*args, **kwargs)

    monkeypatch.setattr(loop, "train_step", crashing_step)
    with pytest.raises(KeyboardInterrupt):
        _train(tiny_dataset, tmp_path / "cut", iterations=6)
    assert read_run_info(tmp_path / "cut").status == "failed"
    monkeypatch.setattr(loop, "train_step", real_step)

    cfg = load_config(None, tiny_overrides(tiny_dataset, iterations=6))
    loop.train(cfg, tmp_path / "cut", role="student", resume=True, quiet=True)
    a, _ = load_weights(tmp_path / "full" / "model.safetensors")
    b, meta = load_weights(tmp_path / "cut" / "model.safetensors")
    assert meta["step"] == "6"
    assert all(torch.equal(a[k], b[k]) for k in a), "resumed weights differ from the uninterrupted run"
    steps = [r["step"] for r in _lines(tmp_path / "cut") if r["kind"] == "step"]
    assert steps == [1, 2, 3, 4, 5, 6]


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tiny_dataset: Path, tmp_path: Path, monkeypatch):
    real_step, calls = loop.train_step, {"n": 0}

    def nan_step(*args, **kwargs):
        calls["n"] += 1
        losses = real_step(*args, **kwargs)
        if calls["n"] == 3:
            losses["loss"] = losses["loss"] * float("nan")
        return losses

    monkeypatch.setattr(loop, "train_step", nan_step)
    with pytest.raises(DkpError, match="non-finite loss at step 3.*step 2"):
        _train(tiny_dataset, tmp_path / "nan", iterations=6)
    info = read_run_info(tmp_path / "nan")
    assert info.status == "failed" and "step 3" in info.message
    _, meta = load_weights(tmp_path / "nan" / "model.safetensors")
    assert meta["step"] == "2"


def test_cli_teacher_then_student(tiny_dataset: Path, tmp_path: Path):
    sets = [a for o in tiny_overrides(tiny_dataset, iterations=2) for a in ("--set", o)]
    r = runner.invoke(app, ["train", "--teacher", "depth", *sets, "--run", str(tmp_path / "t"), "--quiet", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["role"] == "teacher"
    r = runner.invoke(app, ["train", *sets, "--teacher-run", str(tmp_path / "t"), "--run", str(tmp_path / "s"),
                            "--quiet"])
    assert r.exit_code == 0, r.output
    assert read_run_info(tmp_path / "s").status == "finished"
    # the same run again is refused, with a hint to resume
    r = runner.invoke(app, ["train", *sets, "--run", str(tmp_path / "s"), "--quiet"])
    assert r.exit_code == 2 and "--resume" in r.output
    # a student as teacher is refused
    r = runner.invoke(app, ["train", *sets, "--teacher-run", str(tmp_path / "s"), "--run", str(tmp_path / "x")])
    assert r.exit_code == 2 and "not a depth teacher" in r.output
    r = runner.invoke(app, ["train", "--set", "kd.gama=1"])
    assert r.exit_code == 2 and "kd.gamma" in r.output
    r = runner.invoke(app, ["train", "--help"])
    assert r.exit_code == 0 and "Examples" in r.output


def test_sigterm_stops_training_like_ctrl_c(tiny_dataset: Path, tmp_path: Path):
    """A scheduler's SIGTERM used to kill the process outright and leave run.json saying "running"; now the run is
    marked stopped with the resume command, keeps its last checkpoint, and the process exits 143."""
    import signal
    import subprocess
    import sys
    import time

    run = tmp_path / "run"
    sets = [a for o in tiny_overrides(tiny_dataset, iterations=100_000, train__checkpoint_every=1) for a in ("--set", o)]
    proc = subprocess.Popen([sys.executable, "-m", "dkp_tui", "train", "--run", str(run), "--quiet", *sets],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (run / "checkpoint").is_dir() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
    time.sleep(0.5)  # a few more steps
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "dkp: terminated" in err and "Traceback" not in err
    info = read_run_info(run)
    assert info.status == "failed" and "Terminated" in info.message and "dkp train --resume" in info.message
    assert info.step >= 1 and (run / "model.safetensors").is_file()
    assert _lines(run)[-1]["kind"] == "end"


def test_cosine_schedule_reaches_the_optimizer(tiny_dataset: Path, tmp_path: Path):
    from dkp_tui.train.schedule import lr_at

    run = tmp_path / "cosine"
    _train(tiny_dataset, run, optim__schedule='"cosine"', optim__lr=1e-3, optim__warmup_steps=1)
    logged = [(r["step"], r["lr"]) for r in _lines(run) if "lr" in r]
    assert [s for s, _ in logged] == [1, 2, 3, 4]
    assert [lr for _, lr in logged] == pytest.approx([lr_at(s - 1, 1e-3, 4, "cosine", 1) for s, _ in logged])
    assert logged[1][1] > logged[3][1]  # it decays
