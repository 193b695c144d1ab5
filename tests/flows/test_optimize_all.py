"""optimize-all and nightly-benchmark for real: Prefect test server, tiny checkpoints, ONNX Runtime, MLflow.

One module-scoped story keeps CI short: run 1 (thread pool) with a corrupt checkpoint -> failed rows, the
rest finishes; repair it; run 2 (Dask local cluster) reuses run 1's rows and builds only the repaired one;
then nightly-benchmark re-measures the store and flags regressions against the history.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import socket
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from segopt_core.reports import read_results
from segopt_core.reports.history import append_history, read_history
from segopt_core.reports.schema import rows_to_frame

VARIANTS = ["torch-fp32", "onnxruntime-fp32"]
FAST = {"variants": VARIANTS, "batch_sizes": [1, 2], "warmup": 1, "iters": 3, "limit": 1}

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def story(prefect_harness, tmp_path_factory, tiny_checkpoint):
    """Folders and the MLflow store shared by the runs of this module."""
    root = tmp_path_factory.mktemp("optimize-all")
    mp = pytest.MonkeyPatch()
    mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
    tiny_checkpoint(root / "zoo" / "good.safetensors", seed=0)
    tiny_checkpoint(root / "zoo" / "broken.safetensors", seed=1, nan=True)
    (root / "zoo" / "README.txt").write_text("not a checkpoint")
    dirs = {"paths": [str(root / "zoo")], "work_dir": str(root / "work"), "report_dir": str(root / "reports")}
    yield root, dirs
    mp.undo()


@pytest.fixture(scope="module")
def first_run(story):
    from flows.optimize_all import optimize_all

    root, dirs = story
    return Path(optimize_all(**dirs, **FAST))


@pytest.fixture(scope="module")
def second_run(story, first_run, tiny_checkpoint):
    """Repair the broken checkpoint, run again on a local Dask cluster, untracked, with the tracking URI at
    a closed port (asked not to track, the run never waits on it)."""
    from flows.optimize_all import optimize_all
    from flows.runners import make_task_runner

    root, dirs = story
    tiny_checkpoint(root / "zoo" / "broken.safetensors", seed=1)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{closed}")
        runner = make_task_runner("dask")
        return Path(optimize_all.with_options(task_runner=runner)(**dirs, **FAST, track=False))


def test_failed_checkpoint_is_a_row_and_the_rest_finishes(first_run):
    frame = read_results(first_run)
    good = frame[frame["checkpoint"].str.endswith("good.safetensors")]
    broken = frame[frame["checkpoint"].str.endswith("broken.safetensors")]
    assert sorted(zip(good["variant"], good["batch_size"], strict=True)) == [
        ("onnxruntime-fp32", 1), ("onnxruntime-fp32", 2), ("torch-fp32", 1), ("torch-fp32", 2)
    ]  # fmt: skip
    assert (good["status"] == "ok").all() and (good["latency_ms_median"] > 0).all()
    assert (good["eval_mode"] == "agreement").all() and (good["pixel_agreement"] > 0.9).all()
    assert (good["speedup_basis"] == "same-round").sum() == 2  # batch 1 of each; batch 2 from separate runs
    assert good["other_cpu_cores"].notna().all() and good["quality"].isin(["ok", "suspect"]).all()
    assert good["accepted"].all() and not good["reused"].any()
    ort = good[(good["variant"] == "onnxruntime-fp32")]
    assert (
        ort["speedup_vs_torch_fp32"].notna().all() and ort["artifact"].map(lambda p: Path(p).is_dir()).all()
    )
    assert set(broken["status"]) == {"failed"} and broken["error"].str.contains("NaN").all()
    assert len(broken) == 2  # one status row per variant


def test_summary_tables_and_notes(first_run):
    text = (first_run / "summary.md").read_text()
    assert "## Accuracy and speed per checkpoint" in text and "## Latency, throughput and memory" in text
    assert "| onnxruntime-fp32 | fp32 |" in text and "failed" in text and "README.txt" in text
    assert "MLflow: parent run" in text
    assert {p.name for p in first_run.glob("*.png")} == {"speedup.png", "latency_vs_batch.png",
                                                          "accuracy_vs_speed.png"}  # fmt: skip


def test_mlflow_parent_and_nested_runs(first_run, story):
    from mlflow import MlflowClient

    root, _ = story
    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("segopt-optimize-all")
    tagged = client.search_runs([experiment.experiment_id], f"tags.`segopt.run_id` = '{first_run.name}'")
    parents = [r for r in tagged if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1 and parents[0].data.tags["prefect.flow_run_id"]
    children = client.search_runs(
        [experiment.experiment_id], f"tags.mlflow.parentRunId = '{parents[0].info.run_id}'"
    )
    assert len(children) == 4
    ok = [c for c in children if c.info.status == "FINISHED"]
    assert len(ok) == 2 and all("latency_ms_median_bs2" in c.data.metrics for c in ok)
    assert not any("latency_ms_median" in c.data.metrics for c in ok)  # no bare, batch-less names
    assert all(c.data.metrics["miou_ratio"] > 0.9 for c in ok)
    assert {c.data.params["accuracy_measure"] for c in ok} == {"miou_vs_fp32"}
    assert {c.info.run_name for c in ok} == {f"{v} · tiny-64-ade20k" for v in VARIANTS}
    # the work's real span (build start to evaluation end), inside the flow run's, not the logging's
    parent_run = parents[0].info
    assert all(parent_run.start_time - 1000 <= c.info.start_time < c.info.end_time <= parent_run.end_time
               for c in ok)  # fmt: skip
    assert all(c.data.params["artifact"] and "artifact/metadata.json" in
               [a.path for a in client.list_artifacts(c.info.run_id, "artifact")] for c in ok)  # fmt: skip
    parent = parents[0].data.tags
    assert parent["recommended.tiny-64-ade20k"] in VARIANTS and "cores" in parent["machine"]
    assert parent["mlflow.note.content"].startswith(f"Ship {parent['recommended.tiny-64-ade20k']} for ")
    assert sum("segopt.recommended" in c.data.tags for c in ok) == 1


def test_prefect_artifacts_published(first_run):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["optimize-all-summary"]))
        )
    assert any(first_run.name in str(a.data) for a in found)
    mine = next(a for a in found if first_run.name in str(a.data))
    assert "data:image/png;base64," in mine.data and "file://" in mine.data and mine.description


def test_prefect_flow_run_is_named_by_the_run_id(first_run):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[first_run.name]))
        )
        assert len(runs) == 1
        names = {t.name for t in client.read_task_runs() if t.flow_run_id == runs[0].id}
    assert {"collect-rows", "write-report", "publish-report", "log-to-mlflow"} <= names
    assert all(not re.search(r"-[0-9a-f]{3}$", name) for name in names), names  # no random suffixes


def test_the_prefect_run_log_says_what_happened_and_ends_with_the_recommendation(first_run):
    """No 'Finished in state Completed()' per task, no pid line, and a closing line with the variant to
    ship, the report and the MLflow link."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName, LogFilter, LogFilterFlowRunId
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=30)  # the run's last lines may still be on their way to the API
    with get_client(sync_client=True) as client:
        (run,) = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[first_run.name]))
        )
        logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run.id])))
    messages = [log.message for log in sorted(logs, key=lambda log: log.timestamp)]
    assert not [m for m in messages if m.startswith("Finished in state Completed")]
    assert not [m for m in messages if "holds the device" in m]
    closing = messages[-1]  # the run log ends with it
    assert closing.startswith("Ship ") and f"Report: {first_run.resolve() / 'summary.md'}." in closing
    assert (
        "MLflow: http://127.0.0.1:5000/#/experiments/" in closing
        and "workflowType=machine_learning" in closing
    )


