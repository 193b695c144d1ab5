"""MLflow tracking from result rows: parent + nested runs with metrics, and a failure that loses nothing."""

from __future__ import annotations

import pytest

from segopt_core.pipeline.gate import AccuracyGate
from segopt_core.pipeline.record import VariantRecord
from segopt_core.pipeline.results import records_to_rows
from segopt_core.reports import write_report
from tasks.tracking import log_report, log_to_mlflow

RUN = {"run_id": "20261124T000000Z-optimize-all-test", "flow": "optimize-all", "flow_run_id": "fr-1",
       "machine_id": "m1"}  # fmt: skip


def _bench(batch_size: int, latency: float) -> dict:
    ms = latency * batch_size
    return {"status": "ok", "error": "", "batch_size": batch_size, "latency_ms_median": ms,
            "latency_ms_p90": ms, "latency_ms_p99": ms, "throughput_ips": 1000 / latency,
            "peak_rss_mb": 100.0, "model_size_mb": 0.1}  # fmt: skip


def _record(variant: str, latency: float, ratio: float) -> VariantRecord:
    backend, precision = variant.split("-", 1)
    accuracy = {"eval_mode": "agreement", "eval_images": 2, "pixel_agreement": ratio}
    accuracy["miou_vs_reference"] = ratio
    return VariantRecord(checkpoint="zoo/a", checkpoint_sha256="abc", cell="tiny-64-ade20k",
            backend=backend, precision=precision, variant=variant,
            options={"backend": backend, "precision": precision}, cache_key=variant, artifact="",
            status="ok", error="", bench_rows=[_bench(1, latency), _bench(2, latency)],
            accuracy=accuracy)  # fmt: skip


@pytest.fixture
def report(tmp_path):
    records = [_record("torch-fp32", 10.0, 1.0), _record("onnxruntime-fp32", 5.0, 0.99)]
    rows = records_to_rows(records, RUN, AccuracyGate())
    return write_report(rows, tmp_path / "reports", {**RUN, "machine": "test"}, tmp_path / "history")


def test_parent_and_nested_runs_with_metrics(report, mlflow_uri, tmp_path):
    from mlflow import MlflowClient

    (tmp_path / "data" / "images").mkdir(parents=True)
    (tmp_path / "data" / "images" / "a.jpg").write_bytes(b"x")
    meta = {**RUN, "fingerprint": {"hostname": "box"}, "params": {"data_dir": str(tmp_path / "data")}}
    parent_id = log_report(report, meta)
    client = MlflowClient(mlflow_uri)
    parent = client.get_run(parent_id)
    assert parent.info.status == "FINISHED" and parent.data.tags["prefect.flow_run_id"] == "fr-1"
    assert parent.data.tags["hostname"] == "box" and parent.data.metrics["variants_ok"] == 2
    children = client.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent_id}'")
    assert sorted(c.info.run_name for c in children) == [
        "onnxruntime-fp32 · tiny-64-ade20k",
        "torch-fp32 · tiny-64-ade20k",
    ]
    ort = next(c for c in children if c.info.run_name.startswith("onnxruntime-fp32"))
    assert ort.data.params["backend"] == "onnxruntime" and ort.data.params["batch_sizes"] == "1,2"
    assert ort.data.metrics["latency_ms_median_bs2"] == pytest.approx(10.0)
    assert ort.data.metrics["speedup_vs_torch_fp32_bs1"] == pytest.approx(2.0)
    assert ort.data.metrics["accuracy_ratio"] == pytest.approx(0.99) and ort.data.metrics["accepted"] == 1.0
    assert (
        ort.data.params["accuracy_measure"] == "miou_vs_fp32" and ort.data.metrics["pixel_agreement"] == 0.99
    )
    # every metric names its batch size: no bare latency/throughput/speedup that silently means the last one
    assert not {"latency_ms_median", "throughput_ips", "speedup_vs_torch_fp32", "miou_ratio"} & set(
        ort.data.metrics
    )
    assert parent.data.tags["recommended.tiny-64-ade20k"] == "onnxruntime-fp32"
    assert ort.data.tags["segopt.recommended"] == "bs1,bs2"
    assert "[onnxruntime-fp32](#/experiments/" in parent.data.tags["mlflow.note.content"]
    (dataset,) = parent.inputs.dataset_inputs
    assert dataset.dataset.name == "data" and dataset.dataset.source_type == "local"
    files = {a.path for a in client.list_artifacts(parent_id)}
    assert {"results.parquet", "summary.md", "speedup.png"} <= files
    assert f"parent run `{parent_id}`" in report.summary.read_text()


def test_tracking_failure_keeps_results_and_says_so(report, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:////proc/no-such-dir/mlflow.db")
    assert log_to_mlflow.fn(report, dict(RUN)) is None
    assert "**tracking failed**" in report.summary.read_text()
    assert report.results.exists()
