"""How busy the machine was while a benchmark ran, and whether a row's numbers can be quoted as fact.

A benchmark on a shared CPU measures the machine as much as the model: OpenMP threads that fight other
processes for the cores stall at every op (a tiny model measured 416 ms instead of 3 ms on a 2-core machine
running another job). Every row therefore records the load around its timed loop, and rows measured under
contention or with an absurd spread are flagged (`quality`, `quality_flags`) instead of trusted.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

import psutil

OTHER_CPU_LIMIT_CORES = 0.5  # others' CPU use above half a core during the loop: the row is contended
SPREAD_LIMIT = 5.0  # p99 above 5x the median: stalls, not the model (e.g. p50 34 ms, p99 307 ms)
QUALITY_OK, QUALITY_SUSPECT = "ok", "suspect"
PAIR_CONTENDED = "pair-contended"  # the same-round reference pair behind the row's speedup was contended


def _load_1m() -> float | None:
    try:
        return os.getloadavg()[0]
    except OSError:  # not available on this platform
        return None


def _busy_and_steal() -> tuple[float, float | None]:
    """Machine-wide busy CPU seconds (all cores; guest time is already inside user) and steal seconds."""
    t = psutil.cpu_times()
    busy = t.user + t.system + getattr(t, "nice", 0.0) + getattr(t, "irq", 0.0) + getattr(t, "softirq", 0.0)
    return busy, getattr(t, "steal", None)


def _own_cpu() -> float:
    """CPU seconds this process used so far, all threads (user + system)."""
    t = os.times()
    return t.user + t.system


@dataclass
class ContentionProbe:
    """Context manager: load average, others' CPU time and steal over the block it wraps."""

    load_avg_1m_before: float | None = None
    load_avg_1m_after: float | None = None
    other_cpu_cores: float | None = None
    cpu_steal_cores: float | None = None
    wall_s: float = 0.0

    def __enter__(self) -> ContentionProbe:
        self.load_avg_1m_before = _load_1m()
        self._busy, self._steal = _busy_and_steal()
        self._own, self._start = _own_cpu(), time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall_s = time.perf_counter() - self._start
        busy, steal = _busy_and_steal()
        own = _own_cpu() - self._own
        self.load_avg_1m_after = _load_1m()
        if self.wall_s > 0:
            # /proc/stat and os.times both tick at 10 ms: short loops give rough figures, never negative ones
            self.other_cpu_cores = max(0.0, (busy - self._busy - own) / self.wall_s)
            if steal is not None and self._steal is not None:
                self.cpu_steal_cores = max(0.0, (steal - self._steal) / self.wall_s)

    def columns(self) -> dict[str, Any]:
        """The row columns this probe fills."""
        return {
            "load_avg_1m_before": self.load_avg_1m_before,
            "load_avg_1m_after": self.load_avg_1m_after,
            "other_cpu_cores": self.other_cpu_cores,
            "cpu_steal_cores": self.cpu_steal_cores,
        }


def quality_flags(row: dict[str, Any]) -> list[str]:
    """Why a measured row's numbers are not to be trusted as they are; empty when nothing looks wrong."""
    flags = []
    others = row.get("other_cpu_cores")
    steal = row.get("cpu_steal_cores") or 0.0
    if others is not None and others + steal > OTHER_CPU_LIMIT_CORES:
        flags.append("contended")
    median, p99 = row.get("latency_ms_median"), row.get("latency_ms_p99")
    if median and p99 and p99 > SPREAD_LIMIT * median:
        flags.append("spread")
    return flags


def describe_quality(row: dict[str, Any]) -> str:
    """One line for reports: what made a row suspect, with the figures."""
    parts = []
    flags = str(row.get("quality_flags") or "").split(",")
    if "contended" in flags:
        parts.append(f"other processes used {row.get('other_cpu_cores') or 0:.2f} cores")
        if row.get("cpu_steal_cores"):
            parts.append(f"steal {row['cpu_steal_cores']:.2f} cores")
    if "spread" in flags and row.get("latency_ms_median"):
        parts.append(f"p99 {row['latency_ms_p99'] / row['latency_ms_median']:.1f}x p50")
    if PAIR_CONTENDED in flags:
        parts.append("the torch fp32 reference timed in the same rounds (the speedup) ran under contention")
    return "; ".join(parts)
