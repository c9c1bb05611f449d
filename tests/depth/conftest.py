"""Depth-test fixtures: the tiny DPT is built once per session (transformers imports once), data per test."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from depth_helpers import build_tiny_dpt, write_tiny_dataset


@pytest.fixture(scope="session")
def tiny_dpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_dpt(tmp_path_factory.mktemp("models") / "tiny-dpt")


@pytest.fixture(scope="session")
def tiny_dpt_other_mean(tiny_dpt: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same weights with another input normalisation: a cache made with it must not mix with tiny_dpt's."""
    directory = tmp_path_factory.mktemp("models") / "tiny-dpt"
    shutil.copytree(tiny_dpt, directory, dirs_exist_ok=True)
    path = directory / "preprocessor_config.json"
    config = json.loads(path.read_text())
    config["image_mean"] = [0.45, 0.45, 0.45]
    path.write_text(json.dumps(config))
    return directory


@pytest.fixture
def tiny_data(tmp_path: Path) -> Path:
    return write_tiny_dataset(tmp_path / "data")
