"""MLflow tracking from result rows: parent + nested runs whose every claim is backed by the rows, one
name and unit per quantity, real times, a failure that loses nothing, and a dead server found in seconds."""

from __future__ import annotations

import datetime as dt
import socket
import subprocess
import sys
import time

import pytest

from segopt_core.pipeline.gate import AccuracyGate
from segopt_core.pipeline.record import VariantRecord
from segopt_core.pipeline.results import records_to_rows
from segopt_core.reports import read_results, write_report
from segopt_tracking.report import log_report
from segopt_tracking.store import TrackingUnavailable, probe_tracking
from tasks.tracking import log_to_mlflow

RUN = {"run_id": "20261124T000000Z-optimize-all-test", "flow": "optimize-all", "flow_run_id": "fr-1",
       "machine_id": "m1"}  # fmt: skip
BUILD_START = "2026-11-24T10:00:00+00:00"
EVAL_END = "2026-11-24T10:07:30+00:00"


def _bench(batch_size: int, latency: float, busy: bool = False) -> dict:
    ms = latency * batch_size
    return {"status": "ok", "error": "", "batch_size": batch_size, "latency_ms_median": ms,
            "latency_ms_p90": ms, "latency_ms_p99": ms, "throughput_ips": 1000 / latency,
            "peak_rss_mib": 100.0, "model_size_mib": 0.1, "other_cpu_cores": 1.2 if busy else 0.01,
            "quality": "suspect" if busy else "ok", "quality_flags": "contended" if busy else "",
            "date": f"2026-11-24T10:0{batch_size}:00+00:00"}  # fmt: skip


def _record(variant: str, latency: float, ratio: float, busy: bool = False) -> VariantRecord:
    backend, precision = variant.split("-", 1)
    accuracy = {"eval_mode": "agreement", "eval_images": 2, "pixel_agreement": ratio}
    accuracy["miou_vs_reference"] = ratio
    return VariantRecord(checkpoint="zoo/a", checkpoint_sha256="abc", cell="tiny-64-ade20k",
            backend=backend, precision=precision, variant=variant,
            options={"backend": backend, "precision": precision, "preset": None}, cache_key=variant,
            artifact="", status="ok", error="", bench_rows=[_bench(1, latency, busy), _bench(2, latency)],
            accuracy=accuracy, started_at=BUILD_START, build_seconds=2.5, build_wait_seconds=88.0,
            artifact_build_seconds=2.4, benchmark_seconds=30.0, eval_seconds=5.0,
            finished_at=EVAL_END)  # fmt: skip


def _report(tmp_path, busy: bool = False):
    records = [_record("torch-fp32", 10.0, 1.0), _record("onnxruntime-fp32", 5.0, 0.99, busy)]
    rows = records_to_rows(records, RUN, AccuracyGate())
    return write_report(rows, tmp_path / "reports", {**RUN, "machine": "test"}, tmp_path / "history")


@pytest.fixture
def report(tmp_path):
    return _report(tmp_path)


@pytest.fixture
def tiny_checkpoint_path(tmp_path):
    """A tiny random-init SegFormer checkpoint (.safetensors) in tmp_path/zoo."""
    from segopt_core.checkpoints import write_checkpoint
    from segopt_core.models import build_hf_model
    from segopt_core.variants import tiny_cell

    spec = tiny_cell("ade20k", 64)
    return write_checkpoint(
        build_hf_model(spec, 0), spec, tmp_path / "zoo" / "tiny.safetensors", "safetensors"
    )


def _meta(tmp_path, **params) -> dict:
    return {**RUN, "started_at": "2026-11-24T09:59:00+00:00", "fingerprint": {"hostname": "box"},
            "params": {"data_dir": None, "cells": None, "batch_sizes": [1, 2], **params}}  # fmt: skip


def _children(client, parent_id: str) -> dict:
    parent = client.get_run(parent_id)
    found = client.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent_id}'")
    return {c.info.run_name.split(" · ")[0]: c for c in found}


