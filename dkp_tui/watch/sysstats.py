"""System sampling for the dashboard: CPU and RAM through psutil always, GPUs through NVML when there are any.

A machine without a GPU, without the NVIDIA driver or without ``pynvml`` is normal (laptops, CPU nodes): the
sampler then reports "no GPU" and keeps sampling CPU and RAM. NVML is initialised once; a failed init is not retried.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psutil


@dataclass(frozen=True)
class GpuStats:
    index: int
    name: str
    util_percent: float | None
    mem_used_mb: float | None
    mem_total_mb: float | None
    temp_c: float | None


@dataclass(frozen=True)
class SysStats:
    cpu_percent: float  # whole machine, 0-100
    cpu_count: int
    ram_used_mb: float
    ram_total_mb: float
    gpus: tuple[GpuStats, ...] = field(default_factory=tuple)
    gpu_note: str = ""  # why there are no GPU figures ("no GPU"), empty when there are


Sampler = Callable[[], SysStats]


class SystemSampler:
    """Callable returning a fresh ``SysStats``; cheap enough to call once a second."""

    def __init__(self) -> None:
        self._nvml: Any = None
        self._handles: list[Any] = []
        self._note = ""
        psutil.cpu_percent(interval=None)  # the first call only starts the measurement window
        self._init_nvml()

    def _init_nvml(self) -> None:
        try:
            import pynvml
        except ImportError:
            self._note = "no GPU (pynvml not installed)"
            return
        try:
            pynvml.nvmlInit()
            count = pynvml.nvmlDeviceGetCount()
            self._handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
        except (pynvml.NVMLError, OSError):
            self._note = "no GPU"
            return
        self._nvml = pynvml
        if not self._handles:
            self._note = "no GPU"

    def _gpu(self, i: int, h: Any) -> GpuStats:
        nv = self._nvml

        def ask(fn: Callable[[], Any]) -> Any:
            try:
                return fn()
            except nv.NVMLError:
                return None

        name = ask(lambda: nv.nvmlDeviceGetName(h))
        if isinstance(name, bytes):
            name = name.decode(errors="replace")
        util = ask(lambda: nv.nvmlDeviceGetUtilizationRates(h))
        mem = ask(lambda: nv.nvmlDeviceGetMemoryInfo(h))
        temp = ask(lambda: nv.nvmlDeviceGetTemperature(h, nv.NVML_TEMPERATURE_GPU))
        return GpuStats(
            index=i,
            name=str(name or f"GPU {i}"),
            util_percent=float(util.gpu) if util is not None else None,
            mem_used_mb=mem.used / 2**20 if mem is not None else None,
            mem_total_mb=mem.total / 2**20 if mem is not None else None,
            temp_c=float(temp) if temp is not None else None,
        )

    def __call__(self) -> SysStats:
        vm = psutil.virtual_memory()
        gpus = tuple(self._gpu(i, h) for i, h in enumerate(self._handles)) if self._nvml else ()
        return SysStats(
            cpu_percent=float(psutil.cpu_percent(interval=None)),
            cpu_count=psutil.cpu_count() or 1,
            ram_used_mb=(vm.total - vm.available) / 2**20,
            ram_total_mb=vm.total / 2**20,
            gpus=gpus,
            gpu_note=self._note,
        )

    def close(self) -> None:
        if self._nvml is not None:
            try:
                self._nvml.nvmlShutdown()
            except self._nvml.NVMLError:
                pass
            self._nvml = None


def fixed_sampler(stats: SysStats) -> Sampler:
    """A sampler that always answers ``stats`` (snapshot tests, screenshots)."""
    return lambda: stats
