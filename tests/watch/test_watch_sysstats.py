"""System sampling: CPU/RAM always, GPUs through NVML when there are any, "no GPU" otherwise."""

from __future__ import annotations

import sys
from types import SimpleNamespace

import pynvml
import pytest
from watch_fakes import GPU_STATS

from dkp_tui.watch.format import system_text
from dkp_tui.watch.sysstats import SystemSampler


def test_no_driver_means_no_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail() -> None:
        raise pynvml.NVMLError(pynvml.NVML_ERROR_DRIVER_NOT_LOADED)

    monkeypatch.setattr(pynvml, "nvmlInit", fail)
    stats = SystemSampler()()
    assert stats.gpus == () and stats.gpu_note == "no GPU"
    assert stats.ram_total_mb > 0 and 0 <= stats.cpu_percent <= 100 and stats.cpu_count >= 1
    assert "GPU no GPU" in system_text(stats).plain


def test_no_pynvml_means_no_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml -> ImportError
    stats = SystemSampler()()
    assert stats.gpus == () and stats.gpu_note.startswith("no GPU")


def test_gpus_through_nvml(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    monkeypatch.setattr(pynvml, "nvmlInit", lambda: calls.append("init"))
    monkeypatch.setattr(pynvml, "nvmlShutdown", lambda: calls.append("shutdown"))
    monkeypatch.setattr(pynvml, "nvmlDeviceGetCount", lambda: 2)
    monkeypatch.setattr(pynvml, "nvmlDeviceGetHandleByIndex", lambda i: i)
    monkeypatch.setattr(pynvml, "nvmlDeviceGetName", lambda h: b"Fake GPU" if h == 0 else "Other GPU")
    monkeypatch.setattr(
        pynvml, "nvmlDeviceGetUtilizationRates", lambda h: SimpleNamespace(gpu=50 + h, memory=0)
    )
    monkeypatch.setattr(pynvml, "nvmlDeviceGetMemoryInfo", lambda h: SimpleNamespace(used=2**30, total=2**34))

    def temp(h: int, sensor: int) -> int:
        if h == 1:
            raise pynvml.NVMLError(
                pynvml.NVML_ERROR_NOT_SUPPORTED
            )  # one query failing blanks only that figure
        return 60

    monkeypatch.setattr(pynvml, "nvmlDeviceGetTemperature", temp)
    sampler = SystemSampler()
    stats = sampler()
    assert [g.name for g in stats.gpus] == ["Fake GPU", "Other GPU"] and stats.gpu_note == ""
    assert (
        stats.gpus[0].util_percent == 50 and stats.gpus[0].mem_used_mb == 1024 and stats.gpus[0].temp_c == 60
    )
    assert stats.gpus[1].temp_c is None
    text = system_text(stats).plain
    assert "GPU0" in text and "60°C" in text and "GPU1" in text
    sampler.close()
    assert calls == ["init", "shutdown"]


def test_system_text_with_gpu() -> None:
    text = system_text(GPU_STATS).plain
    assert "87%" in text and "30.0G/79.6G" in text and "61°C" in text and "no GPU" not in text
