"""How busy the GPUs are, read from NVML (``nvidia-ml-py``, in the ``[gpu]`` extra) off the GUI
thread; nothing at all where NVML is missing (a CPU, another vendor, no driver).

NVML numbers GPUs as the driver does; TensorFlow numbers the GPUs it sees. With
``CUDA_VISIBLE_DEVICES`` unset and the default (PCI bus) order, the two agree.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from dataclasses import dataclass

INTERVAL_S = 1.0


@dataclass(frozen=True)
class GpuSample:
    """One reading of one GPU."""

    index: int
    utilisation: int  # percent of the last sample period in which a kernel ran
    memory_used_mb: int
    memory_total_mb: int


def _nvml():
    """The initialised ``pynvml`` module, or None."""
    try:
        nvml = importlib.import_module("pynvml")
        nvml.nvmlInit()
    except Exception:  # not installed, no driver, no GPU: nothing to show
        return None
    return nvml


def read(nvml=None) -> list[GpuSample]:
    """One sample per GPU (empty without NVML).

    Args:
        nvml: an initialised ``pynvml`` (default: imported and initialised here).

    Returns:
        The GPUs' utilisation and memory now.
    """
    nvml = nvml or _nvml()
    if nvml is None:
        return []
    samples = []
    try:
        for index in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            rates = nvml.nvmlDeviceGetUtilizationRates(handle)
            memory = nvml.nvmlDeviceGetMemoryInfo(handle)
            samples.append(GpuSample(index, int(rates.gpu), memory.used // 2**20, memory.total // 2**20))
    except Exception:  # a GPU that fell off the bus, a driver reload: no reading this time
        return []
    return samples


def total_memory_mb() -> dict[int, int]:
    """Each GPU's total memory in MiB, by NVML index (empty without NVML)."""
    return {s.index: s.memory_total_mb for s in read()}


def describe(samples: list[GpuSample]) -> str:
    """``GPU 0: 87% busy, 10.2 of 80.0 GiB`` for each GPU; empty without samples."""
    return " · ".join(
        f"GPU {s.index}: {s.utilisation}% busy, {s.memory_used_mb / 1024:.1f} of "
        f"{s.memory_total_mb / 1024:.1f} GiB"
        for s in samples
    )


class Sampler:
    """Reads the GPUs every ``interval`` seconds in a daemon thread and hands each reading on.

    Args:
        on_sample: called (in the sampler's thread) with the list of samples.
        interval: seconds between readings.
        nvml: an initialised ``pynvml`` (tests pass a stand-in); default: the real one.
    """

    def __init__(self, on_sample: Callable[[list[GpuSample]], None], interval: float = INTERVAL_S, nvml=None):
        self._on_sample = on_sample
        self._interval = interval
        self._nvml = nvml or _nvml()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def available(self) -> bool:
        """False where NVML is missing: nothing will be sampled."""
        return self._nvml is not None

    def start(self) -> None:
        """Begin sampling (nothing happens without NVML)."""
        if not self.available or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._loop, name="tlstudio-gpu-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop and wait for the thread (at most one interval)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self._interval + 1)
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.is_set():
            samples = read(self._nvml)
            if samples:
                self._on_sample(samples)
            self._stop.wait(self._interval)
