"""Fixtures for the dashboard tests; the fake run writer lives in ``watch_fakes``."""

from __future__ import annotations

from pathlib import Path

import pytest
from watch_fakes import FIXED_STATS, T0

from dkp_tui.watch.sysstats import fixed_sampler


@pytest.fixture
def runs_root(tmp_path: Path) -> Path:
    root = tmp_path / "runs"
    root.mkdir()
    return root


@pytest.fixture
def fixed_clock():
    return lambda: T0 + 500 * 0.5 + 2.0  # 2 s after step 500's line


@pytest.fixture
def sampler():
    return fixed_sampler(FIXED_STATS)
