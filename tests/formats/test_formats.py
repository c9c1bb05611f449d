"""The formats package is the one home of the on-disk contracts: torch-free, and what the trainer writes is what
the dashboard reads."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import dkp_tui.formats
from dkp_tui.formats import metrics, run_dir
from dkp_tui.watch import state


def test_importing_every_format_module_loads_no_torch():
    names = [f"dkp_tui.formats.{m.name}" for m in pkgutil.iter_modules(dkp_tui.formats.__path__)]
    assert {"dkp_tui.formats.dataset_dir", "dkp_tui.formats.run_dir", "dkp_tui.formats.metrics"} <= set(names)
    code = (f"import importlib, sys; [importlib.import_module(n) for n in {names!r}]; "
            "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'torchvision'))))")
    out = subprocess.run([sys.executable, "-c", "import json; " + code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


def test_the_dashboard_reads_the_names_and_keys_the_formats_define():
    assert state.SERIES_KEYS is metrics.SERIES_KEYS
    plotted = {key for group in state.CHART_GROUPS.values() for key, _ in group}
    assert plotted <= set(metrics.SERIES_KEYS)
    assert state.METRICS == run_dir.METRICS and state.RUN_JSON == run_dir.RUN_JSON


def test_sample_names_round_trip():
    assert run_dir.sample_name(40) == "step_0000040.png"
    assert run_dir.parse_sample_name(run_dir.sample_name(40)) == (40, False)
    assert run_dir.parse_sample_name(run_dir.sample_name(7, teacher=True)) == (7, True)
    assert run_dir.parse_sample_name("step_12.jpg") is None


def test_a_step_record_of_the_real_training_loop_carries_the_plotted_keys(tmp_path: Path, tiny_dataset: Path):
    from dkp_testing import tiny_overrides

    from dkp_tui.config import load_config
    from dkp_tui.train.loop import train

    train(load_config(None, tiny_overrides(tiny_dataset, iterations=2)), tmp_path / "run", role="student", quiet=True)
    records = [json.loads(line) for line in (tmp_path / "run" / run_dir.METRICS).read_text().splitlines()]
    assert {r["kind"] for r in records} <= set(metrics.KINDS)
    steps = [r for r in records if r["kind"] == "step"]
    assert len(steps) == 2
    for record in steps:
        assert set(metrics.STEP_KEYS) <= set(record)
        assert set(record) <= {"kind", "time", *metrics.STEP_KEYS, *metrics.CUDA_STEP_KEYS}
    plotted = {key for group in state.CHART_GROUPS.values() for key, _ in group} - {"loss_kd"}  # null: no teacher
    assert all(isinstance(steps[-1][key], float) for key in plotted)
    samples = sorted(p.name for p in (tmp_path / "run" / run_dir.SAMPLES).iterdir())
    assert samples == [run_dir.sample_name(2)]
