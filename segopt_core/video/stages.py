"""Per-stage timing of the video pipeline: wall ms per frame (p50/p90) and CPU time of the calling thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

# In pipeline order. `resize` is resize + normalize (+ the small gray frame); `propagation` is flow, warp and
# the keyframe decision; `smoothing` the temporal blend and argmax; `upsample` the label map to frame size.
STAGES = (
    "decode", "resize", "model", "propagation", "smoothing", "upsample", "overlay", "encode", "metrics",
)  # fmt: skip


class StageTimes:
    """Collects per-frame wall times and thread CPU time per stage; each stage is timed by one thread."""

    def __init__(self) -> None:
        self.wall_ms: dict[str, list[float]] = {stage: [] for stage in STAGES}
        self.cpu_s: dict[str, float] = dict.fromkeys(STAGES, 0.0)
        self._lock = threading.Lock()  # `resize` is timed by the reader and by the model worker

    @contextmanager
    def measure(self, stage: str, frames: int = 1) -> Iterator[None]:
        """Time the block as `frames` frames of `stage` (a batch counts once per frame, its time split)."""
        wall, cpu = time.perf_counter(), time.thread_time()
        try:
            yield
        finally:
            self.add(stage, time.perf_counter() - wall, time.thread_time() - cpu, frames)

    def add(self, stage: str, wall_s: float, cpu_s: float, frames: int = 1) -> None:
        """Record `frames` frames of `stage` that took wall_s (and cpu_s of the calling thread) together."""
        with self._lock:
            self.wall_ms[stage].extend([wall_s * 1000 / max(frames, 1)] * frames)
            self.cpu_s[stage] += cpu_s

    def summary(self) -> dict[str, dict[str, float | int]]:
        """{stage: p50_ms, p90_ms, cpu_ms (per frame), frames, total_s} for every stage that ran."""
        out: dict[str, dict[str, float | int]] = {}
        with self._lock:
            wall_ms = {stage: list(samples) for stage, samples in self.wall_ms.items()}
        for stage, samples in wall_ms.items():
            if not samples:
                continue
            values = np.asarray(samples)
            out[stage] = {
                "p50_ms": round(float(np.percentile(values, 50)), 2),
                "p90_ms": round(float(np.percentile(values, 90)), 2),
                "cpu_ms": round(self.cpu_s[stage] * 1000 / len(samples), 2),
                "frames": len(samples),
                "total_s": round(float(values.sum()) / 1000, 3),
            }
        return out

    def progress_line(self) -> str:
        """Compact 'decode 15/18/14 model 300/320/290 …' (p50/p90/cpu ms per frame) for the progress bar."""
        return stage_line(self.summary())


def stage_line(stages: dict[str, dict[str, float | int]]) -> str:
    """'decode 15/18/14 model 300/320/290 …': p50/p90/cpu ms per frame of each stage of a summary."""
    parts = (f"{name} {s['p50_ms']:.0f}/{s['p90_ms']:.0f}/{s['cpu_ms']:.0f}" for name, s in stages.items())
    return " ".join(parts) + " ms (p50/p90/cpu)"
