"""Machine fingerprint stamped on every benchmark row: CPU, ISA, GPU, threads, library versions, allocator."""

from __future__ import annotations

import datetime as dt
import functools
import os
import platform
import socket
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from segopt_core.cpuinfo import read_cpuinfo

# /proc/cpuinfo flag -> fingerprint column: the ISA extensions that change which kernels run.
ISA_FLAGS = {
    "avx2": "isa_avx2",
    "avx512f": "isa_avx512f",
    "avx512_vnni": "isa_avx512_vnni",
    "avx_vnni": "isa_avx_vnni",
    "avx512_bf16": "isa_avx512_bf16",
    "amx_tile": "isa_amx",
}
ALLOCATORS = ("tcmalloc", "jemalloc", "mimalloc")
_REPO = Path(__file__).resolve().parents[2]


def cpu_model_and_isa() -> dict[str, Any]:
    """CPU model name and the ISA flags that matter for inference kernels."""
    model, flags = read_cpuinfo()
    return {"cpu_model": model, **{column: flag in flags for flag, column in ISA_FLAGS.items()}}


def detect_allocator(maps: Path = Path("/proc/self/maps"), env: dict[str, str] | None = None) -> str:
    """The malloc this process uses: a known allocator mapped in (or LD_PRELOADed), else 'glibc'."""
    env = os.environ if env is None else env
    try:
        mapped = maps.read_text()
    except OSError:
        mapped = ""
    haystack = mapped + "\n" + env.get("LD_PRELOAD", "")
    for name in ALLOCATORS:
        if f"lib{name}" in haystack:
            return name
    return "glibc"


def _version(*distributions: str) -> str:
    """Installed version of the first distribution found, '' if none is installed."""
    for name in distributions:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return ""


@functools.cache
def segopt_commit(repo: Path = _REPO) -> str:
    """git commit of the segopt checkout (+'-dirty' with local changes), 'unknown' outside one."""
    try:
        head = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "--short=12", "HEAD"],
            capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()  # fmt: skip
        dirty = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{head}-dirty" if dirty else head or "unknown"


def gpu_info() -> dict[str, str]:
    """CUDA device 0 name, NVIDIA driver version and torch's CUDA version ('' where absent)."""
    import torch

    info = {"gpu_name": "", "gpu_driver": "", "cuda_version": torch.version.cuda or ""}
    if torch.cuda.is_available():
        info["gpu_name"] = torch.cuda.get_device_name(0)
        info["gpu_driver"] = _driver_version()
    return info


def _driver_version() -> str:
    """NVIDIA driver version via NVML or /proc/driver/nvidia/version, '' if unknown."""
    try:
        import pynvml

        pynvml.nvmlInit()
        version = pynvml.nvmlSystemGetDriverVersion()
        return version.decode() if isinstance(version, bytes) else str(version)
    except Exception:  # NVML is optional
        pass
    try:
        first = Path("/proc/driver/nvidia/version").read_text().splitlines()[0]
    except (OSError, IndexError):
        return ""
    words = [w for w in first.split() if w[:1].isdigit() and "." in w]
    return words[0] if words else ""


@functools.cache
def _static_fingerprint() -> dict[str, Any]:
    """The parts of the fingerprint that cannot change while the process runs."""
    return {
        "hostname": socket.gethostname(),
        **cpu_model_and_isa(),
        "cpu_logical_cores": os.cpu_count() or 0,
        **gpu_info(),
        "python_version": platform.python_version(),
        "torch_version": _version("torch"),
        "onnxruntime_version": _version("onnxruntime", "onnxruntime-gpu", "onnxruntime-openvino"),
        "tensorrt_version": _version("tensorrt", "tensorrt-cu12", "tensorrt-cu13"),
        "transformers_version": _version("transformers"),
        "segopt_version": _version("segopt"),
        "segopt_commit": segopt_commit(),
    }


def machine_fingerprint() -> dict[str, Any]:
    """Flat dict describing the machine and software now (the `hostname`..`segopt_commit` row columns)."""
    import torch

    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        affinity = os.cpu_count() or 0
    return {
        **_static_fingerprint(),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "cpu_affinity_cores": affinity,
        "torch_threads": torch.get_num_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS", ""),
        "allocator": detect_allocator(),
    }


_ISA_NAMES = {"isa_avx2": "AVX2", "isa_avx512f": "AVX-512F", "isa_avx512_vnni": "AVX-512 VNNI",
              "isa_avx_vnni": "AVX-VNNI", "isa_avx512_bf16": "AVX-512 BF16", "isa_amx": "AMX"}  # fmt: skip


def machine_summary(fingerprint: dict[str, Any]) -> str:
    """One line a person reads: 'CPU model · 2 of 2 cores · AVX2, AVX-512F · GPU' (no hostname)."""
    isa = ", ".join(name for key, name in _ISA_NAMES.items() if fingerprint.get(key)) or "no AVX2"
    usable, logical = fingerprint.get("cpu_affinity_cores"), fingerprint.get("cpu_logical_cores")
    cores = f"{usable} of {logical} cores" if usable and usable != logical else f"{logical} cores"
    gpu = fingerprint.get("gpu_name") or "no GPU"
    return f"{fingerprint.get('cpu_model') or 'unknown CPU'} · {cores} · {isa} · {gpu}"
