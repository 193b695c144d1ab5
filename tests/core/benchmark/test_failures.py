"""Out-of-memory, crashes and unavailable backends become rows; the run goes on."""

from __future__ import annotations

import pytest

from segopt_core.benchmark import benchmark_loader, benchmark_predictor, is_out_of_memory, status_rows


class BackendMissing(RuntimeError):
    """Stand-in for backends.BackendUnavailable: the engine must not import the backends package."""


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


def test_loader_skip_and_failure_rows(sleep_predictor):
    def unavailable():
        raise BackendMissing("TensorRT is not installed; pip install tensorrt")

    def crashing():
        raise ValueError("artifact is corrupt")

    skip_on = (BackendMissing,)
    skipped = benchmark_loader(unavailable, (16, 16), (1, 4), variant="tensorrt-fp16", skip_on=skip_on)
    failed = benchmark_loader(crashing, (16, 16), (1, 4), variant="onnxruntime-fp32", skip_on=skip_on)
    ok = benchmark_loader(
        lambda: sleep_predictor(base_s=0.001), (16, 16), (1,), variant="sleep", warmup=0, iters=2
    )
    assert {r["status"] for r in skipped} == {"skipped"} and len(skipped) == 2
    assert "pip install tensorrt" in skipped[0]["error"]
    assert {r["status"] for r in failed} == {"failed"} and "artifact is corrupt" in failed[0]["error"]
    assert ok[0]["status"] == "ok" and ok[0]["load_ms"] is not None and ok[0]["load_ms"] >= 0


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