def test_parent_and_nested_runs_with_metrics(report, mlflow_uri, tmp_path):
    from mlflow import MlflowClient

    (tmp_path / "data" / "images").mkdir(parents=True)
    (tmp_path / "data" / "images" / "a.jpg").write_bytes(b"x")
    outcome = log_report(report, _meta(tmp_path, data_dir=str(tmp_path / "data")))
    client = MlflowClient(mlflow_uri)
    parent = client.get_run(outcome.run_id)
    assert parent.info.status == "FINISHED" and parent.data.tags["prefect.flow_run_id"] == "fr-1"
    assert parent.data.tags["hostname"] == "box" and parent.data.metrics["variants_ok"] == 2
    ort = _children(client, outcome.run_id)["onnxruntime-fp32"]
    assert ort.data.params["backend"] == "onnxruntime" and ort.data.params["batch_sizes"] == "1,2"
    assert ort.data.metrics["latency_ms_median_bs2"] == pytest.approx(10.0)
    assert ort.data.metrics["speedup_vs_torch_fp32_bs1"] == pytest.approx(2.0)
    assert ort.data.metrics["miou_ratio"] == pytest.approx(0.99) and ort.data.tags["accepted"] == "true"
    assert (
        ort.data.params["accuracy_measure"] == "miou_vs_fp32" and ort.data.metrics["pixel_agreement"] == 0.99
    )
    # every metric names its batch size: no bare latency/throughput/speedup that silently means the last one
    assert not {"latency_ms_median", "throughput_ips", "speedup_vs_torch_fp32"} & set(ort.data.metrics)
    assert parent.data.tags["recommended.tiny-64-ade20k"] == "onnxruntime-fp32"
    assert parent.data.tags["recommended"] == "onnxruntime-fp32 (2.00× at bs1)"
    assert ort.data.tags["segopt.recommended"] == "bs1, bs2"
    (dataset,) = parent.inputs.dataset_inputs
    assert dataset.dataset.name == "data" and dataset.dataset.source_type == "local"
    files = {a.path for a in client.list_artifacts(outcome.run_id)}
    assert {"results.parquet", "summary.md", "summary.html", "speedup.png"} <= files
    assert f"parent run `{outcome.run_id}`" in report.summary.read_text()


def test_links_open_the_classic_model_training_view(report, mlflow_uri, tmp_path):
    """MLflow 3 opens an experiment in its GenAI view; every link segopt writes asks for the other one."""
    from mlflow import MlflowClient

    outcome = log_report(report, _meta(tmp_path))
    experiment = MlflowClient(mlflow_uri).get_run(outcome.run_id).info.experiment_id
    assert outcome.link == (f"http://127.0.0.1:5000/#/experiments/{experiment}/runs/{outcome.run_id}"
                            "?workflowType=machine_learning")  # fmt: skip
    assert f"[open the run]({outcome.link})" in report.summary.read_text()
    note = MlflowClient(mlflow_uri).get_run(outcome.run_id).data.tags["mlflow.note.content"]
    assert f"(#/experiments/{experiment}/runs/" in note and "?workflowType=machine_learning)" in note


def test_the_description_starts_with_the_variant_to_ship(report, mlflow_uri, tmp_path):
    from mlflow import MlflowClient

    outcome = log_report(report, _meta(tmp_path))
    note = MlflowClient(mlflow_uri).get_run(outcome.run_id).data.tags["mlflow.note.content"]
    first = note.splitlines()[0]
    assert first == ("Ship onnxruntime-fp32 for tiny-64-ade20k at batch 1: 5.00 ms, 2.00× torch fp32, "
                     "mIoU vs fp32 predictions 0.9900.")  # fmt: skip
    assert "|---" not in note  # MLflow does not render Markdown tables in descriptions


