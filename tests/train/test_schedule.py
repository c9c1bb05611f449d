import math

import pytest

from dkp_tui.config import load_config
from dkp_tui.errors import DkpError
from dkp_tui.train.schedule import lr_at


def test_constant_is_the_reference_lr_at_every_step():
    assert {lr_at(s, 3e-4, 100) for s in range(100)} == {3e-4}


def test_cosine_starts_at_lr_halves_midway_and_ends_at_the_floor():
    lrs = [lr_at(s, 1.0, 1000, "cosine", min_ratio=0.1) for s in range(1001)]
    assert lrs[0] == 1.0
    assert lrs[500] == pytest.approx(0.55)
    assert lrs[1000] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(lrs[:-1], lrs[1:], strict=True))  # never rises again


def test_warmup_rises_linearly_then_hands_over_without_a_jump():
    lrs = [lr_at(s, 2.0, 200, "cosine", warmup_steps=10) for s in range(12)]
    assert lrs[:10] == pytest.approx([0.2 * (i + 1) for i in range(10)])
    assert lrs[10] == 2.0 and lrs[11] < 2.0
    assert lr_at(4, 1.0, 50, "constant", warmup_steps=5) == pytest.approx(1.0)


def test_unknown_schedule_is_refused():
    with pytest.raises(ValueError, match="schedule"):
        lr_at(0, 1.0, 10, "linear")
    assert math.isfinite(lr_at(0, 1.0, 1, "cosine", warmup_steps=5))  # warm-up longer than the run


def test_config_rejects_a_bad_schedule():
    with pytest.raises(DkpError, match="optim.schedule"):
        load_config(overrides=["optim.schedule=step"])
