"""Out-of-memory, crashes and unavailable backends become rows; the run goes on."""

from __future__ import annotations

import pytest

from segopt_core.benchmark import (
    Candidate,
    MeasureConfig,
    TimingConfig,
    benchmark_predictor,
    is_out_of_memory,
    measure_variant,
    status_rows,
)


def test_oom_at_batch_4_records_largest_fitting_batch(sleep_predictor):
    predictor = sleep_predictor(base_s=0.001, oom_from_batch=4)
    rows = benchmark_predictor(predictor, (16, 16), batch_sizes=(1, 4, 8), warmup=1, iters=3)
    assert [r["status"] for r in rows] == ["ok", "oom", "skipped"]
    assert "MemoryError" in rows[1]["error"] and "batch size 4" in rows[2]["error"]
    assert all(r["max_batch_ok"] == 1 for r in rows)
    assert rows[1]["latency_ms_median"] is None


def test_crash_is_a_failed_row_and_the_run_continues(sleep_predictor):
    variants = {"broken": sleep_predictor(crash=True), "fine": sleep_predictor(base_s=0.001)}
    rows = []
    for name, predictor in variants.items():
        rows += benchmark_predictor(predictor, (16, 16), batch_sizes=(1, 2), warmup=0, iters=2, variant=name)
    broken = [r for r in rows if r["variant"] == "broken"]
    fine = [r for r in rows if r["variant"] == "fine"]
    assert [r["status"] for r in broken] == ["failed", "failed"]
    assert broken[0]["error"] == "RuntimeError: kernel exploded"
    assert broken[0]["max_batch_ok"] is None
    assert [r["status"] for r in fine] == ["ok", "ok"]


def test_build_and_load_failures_are_rows(tmp_path):
    from segopt_core.backends import BackendUnavailable

    def unavailable():
        raise BackendUnavailable("TensorRT is not installed; pip install tensorrt")

    def crashing():
        raise ValueError("calibration data missing")

    config = MeasureConfig((1, 4), TimingConfig(warmup_iters=0, iters=1))
    skipped = measure_variant(Candidate("tensorrt-fp16", unavailable), (16, 16), config).rows
    failed = measure_variant(Candidate("onnxruntime-int8-static", crashing), (16, 16), config).rows
    (tmp_path / "metadata.json").write_text("{not json")
    corrupt = measure_variant(Candidate("onnxruntime-fp32", str(tmp_path)), (16, 16), config).rows
    assert {r["status"] for r in skipped} == {"skipped"} and len(skipped) == 2
    assert "pip install tensorrt" in skipped[0]["error"]
    assert {r["status"] for r in failed} == {"failed"} and "build failed: ValueError" in failed[0]["error"]
    assert {r["status"] for r in corrupt} == {"failed"} and "metadata.json" in corrupt[0]["error"]


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (MemoryError(), True),
        (RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"), True),
        (RuntimeError("[ONNXRuntimeError] : 6 : Failed to allocate memory for requested buffer"), True),
        (RuntimeError("std::bad_alloc"), True),
        (RuntimeError("shape mismatch"), False),
        (ValueError("bad input"), False),
    ],
)  # fmt: skip
def test_out_of_memory_detection(exc, expected):
    assert is_out_of_memory(exc) is expected


def test_status_rows_label_every_batch():
    rows = status_rows("skipped", "no CUDA device", "tensorrt-fp16", (64, 64), (1, 4, 8), device="cuda")
    assert [r["batch_size"] for r in rows] == [1, 4, 8]
    assert all(r["device"] == "cuda" and r["error"] == "no CUDA device" for r in rows)