def test_resume_reuses_finished_variants_on_dask(first_run, second_run):
    assert "**not tracked**" in (second_run / "summary.md").read_text()  # and it never waited on the port
    before, after = read_results(first_run), read_results(second_run)
    assert (after["status"] == "ok").all() and len(after) == 8
    good = after[after["checkpoint"].str.endswith("good.safetensors")]
    repaired = after[after["checkpoint"].str.endswith("broken.safetensors")]
    assert good["reused"].all() and not repaired["reused"].any()
    # reused rows are the first run's measurements, not new ones: nothing was rebuilt or re-benchmarked
    keys = ["checkpoint", "variant", "batch_size"]
    same = before.merge(good, on=keys, suffixes=("_1", "_2"))
    assert len(same) == 4 and (same["latency_ms_median_1"] == same["latency_ms_median_2"]).all()
    assert (same["artifact_1"] == same["artifact_2"]).all()
    # the final rows have exactly the shape of a clean run over two good checkpoints
    assert sorted(zip(repaired["variant"], repaired["batch_size"], strict=True)) == sorted(
        zip(good["variant"], good["batch_size"], strict=True)
    )
    assert repaired["accepted"].all()


def test_nightly_benchmark_appends_history_and_flags_regressions(second_run, story):
    from flows.nightly import nightly_benchmark

    root, dirs = story
    del dirs["paths"]
    history_root = Path(dirs["report_dir"]) / "history"
    # an earlier run of the same variants measured impossibly fast: the nightly must flag all of them
    fast = read_results(second_run).assign(
        run_id="ancient", latency_ms_median=1e-6, date="2026-01-01T00:00:00", reused=False
    )
    append_history(fast, history_root, "ancient", dt.date(2026, 1, 1))

    state = nightly_benchmark(**dirs, batch_sizes=[1], warmup=1, iters=3, fail_on_regression=True,
                              return_state=True)  # fmt: skip
    assert state.is_failed() and "regressed" in state.message
    history = read_history(history_root)
    nightly = history[history["flow"] == "nightly-benchmark"]
    assert len(nightly) == 4 and (nightly["status"] == "ok").all()
    report = Path(dirs["report_dir"]) / nightly["run_id"].iloc[0]
    assert "**REGRESSION**" in (report / "summary.md").read_text()
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("segopt-nightly-benchmark")
    (parent,) = client.search_runs([experiment.experiment_id], f"attributes.run_name = '{report.name}'")
    flagged = int(pd.read_csv(report / "comparison.csv")["regression"].sum())
    assert flagged and parent.data.metrics["regressions"] == flagged
    assert parent.data.tags["mlflow.note.content"].startswith(
        f"Nightly benchmark: {flagged} of 4 rows regressed"
    )
    assert (report / "comparison.csv").exists()


