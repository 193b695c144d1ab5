"""Warm-up, the timed loop and latency statistics; CUDA-correct clock reads."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from segopt_core.clock import interleaved_ab, time_call  # noqa: F401 (their home; used here)


@dataclass(frozen=True)
class TimingConfig:
    """How long to warm up and how long to measure.

    Warm-up runs until both `warmup_iters` calls and `warmup_min_s` seconds are done; the timed loop until
    both `iters` calls and `min_time_s` seconds are done, capped at `max_iters` calls. A loop measured
    under contention or with an absurd spread is run `remeasure` more times and the cleanest one kept.
    """

    warmup_iters: int = 10
    warmup_min_s: float = 0.0
    iters: int = 50
    min_time_s: float = 0.0
    max_iters: int = 100_000  # stops a min_time_s loop around a call of ~0 s from running forever
    remeasure: int = 1  # one more try usually escapes a short burst of load; a busy machine stays flagged

    def __post_init__(self) -> None:
        if self.warmup_iters < 0 or self.warmup_min_s < 0:
            raise ValueError(f"warm-up must be >= 0 (got {self.warmup_iters} iters, {self.warmup_min_s} s)")
        if self.iters < 0 or self.min_time_s < 0:
            raise ValueError(f"iters and min_time_s must be >= 0 (got {self.iters}, {self.min_time_s})")
        if self.iters == 0 and self.min_time_s == 0:
            raise ValueError("nothing to measure: set iters >= 1 or min_time_s > 0")
        if self.remeasure < 0:
            raise ValueError(f"remeasure must be >= 0, got {self.remeasure}")
        if self.max_iters < max(1, self.iters):
            raise ValueError(f"max_iters={self.max_iters} is below iters={self.iters}; raise max_iters")


def device_synchronizer(device: str) -> Callable[[], None]:
    """A function that waits for queued GPU work on `device` (a no-op on CPU)."""
    if not device.startswith("cuda"):
        return lambda: None
    import torch

    if not torch.cuda.is_available():
        return lambda: None
    return lambda: torch.cuda.synchronize(device)


def warm_up(fn: Callable[[], object], config: TimingConfig, sync: Callable[[], None]) -> int:
    """Run the warm-up; returns how many calls it made."""
    calls, start = 0, time.perf_counter()
    while calls < config.warmup_iters or time.perf_counter() - start < config.warmup_min_s:
        time_call(fn, sync)
        calls += 1
    return calls


def timed_loop(fn: Callable[[], object], config: TimingConfig, sync: Callable[[], None]) -> list[float]:
    """Per-call latencies in seconds of the measured loop."""
    samples: list[float] = []
    start = time.perf_counter()
    while len(samples) < config.max_iters and (
        len(samples) < config.iters or time.perf_counter() - start < config.min_time_s
    ):
        samples.append(time_call(fn, sync))
    return samples


def latency_stats(samples_s: list[float], batch_size: int) -> dict[str, float]:
    """Median, mean, p90, p99, min, max, std in ms, per-image ms and throughput (images/s)."""
    if not samples_s:
        raise ValueError("no latency samples: the timed loop made no calls")
    ms = np.asarray(samples_s, dtype=np.float64) * 1e3
    median = float(np.median(ms))
    return {
        "latency_ms_median": median,
        "latency_ms_mean": float(ms.mean()),
        "latency_ms_p90": float(np.percentile(ms, 90)),
        "latency_ms_p99": float(np.percentile(ms, 99)),
        "latency_ms_min": float(ms.min()),
        "latency_ms_max": float(ms.max()),
        "latency_ms_std": float(ms.std(ddof=1)) if ms.size > 1 else 0.0,
        "per_image_ms": median / batch_size,
        "throughput_ips": batch_size * 1e3 / median if median > 0 else float("inf"),
    }