def test_the_busy_warning_appears_only_when_a_row_was_busy(tmp_path, mlflow_uri):
    """Item 1: the parent's '⚠ measured while busy' line is there exactly when suspect_rows > 0."""
    from mlflow import MlflowClient

    client = MlflowClient(mlflow_uri)
    quiet = log_report(_report(tmp_path / "quiet"), _meta(tmp_path))
    busy = log_report(
        _report(tmp_path / "busy", busy=True), {**_meta(tmp_path), "run_id": RUN["run_id"] + "b"}
    )
    for outcome, suspect in ((quiet, 0), (busy, 1)):
        run = client.get_run(outcome.run_id)
        assert run.data.metrics["suspect_rows"] == suspect
        assert ("⚠" in run.data.tags["mlflow.note.content"]) == bool(suspect)
    assert (
        "1 of 4 rows were measured while the machine was busy"
        in client.get_run(busy.run_id).data.tags["mlflow.note.content"]
    )


def test_build_seconds_is_the_build_and_the_wait_has_its_own_name(report, mlflow_uri, tmp_path):
    """Item 2: `build_seconds` is the row's (checkpoint load + build), never the time spent waiting."""
    from mlflow import MlflowClient

    outcome = log_report(report, _meta(tmp_path))
    ort = _children(MlflowClient(mlflow_uri), outcome.run_id)["onnxruntime-fp32"]
    assert ort.data.metrics["build_seconds"] == 2.5 and ort.data.metrics["build_wait_seconds"] == 88.0
    assert ort.data.metrics["artifact_build_seconds"] == 2.4


def test_a_build_that_waits_for_another_records_the_wait_apart(tmp_path, tiny_checkpoint_path):
    """Item 2 at its source: a build queued behind another torch build does not count the queue."""
    import threading

    from segopt_core.backends.options import VariantOptions
    from segopt_core.checkpoints import load_checkpoint, sha256_file
    from segopt_core.pipeline.jobs import CheckpointRef, VariantJob
    from segopt_core.pipeline.stages import _TORCH_LOCK, build_job

    loaded = load_checkpoint(tiny_checkpoint_path)
    ref = CheckpointRef(str(tiny_checkpoint_path), loaded.spec, sha256_file(tiny_checkpoint_path))
    job = VariantJob(ref, VariantOptions(backend="torch", precision="fp32"), "k")
    holding, release = threading.Event(), threading.Event()

    def other_build():
        with _TORCH_LOCK:
            holding.set()
            release.wait(10)

    other = threading.Thread(target=other_build)
    other.start()
    holding.wait(10)
    threading.Timer(3.0, release.set).start()
    start = time.perf_counter()
    record = build_job(job, tmp_path / "store")
    wall = time.perf_counter() - start
    other.join()
    assert record.status == "ok" and record.build_wait_seconds >= 2.9
    assert record.build_seconds + record.build_wait_seconds == pytest.approx(wall, abs=0.5)


def test_child_runs_start_and_end_when_the_work_did(report, mlflow_uri, tmp_path):
    """Item 3: the real times the stages recorded (build start, evaluation end), not synthesized ones."""
    from mlflow import MlflowClient

    from segopt_tracking.report import run_times

    outcome = log_report(report, _meta(tmp_path))
    ort = _children(MlflowClient(mlflow_uri), outcome.run_id)["onnxruntime-fp32"]
    ms = lambda iso: int(dt.datetime.fromisoformat(iso).timestamp() * 1000)  # noqa: E731
    assert (ort.info.start_time, ort.info.end_time) == (ms(BUILD_START), ms(EVAL_END))
    # a nightly re-measurement has no build or evaluation: from its first measured row to its benchmark's end
    frame = read_results(report.results)
    nightly = frame[frame["variant"] == "onnxruntime-fp32"].assign(started_at=None, finished_at=None)
    first_row = ms("2026-11-24T10:01:00+00:00")
    last_row = ms("2026-11-24T10:02:00+00:00")  # later than first row + benchmark_seconds (30 s) here
    assert run_times(nightly) == (first_row, last_row)


