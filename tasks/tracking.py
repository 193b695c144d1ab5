"""All of segopt's MLflow code: one parent run per flow run, one nested run per checkpoint × variant.

Logging happens once, at the end of a flow, from the result rows (never from parallel tasks). A tracking
failure never loses results: they are in Parquet already and summary.md says what went wrong.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import time
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pandas as pd
from prefect import get_run_logger, task
from prefect.exceptions import MissingContextError

from segopt_core import lifecycle
from segopt_core.benchmark.fingerprint import machine_summary
from segopt_core.reports import Report, read_results, set_tracking_note
from segopt_core.reports.recommend import accuracy_label, recommendations, recommended_by_cell
from segopt_core.settings import load_settings

EXPERIMENTS = {"optimize-all": "segopt-optimize-all", "nightly-benchmark": "segopt-nightly-benchmark"}
# result column -> metric name; each is logged per batch size as <name>_bs<N> (never a bare, ambiguous name)
PER_BATCH_METRICS = {
    "latency_ms_median": "latency_ms_median",
    "latency_ms_p90": "latency_ms_p90",
    "latency_ms_p99": "latency_ms_p99",
    "throughput_ips": "throughput_ips",
    "speedup_vs_torch_fp32": "speedup_vs_torch_fp32",
    "peak_rss_mb": "peak_rss_mb",
    "cuda_max_allocated_mb": "cuda_max_allocated_mb",
    "other_cpu_cores": "other_cpu_cores",
}
# one set of accuracy names whatever the mode: accuracy_ratio is what the gate used (accuracy_measure: which)
PER_VARIANT_METRICS = {
    "miou_ratio": "accuracy_ratio",
    "miou": "miou",
    "miou_reference": "miou_reference",
    "pixel_agreement": "pixel_agreement",
    "model_size_mb": "model_size_mb",
    "build_seconds": "build_seconds",
    "benchmark_seconds": "benchmark_seconds",
    "eval_seconds": "eval_seconds",
}
FINGERPRINT_TAGS = (
    "hostname", "cpu_model", "gpu_name", "torch_version", "onnxruntime_version", "tensorrt_version",
    "transformers_version", "segopt_version", "segopt_commit",
)  # fmt: skip


def tracking_uri() -> str:
    """MLFLOW_TRACKING_URI when set, else SEGOPT_MLFLOW_TRACKING_URI (default: sqlite:///mlflow.db here)."""
    return os.environ.get("MLFLOW_TRACKING_URI") or load_settings().mlflow_tracking_uri


def _sqlite_path(uri: str) -> str | None:
    """The database file of a sqlite:/// tracking URI, else None."""
    return uri.removeprefix("sqlite:///") if uri.startswith("sqlite:///") and ":memory:" not in uri else None


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


def _text(value: Any) -> str:
    return "" if value is None or pd.isna(value) else str(value)


def _epoch_ms(iso: Any) -> int | None:
    """Milliseconds since the epoch of an ISO 8601 time, None when unknown."""
    text = _text(iso)
    return int(dt.datetime.fromisoformat(text).timestamp() * 1000) if text else None


def _run_times(first: pd.Series) -> tuple[int | None, int | None]:
    """(start, end) of the variant's run: build start, then start + build, benchmark and evaluation time."""
    start = _epoch_ms(first["started_at"])
    seconds = [_number(first[k]) for k in ("build_seconds", "benchmark_seconds", "eval_seconds")]
    if start is None or all(v is None for v in seconds):
        return start, _epoch_ms(first["finished_at"])
    # the work itself, not the wall span: a variant waits minutes for the device slot and the other builds
    return start, start + int(sum(v or 0.0 for v in seconds) * 1000)


def _quality_tag(group: pd.DataFrame) -> str:
    """'ok', or which batch sizes were measured under contention / with an absurd spread."""
    bad = group[group["quality"].fillna("") == "suspect"]
    if bad.empty:
        return "ok" if group["quality"].notna().any() else "not measured"
    return "suspect at " + ", ".join(
        f"bs{int(r['batch_size'])} ({r['quality_flags']})" for _, r in bad.iterrows()
    )


def _variant_metrics(group: pd.DataFrame, now: int) -> list:
    from mlflow.entities import Metric

    metrics = []
    for _, row in group.iterrows():
        if pd.isna(row["batch_size"]):
            continue
        for column, key in PER_BATCH_METRICS.items():
            if (value := _number(row[column])) is not None:
                metrics.append(Metric(f"{key}_bs{int(row['batch_size'])}", value, now, 0))
    first = group.iloc[0]
    metrics += [Metric(name, v, now, 0) for col, name in PER_VARIANT_METRICS.items()
                if (v := _number(first[col])) is not None]  # fmt: skip
    if not pd.isna(first["accepted"]):
        metrics.append(Metric("accepted", float(bool(first["accepted"])), now, 0))
    return metrics


def _variant_params(first: pd.Series, group: pd.DataFrame) -> dict[str, Any]:
    options = json.loads(first["options"] or "{}")
    params = {k: first[k] for k in ("checkpoint", "checkpoint_sha256", "backend", "precision", "variant")}
    params |= {"cell": first["cell"], "batch_sizes": ",".join(str(b) for b in group["batch_size"].dropna())}
    params |= {"artifact": _text(first["artifact"]), "accuracy_measure": _text(first["accuracy_measure"])}
    params |= {"eval_mode": _text(first["eval_mode"]), "eval_images": _text(first["eval_images"])}
    params |= {f"option.{k}": json.dumps(v) if isinstance(v, dict | list) else v for k, v in options.items()}
    return params


def _log_variant(
    client: Any, experiment: str, parent: str, group: pd.DataFrame, tags: dict, models: bool, recommended: str
) -> str:
    """One nested run '<variant> · <cell>': params, tags, metrics per batch size, the artifact's files."""
    from mlflow.entities import Param, RunTag

    first = group.iloc[0]
    start, end = _run_times(first)
    run_tags = {
        **tags,
        "mlflow.parentRunId": parent,
        "segopt.variant": first["variant"],
        "cell": first["cell"],
    }
    run = client.create_run(experiment, start_time=start, run_name=f"{first['variant']} · {first['cell']}",
                            tags=run_tags)  # fmt: skip
    run_id = run.info.run_id
    row_tags = {
        "status": first["status"],
        "error": _text(first["error"])[:4000],
        "quality": _quality_tag(group),
        "artifact": _text(first["artifact"]),
        "accuracy_measure": _text(first["accuracy_measure"]),
        "reused": str(bool(first["reused"])),
    }
    if recommended:
        row_tags["segopt.recommended"] = recommended
    params = _variant_params(first, group)
    client.log_batch(run_id, metrics=_variant_metrics(group, int(time.time() * 1000)),
                     params=[Param(k, str(v)[:6000]) for k, v in params.items()],
                     tags=[RunTag(k, v) for k, v in row_tags.items()])  # fmt: skip
    artifact = Path(_text(first["artifact"])) if _text(first["artifact"]) else None
    if artifact is not None and (artifact / "metadata.json").is_file():
        client.log_artifact(run_id, str(artifact / "metadata.json"), "artifact")
    if models and artifact is not None and artifact.exists():
        client.log_artifacts(run_id, str(artifact), "model")
    client.set_terminated(run_id, "FINISHED" if first["status"] == "ok" else "FAILED", end_time=end)
    return run_id


def _log_dataset(client: Any, run_id: str, data_dir: str | None) -> None:
    """The evaluation dataset as an MLflow input: its file list as a pandas frame, source = the folder."""
    import mlflow.data
    from mlflow.entities import DatasetInput, InputTag

    if not data_dir or not Path(data_dir).is_dir():
        return
    files = sorted(str(p.relative_to(data_dir)) for p in Path(data_dir).rglob("*") if p.is_file())
    frame = pd.DataFrame({"file": files[:10_000]})
    with warnings.catch_warnings():  # mlflow registers its local source class twice and warns about it
        warnings.filterwarnings("ignore", message="The specified dataset source can be interpreted")
        source = str(Path(data_dir).resolve())
        dataset = mlflow.data.from_pandas(frame, source=source, name=Path(data_dir).name)
    context = InputTag("mlflow.data.context", "evaluation")
    client.log_inputs(run_id, datasets=[DatasetInput(dataset._to_mlflow_entity(), tags=[context])])


def _p50(rows: pd.DataFrame, batch: int) -> str:
    """'0.24 ms' at that batch size (⚠ when its row is suspect), '–' when not measured."""
    row = rows[rows["batch_size"] == batch]
    if row.empty or pd.isna(row["latency_ms_median"].iloc[0]):
        return "–"
    flag = " ⚠" if _text(row["quality"].iloc[0]) == "suspect" else ""
    return f"{float(row['latency_ms_median'].iloc[0]):.2f}{flag}"


def _recommendation_note(recs: pd.DataFrame, frame: pd.DataFrame, child_ids: dict, experiment: str) -> str:
    """The parent run's description: per cell, the variant to ship with its figures and a link to its run."""
    if recs.empty:
        return "No variant passed the accuracy gate: nothing to recommend."
    first = recs.sort_values("batch_size").drop_duplicates(["cell", "checkpoint"]).sort_values("cell")
    head = "| cell | ship | p50 ms bs1 | p50 ms bs8 | speedup | accuracy vs fp32 | size MiB | artifact |"
    batch = int(first["batch_size"].min())
    title = f"**Recommended** (fastest that passed the accuracy gate, at batch {batch}):"
    lines = [title, "", head, "|---" * 8 + "|"]
    for _, r in first.iterrows():
        rows = frame[(frame["checkpoint"] == r["checkpoint"]) & (frame["variant"] == r["variant"])]
        link = f"#/experiments/{experiment}/runs/{child_ids.get((r['checkpoint'], r['variant']), '')}"
        lines.append(
            f"| {r['cell']} | [{r['variant']}]({link}) | {_p50(rows, 1)} | {_p50(rows, 8)} | "
            f"{_number(r['speedup_vs_torch_fp32']) or 0:.2f}× | "
            f"{accuracy_label(r['accuracy_measure'])} {100 * (_number(r['miou_ratio']) or 0):.1f} % | "
            f"{_number(r['model_size_mb']) or 0:.2f} | `{r['artifact']}` |"
        )
    others = recs.merge(first[["cell", "checkpoint", "variant"]], how="left", on=["cell", "checkpoint"],
                        suffixes=("", "_first"))  # fmt: skip
    others = others[others["variant"] != others["variant_first"]]
    lines += [""] + [f"- at batch {int(r['batch_size'])}, {r['cell']}: `{r['variant']}` is faster"
                     for _, r in others.iterrows()]  # fmt: skip
    lines.append("\n⚠: measured while the machine was busy (see summary.md, *Measurements to distrust*).")
    return "\n".join(lines)


def _tracking_note(uri: str, experiment: str, parent: str) -> str:
    """Where the runs are, with a link into the MLflow UI (the server's own, or `mlflow ui` on :5000)."""
    server = uri if uri.startswith(("http://", "https://")) else "http://127.0.0.1:5000"
    link = f"{server.rstrip('/')}/#/experiments/{experiment}/runs/{parent}"
    note = f"MLflow: parent run `{parent}` in experiment `{experiment}` at `{uri}`: [open the run]({link})"
    if server != uri:
        note += f" after `mlflow ui --backend-store-uri {uri}`"
    return note + "."


def log_report(report: Report, meta: dict, log_models: bool = False, uri: str | None = None) -> str:
    """Log a report to MLflow (parent + nested runs, artifacts); returns the run id. Raises on failure."""
    from mlflow import MlflowClient

    uri = uri or tracking_uri()
    client = MlflowClient(tracking_uri=uri)
    frame = read_results(report.results)
    experiment = _experiment_id(client, EXPERIMENTS.get(meta["flow"], f"segopt-{meta['flow']}"), uri)
    fingerprint = meta.get("fingerprint") or {}
    tags = {k: str(fingerprint.get(k, "")) for k in FINGERPRINT_TAGS}
    tags |= {
        "segopt.run_id": meta["run_id"],
        "segopt.flow": meta["flow"],
        "machine": machine_summary(fingerprint),
    }
    tags |= {"prefect.flow_run_id": meta.get("flow_run_id") or "", "machine_id": meta.get("machine_id", "")}
    recs = recommendations(frame)
    start = _epoch_ms(meta.get("started_at"))
    parent = client.create_run(experiment, start_time=start, run_name=meta["run_id"], tags=tags).info.run_id
    try:
        child_ids = {}
        for (checkpoint, variant), group in frame.groupby(["checkpoint", "variant"], sort=True):
            picked = recs[(recs["checkpoint"] == checkpoint) & (recs["variant"] == variant)]["batch_size"]
            mark = ",".join(f"bs{int(b)}" for b in picked)
            child_ids[(checkpoint, variant)] = _log_variant(
                client, experiment, parent, group, tags, log_models, mark
            )
        for key, value in (meta.get("params") or {}).items():
            client.log_param(parent, key, str(value)[:6000])
        for cell, variant in recommended_by_cell(frame).items():
            client.set_tag(parent, f"recommended.{cell}", variant)
        client.set_tag(
            parent, "mlflow.note.content", _recommendation_note(recs, frame, child_ids, experiment)
        )
        _log_dataset(client, parent, (meta.get("params") or {}).get("data_dir"))
        counts = frame.drop_duplicates(["checkpoint", "variant"])["status"].value_counts()
        for status, count in counts.items():
            client.log_metric(parent, f"variants_{status}", float(count))
        client.log_metric(parent, "regressions", float(report.regressions))
        client.log_metric(parent, "suspect_rows", float((frame["quality"].fillna("") == "suspect").sum()))
        set_tracking_note(report.summary, _tracking_note(uri, experiment, parent))
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


@task(name="log-to-mlflow", task_run_name="log-to-mlflow")
def log_to_mlflow(report: Report, meta: dict, log_models: bool = False) -> str | None:
    """Log the report to MLflow; on failure, say so in summary.md and go on (results stay in Parquet)."""
    uri = tracking_uri()
    # runs at once on a fresh SQLite store race to create its tables ("table ... already exists"): one by one
    lock = _sqlite_path(uri) and lifecycle.file_lock(f"{_sqlite_path(uri)}.segopt-lock")
    try:
        with lock or contextlib.nullcontext():
            return log_report(report, meta, log_models, uri)
    except Exception as exc:  # recovery: tracking is optional, the report on disk is the record
        note = f"MLflow: **tracking failed** at `{tracking_uri()}`: {type(exc).__name__}: {exc}"
        _warn(note)
        set_tracking_note(report.summary, note)
        return None
