"""TensorBoard: a run trained with train.tensorboard=true, and `dkp export-metrics`, write events that
tensorboard's own EventAccumulator reads back with the values and steps of metrics.jsonl."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from dkp_tui.cli import app
from dkp_tui.config import load_config
from dkp_tui.errors import DkpError
from dkp_tui.train import loop

pytest.importorskip("tensorboard", reason="the tensorboard extra is part of [dev]")  # a missing extra: tested below
runner = CliRunner()


def _events(log_dir: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "images": 0, "histograms": 0})
    acc.Reload()
    return acc


def _steps(metrics: Path) -> list[dict]:
    lines = [json.loads(line) for line in metrics.read_text().splitlines()]
    return [r for r in lines if r["kind"] == "step"]


@pytest.fixture(scope="module")
def tb_run(tiny_dataset: Path, tiny_overrides, tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("tb")
    loop.train(load_config(None, tiny_overrides(tiny_dataset, iterations=3)), root / "teacher", role="teacher",
               quiet=True)
    cfg = load_config(None, tiny_overrides(tiny_dataset, iterations=4, kd__gamma=0.5, train__tensorboard="true"))
    loop.train(cfg, root / "student", role="student", teacher_run=root / "teacher", quiet=True)
    return root / "student"


def _check_against_metrics(acc, records: list[dict]) -> None:
    tags = set(acc.Tags()["scalars"])
    assert {"loss/total", "loss/rec", "loss/kd", "optim/lr", "speed/images_per_s", "edges/w_mean", "edges/w_std",
            "edges/w_max", "model/alpha"} <= tags
    for tag, key in [("loss/total", "loss"), ("loss/rec", "loss_rec"), ("loss/kd", "loss_kd"), ("optim/lr", "lr"),
                     ("speed/images_per_s", "images_per_s"), ("edges/w_std", "edge_w_std")]:
        events = acc.Scalars(tag)
        assert [e.step for e in events] == [r["step"] for r in records], tag
        np.testing.assert_allclose([e.value for e in events], [r[key] for r in records], rtol=1e-6, err_msg=tag)
    np.testing.assert_allclose([e.wall_time for e in acc.Scalars("loss/total")], [r["time"] for r in records])


def test_training_with_tensorboard_writes_what_metrics_jsonl_says(tb_run: Path):
    records = _steps(tb_run / "metrics.jsonl")
    assert [r["step"] for r in records] == [1, 2, 3, 4]
    acc = _events(tb_run / "tensorboard")
    _check_against_metrics(acc, records)
    assert "samples/keypoints" in acc.Tags()["images"] and "samples/teacher" in acc.Tags()["images"]
    images = acc.Images("samples/keypoints")
    assert [i.step for i in images] == [2, 4] and images[0].width > 64 and images[0].encoded_image_string[:4] == \
        b"\x89PNG"
    assert [h.step for h in acc.Histograms("edges/weights")] == [2, 4]
    assert acc.Histograms("edges/weights")[0].histogram_value.num == 8 * 7 // 2  # the upper triangle, K = 8


def test_export_metrics_converts_an_existing_run(tb_run: Path, tmp_path: Path):
    out = tmp_path / "tb"
    res = runner.invoke(app, ["export-metrics", str(tb_run), "--tensorboard", str(out), "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary[0]["steps"] == 4 and summary[0]["images"] == 4  # 2 sample steps x (student + teacher)
    acc = _events(out / "student")
    _check_against_metrics(acc, _steps(tb_run / "metrics.jsonl"))
    assert [i.step for i in acc.Images("samples/teacher")] == [2, 4]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # the temporary directory was renamed
    # converting into the same place again would merge two copies in TensorBoard: refused, nothing touched
    res = runner.invoke(app, ["export-metrics", str(tb_run), "--tensorboard", str(out)])
    assert res.exit_code == 2 and "not empty" in res.stderr and "Traceback" not in res.output


def test_export_metrics_bad_input(tmp_path: Path, tb_run: Path):
    res = runner.invoke(app, ["export-metrics", str(tmp_path / "nope"), "--tensorboard", str(tmp_path / "tb")])
    assert res.exit_code == 2 and "no metrics.jsonl" in res.stderr
    res = runner.invoke(app, ["export-metrics", str(tb_run), str(tb_run), "--tensorboard", str(tmp_path / "tb")])
    assert res.exit_code == 2 and "twice" in res.stderr


def test_torn_last_line_is_skipped(tb_run: Path, tmp_path: Path):
    from dkp_tui.train.tensorboard import convert_run

    run = tmp_path / "crashed"
    run.mkdir()
    text = (tb_run / "metrics.jsonl").read_text()
    (run / "metrics.jsonl").write_text(text + '{"kind": "step", "step": 5, "lo')
    result = convert_run(run, tmp_path / "tb")
    assert result["steps"] == 4 and result["skipped_lines"] == 1


def test_without_the_extra_training_stops_before_creating_the_run(tiny_dataset: Path, tiny_overrides,
                                                                   tmp_path: Path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboard", None)
    cfg = load_config(None, tiny_overrides(tiny_dataset, iterations=2, train__tensorboard="true"))
    with pytest.raises(DkpError, match=r"pip install -e '\.\[tensorboard\]'"):
        loop.train(cfg, tmp_path / "run", role="teacher", quiet=True)
    assert not (tmp_path / "run").exists()
    run = tmp_path / "old"
    run.mkdir()
    (run / "metrics.jsonl").write_text('{"kind": "step", "step": 1, "loss": 0.5}\n')
    res = runner.invoke(app, ["export-metrics", str(run), "--tensorboard", str(tmp_path / "tb")])
    assert res.exit_code == 2 and "pip install -e '.[tensorboard]'" in res.stderr, res.output
    assert not (tmp_path / "tb").exists()


def test_one_sub_folder_per_run_named_below_their_common_parent(tmp_path: Path):
    from dkp_tui.commands.export_metrics import run_names

    assert run_names([tmp_path / "demo" / "teacher"]) == ["teacher"]
    assert run_names([tmp_path / "demo" / "teacher", tmp_path / "demo" / "student"]) == ["teacher", "student"]
    assert run_names([tmp_path / "a" / "student", tmp_path / "b" / "student"]) == ["a/student", "b/student"]