def test_one_name_and_unit_per_quantity_and_nothing_empty_or_twice(report, mlflow_uri, tmp_path):
    """Item 10: MiB metrics say `_mib`, `accepted` is a tag, no "None" for "all", no empty tag, and no
    key is both a param and a tag (backend/precision once)."""
    from mlflow import MlflowClient

    client = MlflowClient(mlflow_uri)
    outcome = log_report(report, _meta(tmp_path))
    runs = [client.get_run(outcome.run_id), *_children(client, outcome.run_id).values()]
    for run in runs:
        params, tags, metrics = run.data.params, run.data.tags, run.data.metrics
        assert "None" not in params.values() and all(v.strip() for v in tags.values())
        assert not set(params) & set(tags)
        assert not [m for m in metrics if m.endswith("_mb") or "_mb_" in m] and "accepted" not in metrics
    parent, ort = runs[0], _children(client, outcome.run_id)["onnxruntime-fp32"]
    assert parent.data.params["cells"] == "all" and parent.data.params["batch_sizes"] == "1,2"
    assert {"peak_rss_mib_bs1", "model_size_mib", "other_cpu_cores_bs1"} <= set(ort.data.metrics)
    assert "option.backend" not in ort.data.params and "option.preset" not in ort.data.params
    assert {"gpu_name", "tensorrt_version", "error"}.isdisjoint(ort.data.tags)
    note = ort.data.tags["mlflow.note.content"]
    assert "`other_cpu_cores_bs<N>`" in note and "`throughput_ips_bs<N>` images per second" in note
    assert "on host `box`" in note or "No artifact was built." in note


def test_tracking_failure_keeps_results_and_says_so(report, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:////proc/no-such-dir/mlflow.db")
    outcome = log_to_mlflow.fn(report, dict(RUN))
    assert outcome.run_id is None and "**tracking failed**" in outcome.note
    assert "**tracking failed**" in report.summary.read_text()
    assert report.results.exists()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # closed again when the socket is


def test_a_dead_tracking_server_is_found_in_seconds(report, monkeypatch):
    """#23: MLflow's client retries a closed port for ~255 s; the probe answers at once, in one line."""
    uri = f"http://127.0.0.1:{_closed_port()}"
    start = time.monotonic()
    with pytest.raises(
        TrackingUnavailable, match=r"^MLflow tracking server .* is not reachable .*--untracked"
    ):
        probe_tracking(uri)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    failed = log_to_mlflow.fn(report, dict(RUN))  # the server died after the run started
    assert failed.run_id is None and "TrackingUnavailable" in failed.note
    untracked = log_to_mlflow.fn(report, dict(RUN), track=False)  # asked not to track: no probe, no wait
    assert "**not tracked**" in untracked.note and "**not tracked**" in report.summary.read_text()
    assert time.monotonic() - start < 15


def test_the_cli_stops_on_a_dead_tracking_server_before_any_work(tmp_path, tiny_checkpoint_path):
    """`segopt optimize-all` with MLFLOW_TRACKING_URI at a closed port: exit 2, one line, within 15 s."""
    env = {"MLFLOW_TRACKING_URI": f"http://127.0.0.1:{_closed_port()}", "PATH": "/usr/bin:/bin",
           "HOME": str(tmp_path), "SEGOPT_WORK_DIR": str(tmp_path / "work")}  # fmt: skip
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "segopt_cli.main", "optimize-all", str(tmp_path / "zoo"),
                           "--variants", "torch-fp32"], capture_output=True, text=True, env=env, timeout=60,
                          cwd=tmp_path)  # fmt: skip
    seconds = time.monotonic() - start
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2, done.stderr
    assert len(lines) == 1 and "is not reachable" in lines[0] and "--untracked" in lines[0], done.stderr
    assert seconds < 15 and not (tmp_path / "work").exists()
