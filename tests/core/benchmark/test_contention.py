"""Rows say how busy the machine was, and a row measured next to a CPU burner is flagged, not trusted."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from segopt_core.benchmark import TimingConfig, benchmark_predictor
from segopt_core.benchmark.contention import describe_quality, quality_flags
from segopt_core.predictor import TorchPredictor

LOAD_COLUMNS = ("load_avg_1m_before", "load_avg_1m_after", "other_cpu_cores")
SHORT = TimingConfig(warmup_iters=2, iters=5, min_time_s=1.0, remeasure=1)


@pytest.fixture
def cpu_burners():
    """One busy-loop process per core, running for the duration of the test."""
    burners = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(os.cpu_count() or 2)
    ]
    time.sleep(0.5)  # let them get scheduled
    yield burners
    for proc in burners:
        proc.kill()
        proc.wait()


def test_row_measured_next_to_cpu_burners_is_flagged(tiny_model, tiny_spec, cpu_burners):
    (row,) = benchmark_predictor(TorchPredictor(tiny_model), tiny_spec, (1,), timing=SHORT)
    print({k: row[k] for k in (*LOAD_COLUMNS, "cpu_steal_cores", "quality_flags", "latency_ms_median")})
    assert row["status"] == "ok" and row["quality"] == "suspect"
    assert "contended" in row["quality_flags"].split(",")
    assert row["other_cpu_cores"] > 0.5
    assert row["measure_attempts"] == 2  # measured again once, still contended
    assert "other processes used" in describe_quality(row)


def test_quiet_run_records_the_load_as_numbers(tiny_model, tiny_spec):
    (row,) = benchmark_predictor(TorchPredictor(tiny_model), tiny_spec, (1,), warmup=1, iters=3)
    print({k: row[k] for k in (*LOAD_COLUMNS, "cpu_steal_cores", "quality_flags", "latency_ms_median")})
    # the CI machine may be busy: only the presence and type of the figures are checked
    assert all(isinstance(row[k], float) and row[k] >= 0 for k in LOAD_COLUMNS)
    assert row["quality"] in ("ok", "suspect") and row["measure_attempts"] in (1, 2)
    assert row["cpu_steal_cores"] is None or row["cpu_steal_cores"] >= 0


def test_spread_rule():
    assert quality_flags({"latency_ms_median": 34.0, "latency_ms_p99": 307.0, "other_cpu_cores": 0.0}) == [
        "spread"
    ]
    assert quality_flags({"latency_ms_median": 34.0, "latency_ms_p99": 40.0, "other_cpu_cores": 0.1}) == []
