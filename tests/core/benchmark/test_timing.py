"""Latency statistics are right on a predictor whose latency is known."""

from __future__ import annotations

import time

import numpy as np
import pytest

from segopt_core.benchmark import TimingConfig, benchmark_predictor, interleaved_ab, latency_stats


def test_sleep_predictor_statistics(sleep_predictor):
    predictor = sleep_predictor(base_s=0.02, per_image_s=0.005)
    rows = benchmark_predictor(predictor, (32, 32), batch_sizes=(1, 4), warmup=2, iters=10)
    assert [r["batch_size"] for r in rows] == [1, 4]
    for row in rows:
        expected_ms = 20 + 5 * row["batch_size"]
        assert row["status"] == "ok" and row["error"] == ""
        assert row["iters"] == 10 and row["warmup_iters"] == 2
        # time.sleep never returns early; a busy shared machine may add a few ms, never 40 %.
        assert expected_ms <= row["latency_ms_median"] < expected_ms * 1.4
        order = ["latency_ms_min", "latency_ms_median", "latency_ms_p90", "latency_ms_p99", "latency_ms_max"]
        assert [row[k] for k in order] == sorted(row[k] for k in order)
        median = row["latency_ms_median"]
        assert row["throughput_ips"] == pytest.approx(row["batch_size"] * 1000 / median, rel=1e-3)
        assert row["throughput_ips"] == pytest.approx(row["batch_size"] * 1000 / expected_ms, rel=0.3)
        assert row["first_call_ms"] >= expected_ms
        assert row["max_batch_ok"] == 4


def test_latency_stats_known_samples():
    stats = latency_stats([0.001, 0.002, 0.003, 0.004, 0.010], batch_size=2)
    assert stats["latency_ms_median"] == pytest.approx(3.0)
    assert stats["latency_ms_mean"] == pytest.approx(4.0)
    assert stats["latency_ms_min"] == pytest.approx(1.0)
    assert stats["latency_ms_max"] == pytest.approx(10.0)
    assert stats["latency_ms_p90"] == pytest.approx(7.6)
    assert stats["per_image_ms"] == pytest.approx(1.5)
    assert stats["throughput_ips"] == pytest.approx(2 / 0.003)
    assert stats["latency_ms_std"] == pytest.approx(3.5355, rel=1e-3)


def test_time_based_limits(sleep_predictor):
    predictor = sleep_predictor(base_s=0.005)
    timing = TimingConfig(warmup_iters=0, warmup_min_s=0.05, iters=1, min_time_s=0.15)
    start = time.perf_counter()
    (row,) = benchmark_predictor(predictor, (8, 8), batch_sizes=(1,), timing=timing)
    assert time.perf_counter() - start >= 0.2
    assert row["warmup_iters"] >= 2 and row["iters"] >= 10


@pytest.mark.parametrize(
    "kwargs", [{"iters": 0, "min_time_s": 0}, {"warmup_iters": -1}, {"iters": 5, "max_iters": 2}]
)
def test_timing_config_rejects_nonsense(kwargs):
    with pytest.raises(ValueError):
        TimingConfig(**kwargs)


def test_interleaved_ab_orders_and_ratio(sleep_predictor):
    fast, slow = sleep_predictor(base_s=0.005), sleep_predictor(base_s=0.015)
    batch = np.zeros((1, 3, 8, 8), dtype=np.float32)
    calls = {"a": lambda: slow(batch), "b": lambda: fast(batch)}
    samples = interleaved_ab(calls, rounds=3, iters_per_round=3)
    assert len(samples["a"]) == len(samples["b"]) == 9
    ratio = sorted(samples["a"])[4] / sorted(samples["b"])[4]
    assert 1.8 < ratio < 3.3


def test_on_row_reports_each_batch_size_as_it_ends(sleep_predictor):
    calls: list[int] = []

    class CountingPredictor(sleep_predictor):
        def __call__(self, batch):
            calls.append(batch.shape[0])
            return super().__call__(batch)

    seen = []
    rows = benchmark_predictor(
        CountingPredictor(base_s=0.001),
        (32, 32),
        (1, 2, 4),
        warmup=0,
        iters=2,
        on_row=lambda row: seen.append((row["batch_size"], max(calls))),
    )
    assert seen == [(1, 1), (2, 2), (4, 4)]  # batch 1 reported before batch 2 ran
    assert [r["max_batch_ok"] for r in rows] == [4, 4, 4]
