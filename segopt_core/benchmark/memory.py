"""Peak memory during a measured run: process RSS high-water mark, CUDA allocator peak, NVML device memory."""

from __future__ import annotations

import resource
import threading
from pathlib import Path
from types import TracebackType

import psutil

MIB = 1024 * 1024
_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def current_rss_mib() -> float:
    """Resident set size of this process now, MiB."""
    return psutil.Process().memory_info().rss / MIB


def reset_rss_high_water_mark() -> bool:
    """Reset the kernel's per-process RSS peak (VmHWM) to the current RSS; False where not allowed."""
    try:
        _CLEAR_REFS.write_text("5")  # Linux >= 4.0: "5" resets the peak RSS, nothing else
        return True
    except OSError:
        return False


def rss_high_water_mark_mib() -> float | None:
    """VmHWM (peak RSS since start or since the last reset), MiB; None off Linux."""
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024 / MIB
    except OSError:
        return None
    return None


def _maxrss_mib() -> float:
    """Lifetime peak RSS from getrusage (kB on Linux), MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / MIB


def _cuda_index(device: str) -> int | None:
    """CUDA device index of 'cuda' / 'cuda:N' when CUDA is usable, else None."""
    if not device.startswith("cuda"):
        return None
    import torch

    if not torch.cuda.is_available():
        return None
    return int(device.split(":")[1]) if ":" in device else torch.cuda.current_device()


def _nvml_handle(index: int):
    """An NVML handle of CUDA device `index`, or None when pynvml (nvidia-ml-py) is missing or fails."""
    try:
        import pynvml

        pynvml.nvmlInit()
        return pynvml.nvmlDeviceGetHandleByIndex(index)
    except Exception:  # NVML is optional: no library, no driver, no permission
        return None


def _nvml_used_mib(handle) -> float:
    """Device memory used on the NVML handle (all processes), MiB."""
    import pynvml

    return pynvml.nvmlDeviceGetMemoryInfo(handle).used / MIB


class PeakMemory:
    """Context manager measuring the peak memory of the code inside it.

    CPU: the kernel's exact RSS high-water mark (VmHWM, reset on entry) when possible, else a sampling
    thread plus the getrusage peak. CUDA: torch's max_memory_allocated (torch allocations only) and, when
    pynvml is importable, sampled NVML device memory (covers ONNX Runtime / TensorRT, and other processes).
    """

    def __init__(self, device: str = "cpu", interval_s: float = 0.005) -> None:
        self.device = device
        self.interval_s = interval_s
        self.rss_before_mib = 0.0
        self.peak_rss_mib = 0.0
        self.cuda_max_allocated_mib: float | None = None
        self.gpu_mem_used_peak_mib: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._exact = False
        self._cuda = _cuda_index(device)
        self._nvml = _nvml_handle(self._cuda) if self._cuda is not None else None

    def __enter__(self) -> PeakMemory:
        self.rss_before_mib = current_rss_mib()
        self.peak_rss_mib = self.rss_before_mib
        self._maxrss_before = _maxrss_mib()
        self._exact = reset_rss_high_water_mark() and rss_high_water_mark_mib() is not None
        if self._cuda is not None:
            import torch

            torch.cuda.reset_peak_memory_stats(self._cuda)
        if self._nvml is not None:
            self.gpu_mem_used_peak_mib = _nvml_used_mib(self._nvml)
        if not self._exact or self._nvml is not None:
            self._thread = threading.Thread(target=self._sample, name="segopt-peak-memory", daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        """Sampling thread: keep the highest RSS / device memory seen."""
        while not self._stop.wait(self.interval_s):
            self._take_sample()

    def _take_sample(self) -> None:
        """One sample of RSS (when not exact) and NVML device memory."""
        if not self._exact:
            self.peak_rss_mib = max(self.peak_rss_mib, current_rss_mib())
        if self._nvml is not None:
            self.gpu_mem_used_peak_mib = max(self.gpu_mem_used_peak_mib or 0.0, _nvml_used_mib(self._nvml))

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._take_sample()
        if self._exact:
            self.peak_rss_mib = max(self.peak_rss_mib, rss_high_water_mark_mib() or 0.0)
        maxrss_after = _maxrss_mib()
        if maxrss_after > self._maxrss_before:  # a new lifetime peak was set inside: it is exact
            self.peak_rss_mib = max(self.peak_rss_mib, maxrss_after)
        if self._cuda is not None:
            import torch

            self.cuda_max_allocated_mib = torch.cuda.max_memory_allocated(self._cuda) / MIB

    @property
    def peak_rss_increase_mib(self) -> float:
        """Peak RSS above the RSS at entry, MiB."""
        return max(0.0, self.peak_rss_mib - self.rss_before_mib)
