"""Benchmark test helpers: predictors with known behaviour (real ones, not mocks), a benchmarks/ loader."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest


@dataclass
class SleepPredictor:
    """A real predictor whose latency is known: sleeps base_s + per_image_s * N, returns zero logits."""

    base_s: float = 0.02
    per_image_s: float = 0.0
    num_classes: int = 2
    oom_from_batch: int | None = None  # raise MemoryError at batch sizes >= this
    crash: bool = False
    name: str = "sleep"
    precision: str = "fp32"
    device: str = "cpu"

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        n, _, h, w = batch.shape
        if self.crash:
            raise RuntimeError("kernel exploded")
        if self.oom_from_batch is not None and n >= self.oom_from_batch:
            raise MemoryError(f"cannot allocate a batch of {n}")
        time.sleep(self.base_s + self.per_image_s * n)
        return np.zeros((n, self.num_classes, h // 4, w // 4), dtype=np.float32)


@pytest.fixture(scope="session")
def sleep_predictor() -> type[SleepPredictor]:
    """The SleepPredictor class."""
    return SleepPredictor


@pytest.fixture(scope="session")
def benchmark_script():
    """Loader of benchmarks/ scripts: benchmark_script("headline") -> the module."""
    return load_benchmark_script


def load_benchmark_script(name: str):
    """A script of benchmarks/ imported as a module (it is not a package), e.g. 'headline'."""
    import importlib.util
    import sys

    path = Path(__file__).resolve().parents[3] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"segopt_{name}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module
