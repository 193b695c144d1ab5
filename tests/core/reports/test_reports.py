"""Reports from result rows: schema, gate and speedups, history and regressions, Markdown, plots."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from segopt_core.pipeline.cache import ResultCache, cache_key
from segopt_core.pipeline.gate import AccuracyGate
from segopt_core.pipeline.results import records_to_rows
from segopt_core.reports import RegressionPolicy, read_results, set_tracking_note, write_report
from segopt_core.reports.history import append_history, compare_with_history, read_history
from segopt_core.reports.schema import COLUMN_NAMES, result_row, rows_to_frame

RUN = {"run_id": "r1", "flow": "optimize-all", "flow_run_id": "", "machine_id": "m1"}


def bench(batch_size: int, latency_ms: float) -> dict:
    return {"status": "ok", "error": "", "batch_size": batch_size, "latency_ms_median": latency_ms,
            "latency_ms_p90": latency_ms * 1.1, "latency_ms_p99": latency_ms * 1.2,
            "throughput_ips": round(1000 * batch_size / latency_ms, 3), "peak_rss_mb": 500.0,
            "model_size_mb": 1.0, "date": "2026-11-23T00:00:00+00:00", "device": "cpu"}  # fmt: skip


def record(variant: str, latencies: dict[int, float], accuracy: dict | None, status: str = "ok") -> dict:
    backend, precision = variant.split("-")[0], "-".join(variant.split("-")[1:3]).replace("-folded", "")
    return {
        "checkpoint": "zoo/a.safetensors", "checkpoint_sha256": "abc", "cell": "tiny-64-ade20k",
        "backend": backend, "precision": precision, "variant": variant, "options": {"backend": backend},
        "cache_key": f"k-{variant}", "artifact": f"/store/{variant}", "status": status,
        "error": "" if status == "ok" else "VerificationError: NaN",
        "bench_rows": [bench(b, lat) for b, lat in latencies.items()], "accuracy": accuracy,
    }  # fmt: skip


def labelled(miou: float, per_class: dict[str, float]) -> dict:
    return {"eval_mode": "labels", "eval_images": 4, "miou": miou, "per_class_iou": per_class}


@pytest.fixture
def rows() -> list[dict]:
    records = [
        record("torch-fp32", {1: 10.0, 2: 16.0}, labelled(0.50, {"wall": 0.6, "sky": 0.4})),
        record("onnxruntime-int8-dynamic", {1: 5.0, 2: 8.0}, labelled(0.40, {"wall": 0.5, "sky": 0.3})),
        record("onnxruntime-fp32", {1: 8.0, 2: 12.0}, labelled(0.495, {"wall": 0.6, "sky": 0.39})),
        record("torch-int8-dynamic", {}, None, status="failed"),
    ]
    return records_to_rows(records, RUN, AccuracyGate(0.97))


def by_variant(rows: list[dict], variant: str, batch_size: int | None = 1) -> dict:
    return next(r for r in rows if r["variant"] == variant and r["batch_size"] == batch_size)


def test_rows_have_the_schema_and_one_row_per_variant_and_batch(rows):
    assert all(list(r) == list(COLUMN_NAMES) for r in rows)
    assert len(rows) == 3 * 2 + 1
    with pytest.raises(KeyError, match="unknown result columns"):
        result_row(not_a_column=1)


def test_gate_speedup_and_per_class_deltas(rows):
    ort = by_variant(rows, "onnxruntime-fp32", 2)
    assert ort["speedup_vs_torch_fp32"] == pytest.approx(16.0 / 12.0, rel=1e-3)
    assert ort["miou_ratio"] == pytest.approx(0.99) and ort["accepted"] is True
    assert json.loads(ort["per_class_iou_delta"]) == pytest.approx({"wall": 0.0, "sky": -0.01})
    int8 = by_variant(rows, "onnxruntime-int8-dynamic")
    assert int8["miou_ratio"] == pytest.approx(0.8) and int8["accepted"] is False
    assert "rejected" in int8["gate"]
    failed = by_variant(rows, "torch-int8-dynamic", None)
    assert failed["status"] == "failed" and "NaN" in failed["error"] and failed["accepted"] is None


def test_agreement_mode_gates_on_miou_vs_reference():
    accuracy = {"eval_mode": "agreement", "eval_images": 2, "pixel_agreement": 0.99, "miou_vs_reference": 0.9}
    rows = records_to_rows([record("onnxruntime-fp32", {1: 8.0}, accuracy)], RUN, AccuracyGate(0.97))
    assert rows[0]["miou_ratio"] == pytest.approx(0.9) and rows[0]["accepted"] is False
    assert rows[0]["speedup_vs_torch_fp32"] is None  # no torch fp32 reference in this run


def test_report_files_history_and_tracking_note(rows, tmp_path):
    meta = {**RUN, "machine": "test box", "notes": ["a note"]}
    report = write_report(rows, tmp_path / "reports", meta, tmp_path / "reports" / "history")
    frame = read_results(report.dir)
    assert len(frame) == len(rows) and set(frame["variant"]) >= {"torch-fp32", "onnxruntime-fp32"}
    today = dt.datetime.now(dt.UTC).date().isoformat()
    assert report.history == tmp_path / "reports" / "history" / f"date={today}" / "r1.parquet"
    text = report.summary.read_text()
    assert "## Accuracy and speed per model" in text and "| onnxruntime-fp32 | fp32 |" in text
    assert "**rejected**" in text and "VerificationError: NaN" in text and "a note" in text
    assert [p.read_bytes()[:8] for p in report.plots] == [b"\x89PNG\r\n\x1a\n"] * 3
    set_tracking_note(report.summary, "MLflow: **tracking failed**: boom")
    text = report.summary.read_text()
    assert text.count("## Tracking") == 1 and text.rstrip().endswith("boom")
    with pytest.raises(FileExistsError, match="append-only"):
        write_report(rows, tmp_path / "reports", meta, tmp_path / "reports" / "history")


def test_regression_against_median_of_previous_runs(rows, tmp_path):
    history = tmp_path / "history"
    for i, factor in enumerate([1.0, 1.02, 0.98, 5.0]):  # the 5x run is older than the window of 3
        old = [{**r, "run_id": f"old{i}", "latency_ms_median": (r["latency_ms_median"] or 0) * factor,
                "date": f"2026-11-{20 - i:02d}T00:00:00+00:00"} for r in rows]  # fmt: skip
        append_history(rows_to_frame(old), history, f"old{i}", dt.date(2026, 11, 20 - i))
    slow = [{**r, "run_id": "now", "latency_ms_median": (r["latency_ms_median"] or 0) * 1.5} for r in rows]
    append_history(rows_to_frame(slow), history, "now", dt.date(2026, 11, 23))
    comparison = compare_with_history(rows_to_frame(slow), read_history(history), window=3, threshold=0.10)
    assert len(comparison) == 6 and comparison["regression"].all()
    assert (comparison["baseline_runs"] == 3).all()
    assert comparison["latency_change"].tolist() == pytest.approx([0.5] * 6)
    same = compare_with_history(rows_to_frame(rows), read_history(history), window=3, threshold=0.10)
    assert not same["regression"].any()
    with pytest.raises(ValueError):
        RegressionPolicy(window=0)


def test_result_cache_needs_the_artifact(tmp_path):
    artifact = tmp_path / "artifact"
    artifact.mkdir()
    cache = ResultCache(tmp_path / "results")
    key = cache_key("abc", {"backend": "torch"}, {"batch_sizes": [1]})
    assert key == cache_key("abc", {"backend": "torch"}, {"batch_sizes": [1]})
    assert key != cache_key("abc", {"backend": "torch"}, {"batch_sizes": [1, 2]})
    cache.put(key, artifact, {"status": "ok"})
    assert cache.get(key) == {"status": "ok"}
    artifact.rmdir()
    assert cache.get(key) is None


def test_a_failed_evaluation_makes_failed_rows_that_keep_the_measurements():
    bad = record("onnxruntime-fp32", {1: 8.0}, {"error": "DatasetError: a.png: mask values 200 outside"})
    rows = records_to_rows([bad], RUN, AccuracyGate(0.97))
    assert [r["status"] for r in rows] == ["failed"]
    assert rows[0]["error"].startswith("evaluation failed: DatasetError")
    assert rows[0]["latency_ms_median"] == 8.0
