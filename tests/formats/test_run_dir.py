import json
from pathlib import Path

import pytest
import torch

from dkp_tui.config import load_config
from dkp_tui.errors import DkpError
from dkp_tui.formats.run_dir import (
    RunInfo,
    config_from_weights,
    load_weights,
    read_run_info,
    save_weights,
    write_run_info,
)
from dkp_tui.train.checkpoint import load_checkpoint, save_checkpoint


def test_safetensors_round_trip_with_metadata(tmp_path: Path):
    cfg = load_config("synthetic-cpu", ["train.seed=3"])
    state = {"a.weight": torch.randn(3, 4), "b.bias": torch.arange(5.0)}
    save_weights(tmp_path / "model.safetensors", state, cfg, "teacher", 42)
    tensors, meta = load_weights(tmp_path / "model.safetensors")
    assert set(tensors) == set(state) and all(torch.equal(tensors[k], state[k]) for k in state)
    assert meta["role"] == "teacher" and meta["step"] == "42"
    assert config_from_weights(meta, "x") == cfg
    assert not list(tmp_path.glob(".*.tmp*"))


def test_corrupt_weights_are_a_clear_error(tmp_path: Path):
    (tmp_path / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(DkpError, match="not a readable safetensors"):
        load_weights(tmp_path / "model.safetensors")
    with pytest.raises(DkpError, match="not found"):
        load_weights(tmp_path / "missing.safetensors")


def test_run_written_by_a_newer_version_is_refused(tmp_path: Path):
    write_run_info(tmp_path, RunInfo("student", "finished", 1, 1, 0))
    assert read_run_info(tmp_path).role == "student"
    data = json.loads((tmp_path / "run.json").read_text())
    data["format_version"] = 99
    (tmp_path / "run.json").write_text(json.dumps(data))
    with pytest.raises(DkpError, match="newer dkp"):
        read_run_info(tmp_path)


def test_checkpoint_restores_optimizer_and_rng(tmp_path: Path):
    model = torch.nn.Linear(4, 3)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=1e-3)
    for _ in range(3):
        opt.zero_grad()
        model(torch.randn(8, 4)).pow(2).mean().backward()
        opt.step()
    gen = torch.Generator().manual_seed(5)
    save_checkpoint(tmp_path, 3, model.state_dict(), opt, {"mask0": gen.get_state()})
    expected_next = torch.rand(4, generator=gen)

    step, model_state, optim_state, rng, _ = load_checkpoint(tmp_path)
    model2 = torch.nn.Linear(4, 3)
    model2.load_state_dict(model_state)
    opt2 = torch.optim.AdamW(model2.parameters(), lr=1.0)
    opt2.load_state_dict(optim_state)
    gen2 = torch.Generator().manual_seed(0)
    gen2.set_state(rng["mask0"])
    assert step == 3
    assert torch.equal(torch.rand(4, generator=gen2), expected_next)
    assert opt2.param_groups[0]["lr"] == 1e-2
    x = torch.randn(8, 4)
    for m, o in ((model, opt), (model2, opt2)):
        o.zero_grad()
        m(x).pow(2).mean().backward()
        o.step()
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), model2.parameters(), strict=True))
    # nothing in the checkpoint is a pickle
    assert {p.suffix for p in (tmp_path / "checkpoint").iterdir()} == {".json", ".safetensors"}


def test_a_damaged_eval_json_is_kept_aside_not_overwritten(tmp_path: Path):
    from dkp_tui.formats.run_dir import EVAL_JSON, append_eval

    (tmp_path / EVAL_JSON).write_text('[{"value": 1.0}, {"val')  # cut off by a full disk
    append_eval(tmp_path, {"value": 2.0})
    assert json.loads((tmp_path / EVAL_JSON).read_text()) == [{"value": 2.0}]
    assert (tmp_path / f"{EVAL_JSON}.corrupt").read_text() == '[{"value": 1.0}, {"val'
    append_eval(tmp_path, {"value": 3.0})
    assert [r["value"] for r in json.loads((tmp_path / EVAL_JSON).read_text())] == [2.0, 3.0]
