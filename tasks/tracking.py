"""All of segopt's MLflow code: one parent run per flow run, one nested run per checkpoint × variant.

Logging happens once, at the end of a flow, from the result rows (never from parallel tasks). A tracking
failure never loses results: they are in Parquet already and summary.md says what went wrong.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pandas as pd
from prefect import get_run_logger, task
from prefect.exceptions import MissingContextError

from segopt_core.reports import Report, read_results, set_tracking_note
from segopt_core.settings import load_settings

EXPERIMENTS = {"optimize-all": "segopt-optimize-all", "nightly-benchmark": "segopt-nightly-benchmark"}
PER_BATCH_METRICS = {
    "latency_ms_median": "latency_p50_ms",
    "latency_ms_p90": "latency_p90_ms",
    "latency_ms_p99": "latency_p99_ms",
    "throughput_ips": "throughput_ips",
    "peak_rss_mb": "peak_rss_mb",
    "cuda_max_allocated_mb": "cuda_max_allocated_mb",
    "speedup_vs_torch_fp32": "speedup_vs_torch_fp32",
}
PER_VARIANT_METRICS = ("model_size_mb", "miou", "miou_reference", "miou_ratio", "pixel_agreement",
                       "miou_vs_reference")  # fmt: skip
FINGERPRINT_TAGS = (
    "hostname", "cpu_model", "gpu_name", "torch_version", "onnxruntime_version", "tensorrt_version",
    "transformers_version", "segopt_version", "segopt_commit",
)  # fmt: skip


def tracking_uri() -> str:
    """MLFLOW_TRACKING_URI when set, else SEGOPT_MLFLOW_TRACKING_URI (default: sqlite:///mlflow.db here)."""
    return os.environ.get("MLFLOW_TRACKING_URI") or load_settings().mlflow_tracking_uri


def _artifact_root(uri: str) -> str | None:
    """For a SQLite store, keep run artifacts next to the database (not in ./mlruns of whatever cwd)."""
    if not uri.startswith("sqlite:///"):
        return None
    db = Path(urlparse(uri).path if uri.startswith("sqlite:////") else uri[len("sqlite:///") :])
    return (db.resolve().parent / "mlartifacts").as_uri()


def _experiment_id(client: Any, name: str, uri: str) -> str:
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    return client.create_experiment(name, artifact_location=_artifact_root(uri))


def _number(value: Any) -> float | None:
    return None if value is None or pd.isna(value) else float(value)


def _log_variant(
    client: Any, experiment: str, parent: str, group: pd.DataFrame, tags: dict, models: bool
) -> None:
    """One nested run: params and tags of the variant, metrics per batch size (step = batch size)."""
    from mlflow.entities import Metric, Param, RunTag

    first = group.iloc[0]
    name = f"{first['model']}/{first['variant']}"
    run = client.create_run(experiment, run_name=name, tags={**tags, "mlflow.parentRunId": parent})
    run_id, now = run.info.run_id, int(time.time() * 1000)
    options = json.loads(first["options"] or "{}")
    params = {
        k: first[k] for k in ("checkpoint", "checkpoint_sha256", "backend", "precision", "variant", "status")
    }
    params |= {"cell": first["model"], "batch_sizes": ",".join(str(b) for b in group["batch_size"].dropna())}
    params |= {f"option.{k}": json.dumps(v) if isinstance(v, dict | list) else v for k, v in options.items()}
    metrics = []
    for _, row in group.iterrows():
        for column, key in PER_BATCH_METRICS.items():
            value, batch = _number(row[column]), row["batch_size"]
            if value is not None and not pd.isna(batch):
                metrics.append(Metric(f"{key}_bs{int(batch)}", value, now, 0))
                metrics.append(Metric(key, value, now, int(batch)))
    metrics += [Metric(k, v, now, 0) for k in PER_VARIANT_METRICS if (v := _number(first[k])) is not None]
    if not pd.isna(first["accepted"]):
        metrics.append(Metric("accepted", float(bool(first["accepted"])), now, 0))
    row_tags = [RunTag("status", first["status"]), RunTag("error", (first["error"] or "")[:4000])]
    client.log_batch(run_id, metrics=metrics, params=[Param(k, str(v)[:6000]) for k, v in params.items()],
                     tags=row_tags)  # fmt: skip
    if models and first["artifact"] and Path(first["artifact"]).exists():
        client.log_artifacts(run_id, first["artifact"], "model")
    client.set_terminated(run_id, "FINISHED" if first["status"] == "ok" else "FAILED")


def log_report(report: Report, meta: dict, log_models: bool = False, uri: str | None = None) -> str:
    """Log a report to MLflow (parent + nested runs, artifacts); returns the run id. Raises on failure."""
    from mlflow import MlflowClient

    uri = uri or tracking_uri()
    client = MlflowClient(tracking_uri=uri)
    frame = read_results(report.results)
    experiment = _experiment_id(client, EXPERIMENTS.get(meta["flow"], f"segopt-{meta['flow']}"), uri)
    fingerprint = meta.get("fingerprint") or {}
    tags = {k: str(fingerprint.get(k, "")) for k in FINGERPRINT_TAGS}
    tags |= {"segopt.run_id": meta["run_id"], "segopt.flow": meta["flow"]}
    tags |= {"prefect.flow_run_id": meta.get("flow_run_id") or "", "machine_id": meta.get("machine_id", "")}
    parent = client.create_run(experiment, run_name=meta["run_id"], tags=tags).info.run_id
    try:
        for _, group in frame.groupby(["checkpoint", "variant"], sort=True):
            _log_variant(client, experiment, parent, group, tags, log_models)
        for key, value in (meta.get("params") or {}).items():
            client.log_param(parent, key, str(value)[:6000])
        counts = frame.drop_duplicates(["checkpoint", "variant"])["status"].value_counts()
        for status, count in counts.items():
            client.log_metric(parent, f"variants_{status}", float(count))
        client.log_metric(parent, "regressions", float(report.regressions))
        set_tracking_note(
            report.summary, f"MLflow: parent run `{parent}` in experiment `{experiment}` at `{uri}`."
        )
        for path in [report.results, report.summary, *report.plots, report.comparison]:
            if path is not None and Path(path).exists():
                client.log_artifact(parent, str(path))
    except BaseException:
        client.set_terminated(parent, "FAILED")
        raise
    client.set_terminated(parent, "FINISHED")
    return parent


def _warn(message: str) -> None:
    try:
        get_run_logger().warning(message)
    except MissingContextError:  # called through .fn() outside a run
        logging.getLogger(__name__).warning(message)


@task(name="log-to-mlflow")
def track(report: Report, meta: dict, log_models: bool = False) -> str | None:
    """Log the report to MLflow; on failure, say so in summary.md and go on (results stay in Parquet)."""
    try:
        return log_report(report, meta, log_models)
    except Exception as exc:  # recovery: tracking is optional, the report on disk is the record
        note = f"MLflow: **tracking failed** at `{tracking_uri()}`: {type(exc).__name__}: {exc}"
        _warn(note)
        set_tracking_note(report.summary, note)
        return None