def test_benchmarks_never_overlap_under_the_device_limit(prefect_harness):
    """Prefect's concurrency() blocks only when the limit exists: ensure_device_limit creates it."""
    from prefect import flow, task
    from prefect.concurrency.sync import concurrency

    from tasks.benchmark import ensure_device_limit

    spans, lock = [], threading.Lock()

    @task
    def hold(i: int, name: str) -> None:
        with concurrency(name, occupy=1, strict=True):
            start = time.monotonic()
            time.sleep(0.5)
            with lock:
                spans.append((start, time.monotonic()))

    @flow
    def contend(name: str) -> None:
        ensure_device_limit(name)
        for future in hold.map(range(3), name):
            future.result()

    contend("segopt-test-device")
    spans.sort()
    assert len(spans) == 3
    assert all(a_end <= b_start + 0.05 for (_, a_end), (b_start, _) in zip(spans, spans[1:], strict=False))


def test_history_rows_keep_the_schema(second_run, story):
    frame = read_results(second_run)
    assert json.loads(frame["options"].iloc[0])["backend"] in ("torch", "onnxruntime")
    assert list(rows_to_frame([]).columns) == list(frame.columns)


def test_benchmarks_of_one_device_queue_as_pending_and_run_after_a_failure(prefect_harness):
    """Queued benchmarks wait as Pending behind the one before them (not Running), and a failure does
    not stop the queue."""
    from prefect import flow, task

    from flows.runners import queued_per_key, settle

    spans, lock = [], threading.Lock()

    @task
    def measure(i: int) -> int:
        start = time.monotonic()
        time.sleep(0.3)
        with lock:
            spans.append((start, time.monotonic()))
        if i == 0:
            raise RuntimeError("first benchmark failed")
        return i

    @flow
    def queue() -> tuple[list, list[str]]:
        futures = queued_per_key(
            lambda i, after: measure.submit(i, wait_for=after), [0, 1, 2], lambda i: "cpu"
        )
        states = [futures[2].state.type.value]  # submitted behind two others: not running yet
        return settle(futures), states

    outcomes, states = queue()
    assert [result for result, _ in outcomes] == [None, 1, 2] and "first benchmark failed" in outcomes[0][1]
    assert states == ["PENDING"]
    spans.sort()
    assert all(end <= next_start for (_, end), (next_start, _) in zip(spans, spans[1:], strict=False))
