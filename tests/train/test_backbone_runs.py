"""Runs on the ImageNet backbone: trained, saved whole, loaded, exported and resumed without the ImageNet file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from dkp_testing import tiny_overrides
from typer.testing import CliRunner

from dkp_tui.cli import app
from dkp_tui.config import load_config
from dkp_tui.errors import DkpError
from dkp_tui.formats.run_dir import load_weights
from dkp_tui.model import imagenet
from dkp_tui.train import loop

pytest.importorskip("timm", reason="timm is a core dependency; its absence is reported by the install")
runner = CliRunner()
LITE0 = '"efficientnet_lite0"'


def _cfg(dataset: Path, **extra: object):
    return load_config(None, tiny_overrides(dataset, **extra))


def _train(dataset: Path, run: Path, role: str = "student", teacher: Path | None = None, **extra: object):
    return loop.train(_cfg(dataset, **extra), run, role=role, teacher_run=teacher, quiet=True)


def _imagenet_encoder() -> dict[str, torch.Tensor]:
    import timm

    return imagenet.load_imagenet_state(timm.create_model("efficientnet_lite0").state_dict())


@pytest.fixture(scope="module")
def lite0_run(tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("runs") / "lite0"
    _train(tiny_dataset, run, model__backbone=LITE0, kd__gamma=0, optim__backbone_lr_scale=0.5)
    return run


def _no_imagenet_file(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(path: str = "") -> Path:
        raise AssertionError("a saved run must not need the ImageNet file")

    monkeypatch.setattr(imagenet, "resolve_weights", refuse)


def test_the_run_holds_the_fine_tuned_encoder_and_loads_without_the_imagenet_file(
        lite0_run: Path, tiny_dataset: Path, monkeypatch: pytest.MonkeyPatch):
    from dkp_tui.inference.predict import load_detector

    tensors, meta = load_weights(lite0_run / "model.safetensors")
    assert json.loads(meta["config"])["model"]["backbone"] == "efficientnet_lite0"
    start = _imagenet_encoder()
    encoder = {k[len("detector.encoder.net."):]: v for k, v in tensors.items()
               if k.startswith("detector.encoder.net.")}
    assert encoder and set(encoder) <= set(start)
    assert not torch.equal(encoder["conv_stem.weight"], start["conv_stem.weight"])  # fine-tuned, not reset
    _no_imagenet_file(monkeypatch)
    detector, cfg, _ = load_detector(lite0_run)
    assert cfg.model.backbone == "efficientnet_lite0"
    assert torch.equal(detector.encoder.net.conv_stem.weight, encoder["conv_stem.weight"])
    res = runner.invoke(app, ["eval", str(lite0_run), "--json"])
    assert res.exit_code == 0, res.output


def test_export_of_a_backbone_run_matches_pytorch(lite0_run: Path, tmp_path: Path, monkeypatch):
    pytest.importorskip("onnxruntime", reason="the export extra is part of [dev]")
    from dkp_tui.inference import export

    _no_imagenet_file(monkeypatch)
    res = runner.invoke(app, ["export", str(lite0_run), "--out", str(tmp_path / "m.onnx"), "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["max_diff_keypoints_px"] <= export.KEYPOINT_TOLERANCE_PX and out["max_diff_heatmaps"] <= 1e-4


def test_resume_of_a_backbone_run_equals_uninterrupted(tiny_dataset: Path, tmp_path: Path, monkeypatch):
    extra = {"model__backbone": LITE0, "kd__gamma": 0, "optim__backbone_lr_scale": 0.1, "iterations": 4}
    _train(tiny_dataset, tmp_path / "full", **extra)
    real_step, calls = loop.train_step, {"n": 0}

    def crashing_step(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:  # after the checkpoint at step 2
            raise KeyboardInterrupt
        return real_step(*args, **kwargs)

    monkeypatch.setattr(loop, "train_step", crashing_step)
    with pytest.raises(KeyboardInterrupt):
        _train(tiny_dataset, tmp_path / "cut", **extra)
    monkeypatch.setattr(loop, "train_step", real_step)
    _no_imagenet_file(monkeypatch)  # the encoder comes from the checkpoint
    loop.train(_cfg(tiny_dataset, **extra), tmp_path / "cut", role="student", resume=True, quiet=True)
    a, _ = load_weights(tmp_path / "full" / "model.safetensors")
    b, _ = load_weights(tmp_path / "cut" / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_frozen_encoder_keeps_its_imagenet_weights(tiny_dataset: Path, tmp_path: Path):
    _train(tiny_dataset, tmp_path / "frozen", model__backbone=LITE0, kd__gamma=0, optim__backbone_lr_scale=0,
           iterations=2)
    tensors, _ = load_weights(tmp_path / "frozen" / "model.safetensors")
    start = _imagenet_encoder()
    weights = [k for k in tensors if k.startswith("detector.encoder.net.") and k.endswith(".weight")]
    assert weights and all(torch.equal(tensors[k], start[k[len("detector.encoder.net."):]]) for k in weights)


def test_output_kd_between_backbones(tiny_dataset: Path, tmp_path: Path):
    """An AutoLink depth teacher distilled into an ImageNet student, and the reverse; hidden layers refused."""
    _train(tiny_dataset, tmp_path / "t_autolink", role="teacher", iterations=2)
    _train(tiny_dataset, tmp_path / "t_lite0", role="teacher", iterations=2, model__backbone=LITE0)
    _train(tiny_dataset, tmp_path / "s1", teacher=tmp_path / "t_autolink", iterations=2, kd__gamma=0.5,
           model__backbone=LITE0)
    _train(tiny_dataset, tmp_path / "s2", teacher=tmp_path / "t_lite0", iterations=2, kd__gamma=0.5,
           kd__layer='"output_prob"')
    for run in ("s1", "s2"):
        steps = [json.loads(x) for x in (tmp_path / run / "metrics.jsonl").read_text().splitlines()]
        assert all(r["loss_kd"] is not None and r["loss_kd"] >= 0 for r in steps if r["kind"] == "step")
    with pytest.raises(DkpError, match="teacher's backbone is efficientnet_lite0 and the student's autolink"):
        _train(tiny_dataset, tmp_path / "s3", teacher=tmp_path / "t_lite0", iterations=2, kd__gamma=0.5,
               kd__layer='"mid"')


def test_one_config_trains_an_autolink_teacher_and_an_imagenet_student(tiny_dataset: Path, tmp_path: Path):
    """model.teacher_backbone: the CPU presets' split, one config for both roles; each run saves what it built."""
    from dkp_tui.config import for_role
    from dkp_tui.experiments.jobs import Job, run_state
    from dkp_tui.inference.predict import load_detector

    extra = {"model__backbone": LITE0, "model__teacher_backbone": '"autolink"', "iterations": 2, "kd__gamma": 0.5}
    _train(tiny_dataset, tmp_path / "teacher", role="teacher", **extra)
    _train(tiny_dataset, tmp_path / "student", teacher=tmp_path / "teacher", **extra)
    teacher, tcfg, _ = load_detector(tmp_path / "teacher")
    student, scfg, _ = load_detector(tmp_path / "student")
    assert (tcfg.model.backbone, scfg.model.backbone) == ("autolink", "efficientnet_lite0")
    assert type(teacher).__name__ != type(student).__name__
    # a job list planned from the one config finds both runs made with it (the teacher's saved backbone resolved)
    cfg = _cfg(tiny_dataset, **extra)
    assert for_role(cfg, "student") is cfg and for_role(cfg, "teacher").model.backbone == "autolink"
    assert run_state(Job(tmp_path / "teacher", cfg, "teacher")) == "finished"
    assert run_state(Job(tmp_path / "student", cfg, "student", tmp_path / "teacher")) == "finished"
    with pytest.raises(DkpError, match="model.teacher_backbone must be"):
        _cfg(tiny_dataset, model__teacher_backbone='"resnet"')
