import sys
from pathlib import Path

import pytest

from dkp_tui.config import Config, load_config, override, preset_names, preset_path_or_text, valid_keys
from dkp_tui.errors import DkpError


def test_shipped_presets_load_with_the_papers_numbers():
    assert {"taichi", "h36m", "deepfashion", "synthetic", "synthetic-cpu"} <= set(preset_names())
    taichi, h36m, df = load_config("taichi"), load_config("h36m"), load_config("deepfashion")
    assert (taichi.model.n_keypoints, taichi.model.thickness, taichi.kd.gamma) == (10, 5e-4, 0.4)
    assert (h36m.model.n_keypoints, h36m.model.thickness, h36m.kd.gamma) == (16, 5e-5, 0.1)
    assert (df.model.n_keypoints, df.kd.gamma, df.train.hflip) == (16, 0.1, False)
    for cfg in (taichi, h36m, df):
        assert (cfg.train.batch_size, cfg.train.iterations, cfg.loss.lam) == (64, 20000, 1.0)
        assert (cfg.optim.name, cfg.optim.lr, cfg.optim.weight_decay) == ("adamw", 1e-4, 1e-3)


def test_set_overrides_and_types():
    cfg = load_config("synthetic-cpu", ["kd.gamma=0", "train.hflip=false", "data.dataset=somewhere"])
    assert cfg.kd.gamma == 0.0 and isinstance(cfg.kd.gamma, float)
    assert cfg.train.hflip is False
    assert cfg.data.dataset == "somewhere"


def test_unknown_key_lists_the_valid_ones():
    with pytest.raises(DkpError) as err:
        load_config("synthetic-cpu", ["kd.gama=0.1"])
    assert "kd.gama" in str(err.value) and "kd.gamma" in str(err.value)


def test_bad_values_are_refused():
    with pytest.raises(DkpError):
        load_config(None, ["train.iterations=1.5"])
    with pytest.raises(DkpError):
        load_config(None, ["kd.layer=nowhere"])
    with pytest.raises(DkpError):
        load_config(None, ["model.image_size=100"])
    with pytest.raises(DkpError):
        load_config(None, ["no_dot=1"])
    with pytest.raises(DkpError, match="memory_format"):
        load_config(None, ['train.memory_format="nhwc"'])


def test_memory_format_overrides_the_per_cpu_choice():
    import torch

    from dkp_tui.train.setup import build_model, channels_last

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert channels_last(cuda, 0.125) and channels_last(cpu, 1.0)
    assert not channels_last(cuda, 1.0, "contiguous") and channels_last(cpu, 0.125, "channels_last")
    cfg = load_config("synthetic-cpu", ['train.memory_format="channels_last"', "model.n_keypoints=4"])
    model, _, nhwc = build_model(cfg, cpu)
    assert nhwc and model.decoder.out.weight.is_contiguous(memory_format=torch.channels_last)


def test_unknown_key_in_a_preset_file(tmp_path: Path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[model]\nn_keypoint = 3\n")
    with pytest.raises(DkpError, match="model.n_keypoint"):
        load_config(str(bad))
    with pytest.raises(DkpError, match="unknown preset"):
        load_config("no-such-preset")


def test_resolved_config_round_trips_through_toml(tmp_path: Path):
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # Python 3.10: the backport the package depends on there
        import tomli as tomllib

    cfg = load_config("h36m", ["train.seed=7", "data.dataset=a b/c"])
    again = Config.from_dict(tomllib.loads(cfg.to_toml()))
    assert again == cfg
    assert len(valid_keys()) == sum(len(v) for v in cfg.to_dict().values())


def test_a_folder_named_like_a_preset_does_not_replace_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    for name in preset_names():
        (tmp_path / name).mkdir()
        assert preset_path_or_text(name)[0] == f"preset {name}"
    with pytest.raises(DkpError, match="is a directory"):
        load_config("./taichi")
    (tmp_path / "not-a-preset").mkdir()
    with pytest.raises(DkpError, match="is a directory, not a preset"):
        load_config("not-a-preset")


def test_preset_files_by_path_by_suffix_and_ambiguous_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "taichi").write_text("[model]\nn_keypoints = 4\n")
    with pytest.raises(DkpError, match=r"ambiguous.*shipped preset 'taichi'.*\./taichi"):
        load_config("taichi")
    assert load_config("./taichi").model.n_keypoints == 4  # a path separator says "the file"
    (tmp_path / "mine").write_text("[model]\nn_keypoints = 6\n")
    assert load_config("mine").model.n_keypoints == 6  # a bare name that only a file has
    (tmp_path / "mine.toml").write_text("[kd]\ngamma = 0.3\n")
    assert load_config("mine.toml").kd.gamma == 0.3
    with pytest.raises(DkpError, match="shipped preset is named 'h36m'"):
        load_config("h36m.toml")  # no such file; the other reading is named
    (tmp_path / "dir.toml").mkdir()
    with pytest.raises(DkpError, match="is a directory"):
        load_config("dir.toml")


def test_set_takes_text_fields_as_written_and_override_quotes_anything():
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib

    cfg = load_config(None, ["data.dataset=2e3", "data.depth_tag=1.10", 'kd.layer="mid"', "train.hflip=false"])
    assert (cfg.data.dataset, cfg.data.depth_tag, cfg.kd.layer, cfg.train.hflip) == ("2e3", "1.10", "mid", False)
    odd = 'C:\\data\\"quoted" dir\x7f/😀'
    cfg = load_config(None, [override("data.dataset", odd)])
    assert cfg.data.dataset == odd
    assert Config.from_dict(tomllib.loads(cfg.to_toml())).data.dataset == odd  # config.toml reads back
