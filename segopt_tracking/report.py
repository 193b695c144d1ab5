"""A report's MLflow runs: one parent run per flow run, one nested run per checkpoint × variant.

Logging happens once, at the end of a flow, from the result rows (never from parallel tasks). A tracking
failure never loses results: they are in Parquet already and summary.md says what went wrong. Every
metric keeps the name and unit of its row column (`_ms`, `_ips`, `_mib`, `_seconds`; per batch size
`<column>_bs<N>`); strings are tags or params, never both; nothing empty is logged.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from segopt_core import lifecycle
from segopt_core.benchmark.fingerprint import machine_summary
from segopt_core.reports import Report, read_results, set_tracking_note
from segopt_core.reports.figures import missing, speedup
from segopt_core.reports.markdown import summary_html
from segopt_core.reports.recommend import first_choices, recommendations
from segopt_core.settings import load_settings
from segopt_tracking.notes import child_note, parent_note
from segopt_tracking.store import (
    experiment_id,
    probe_tracking,
    sqlite_path,
    tracking_uri,
    ui_command,
    ui_link,
    ui_page,
)

EXPERIMENTS = {"optimize-all": "segopt-optimize-all", "nightly-benchmark": "segopt-nightly-benchmark"}
# row columns logged per batch size as <column>_bs<N> (never a bare, ambiguous name)
PER_BATCH_METRICS = (
    "latency_ms_median", "latency_ms_p90", "latency_ms_p99", "throughput_ips", "speedup_vs_torch_fp32",
    "peak_rss_mib", "cuda_max_allocated_mib", "other_cpu_cores",
)  # fmt: skip
# row columns logged once per variant, under their own names
PER_VARIANT_METRICS = (
    "miou_ratio", "miou", "miou_reference", "pixel_agreement", "model_size_mib", "build_seconds",
    "build_wait_seconds", "artifact_build_seconds", "benchmark_seconds", "eval_seconds",
)  # fmt: skip
VARIANT_PARAMS = (
    "cell", "variant", "backend", "precision", "checkpoint", "checkpoint_sha256", "accuracy_measure",
    "eval_mode", "eval_images",
)  # fmt: skip
FINGERPRINT_TAGS = (
    "hostname", "cpu_model", "gpu_name", "torch_version", "onnxruntime_version", "tensorrt_version",
    "transformers_version", "segopt_version", "segopt_commit",
)  # fmt: skip
# what a flow parameter left at None means, so the run never shows the string "None"
NONE_MEANS = {
    "cells": "all", "variants": "all", "backends": "machine defaults", "precisions": "machine defaults",
    "limit": "all", "data_dir": "none (agreement with fp32 on sample images)", "batch_sizes": "1,4,8",
}  # fmt: skip


@dataclass(frozen=True)
class TrackingOutcome:
    """What tracking did: the parent run and its link into the MLflow UI (None when not tracked), and the
    line summary.md's tracking section now holds."""

    run_id: str | None
    link: str | None
    note: str


def track_report(
    report: Report, meta: dict, log_models: bool = False, uri: str | None = None
) -> TrackingOutcome:
    """Log a report to MLflow; on failure say so in summary.md and go on (the results stay in Parquet)."""
    uri = uri or tracking_uri()
    # runs at once on a fresh SQLite store race to create its tables ("table ... already exists"): one by one
    db = sqlite_path(uri)
    try:
        probe_tracking(
            uri
        )  # a server gone since the run started: seconds here, not MLflow's minutes of retries
        with lifecycle.file_lock(f"{db}.segopt-lock") if db else contextlib.nullcontext():
            return log_report(report, meta, log_models, uri)
    except Exception as exc:  # recovery: tracking is optional, the report on disk is the record
        note = f"MLflow: **tracking failed** at `{uri}`: {type(exc).__name__}: {exc}"
        set_tracking_note(report.summary, note)
        return TrackingOutcome(None, None, note)


def untracked(report: Report) -> TrackingOutcome:
    """The run was asked not to track: summary.md says so."""
    note = ("MLflow: **not tracked** (run with `--untracked` / `track=false`): the results are in "
            "results.parquet and this summary only.")  # fmt: skip
    set_tracking_note(report.summary, note)
    return TrackingOutcome(None, None, note)


def log_report(
    report: Report, meta: dict, log_models: bool = False, uri: str | None = None
) -> TrackingOutcome:
    """Log a report to MLflow (parent + nested runs, artifacts). Raises on failure."""
    from mlflow import MlflowClient

    uri = uri or tracking_uri()
    client = MlflowClient(tracking_uri=uri)
    frame = read_results(report.results)
    experiment = experiment_id(client, EXPERIMENTS.get(meta["flow"], f"segopt-{meta['flow']}"), uri)
    tags = _run_tags(meta)
    start = _epoch_ms(meta.get("started_at"))
    parent = client.create_run(experiment, start_time=start, run_name=meta["run_id"], tags=tags).info.run_id
    try:
        links = _log_variants(client, experiment, parent, frame, tags, log_models)
        _log_parent(client, parent, report, meta, frame, links)
        note = _tracking_note(uri, experiment, parent)
        set_tracking_note(report.summary, note)
        _log_parent_files(client, parent, report)
    except BaseException:
        client.set_terminated(parent, "FAILED")
        raise
    client.set_terminated(parent, "FINISHED")
    return TrackingOutcome(parent, ui_link(uri, experiment, parent), note)


def experiment_link(flow: str, uri: str | None = None) -> str | None:
    """The link to a flow's experiment (its runs table, model-training view); None before its first run."""
    from mlflow import MlflowClient

    uri = uri or tracking_uri()
    found = MlflowClient(tracking_uri=uri).get_experiment_by_name(EXPERIMENTS.get(flow, f"segopt-{flow}"))
    return None if found is None else ui_link(uri, found.experiment_id)


def _run_tags(meta: dict) -> dict[str, str]:
    """Tags of every run of a flow run: machine, versions, run ids, where it came from (none empty)."""
    fingerprint = meta.get("fingerprint") or {}
    tags = {k: str(fingerprint.get(k) or "") for k in FINGERPRINT_TAGS}
    tags |= {
        "segopt.run_id": meta["run_id"],
        "segopt.flow": meta["flow"],
        "machine": machine_summary(fingerprint),
    }
    tags |= {"prefect.flow_run_id": meta.get("flow_run_id") or "", "machine_id": meta.get("machine_id", "")}
    tags |= {"mlflow.source.name": f"segopt {meta['flow']}", "mlflow.source.type": "LOCAL"}
    commit = str(fingerprint.get("segopt_commit") or "")
    if commit and commit != "unknown":
        tags["mlflow.source.git.commit"] = commit.removesuffix("-dirty")
    return {k: v for k, v in tags.items() if v}


def _log_variants(
    client: Any, experiment: str, parent: str, frame: pd.DataFrame, tags: dict, models: bool
) -> dict[tuple[str, str], str]:
    """One nested run per checkpoint × variant; returns the link to each, by (checkpoint, variant)."""
    recs = recommendations(frame)
    links = {}
    for (checkpoint, variant), group in frame.groupby(["checkpoint", "variant"], sort=True):
        picked = recs[(recs["checkpoint"] == checkpoint) & (recs["variant"] == variant)]["batch_size"]
        mark = ", ".join(f"bs{int(b)}" for b in picked)
        run_id = _log_variant(client, experiment, parent, group, tags, models, mark)
        links[(checkpoint, variant)] = ui_page(
            experiment, run_id
        )  # relative: opens on whatever host serves it
    return links


def _log_variant(
    client: Any, experiment: str, parent: str, group: pd.DataFrame, tags: dict, models: bool, recommended: str
) -> str:
    """One nested run '<variant> · <cell>': params, tags, metrics per batch size, the artifact's files."""
    from mlflow.entities import Param

    first = group.iloc[0]
    start, end = run_times(group)
    host = tags.get("hostname", "this machine")
    run_tags = {**tags, "mlflow.parentRunId": parent, **_variant_tags(group, recommended)}
    run_tags["mlflow.note.content"] = child_note(group, host, models, recommended)
    run = client.create_run(experiment, start_time=start, run_name=f"{first['variant']} · {first['cell']}",
                            tags=run_tags)  # fmt: skip
    run_id = run.info.run_id
    params = _variant_params(first, group)
    client.log_batch(run_id, metrics=_variant_metrics(group, int(time.time() * 1000)),
                     params=[Param(k, v[:6000]) for k, v in params.items()])  # fmt: skip
    artifact = Path(str(first["artifact"])) if _text(first["artifact"]) else None
    if artifact is not None and (artifact / "metadata.json").is_file():
        client.log_artifact(run_id, str(artifact / "metadata.json"), "artifact")
    if models and artifact is not None and artifact.exists():
        client.log_artifacts(run_id, str(artifact), "model")
    client.set_terminated(run_id, "FINISHED" if first["status"] == "ok" else "FAILED", end_time=end)
    return run_id


def _variant_tags(group: pd.DataFrame, recommended: str) -> dict[str, str]:
    """Outcome tags of a variant run (status, gate, measurement quality, reuse, error), none empty."""
    first = group.iloc[0]
    tags = {
        "status": str(first["status"]),
        "quality": _quality_tag(group),
        "reused": str(bool(first["reused"])).lower(),
    }
    if not missing(first["accepted"]):
        tags["accepted"] = str(bool(first["accepted"])).lower()
    if _text(first["error"]):
        tags["error"] = _text(first["error"])[:4000]
    if recommended:
        tags["segopt.recommended"] = recommended
    return tags


def _quality_tag(group: pd.DataFrame) -> str:
    """'ok', or which batch sizes were measured under contention / with an absurd spread."""
    bad = group[group["quality"].fillna("") == "suspect"]
    if bad.empty:
        return "ok" if group["quality"].notna().any() else "not measured"
    return "suspect at " + ", ".join(
        f"bs{int(r['batch_size'])} ({r['quality_flags']})" for _, r in bad.iterrows()
    )


def _variant_params(first: pd.Series, group: pd.DataFrame) -> dict[str, str]:
    """What the variant is and how it was measured (identity, build options, artifact path), none empty."""
    options = json.loads(first["options"] or "{}")
    params = {k: _text(first[k]) for k in VARIANT_PARAMS}
    params["batch_sizes"] = ",".join(str(int(b)) for b in group["batch_size"].dropna())
    if _text(first["artifact"]):
        params["artifact"] = str(Path(str(first["artifact"])).resolve())
    for key, value in options.items():
        if key not in params and value is not None:  # backend, precision: params already
            params[f"option.{key}"] = json.dumps(value) if isinstance(value, dict | list) else str(value)
    return {k: v for k, v in params.items() if v}


def _variant_metrics(group: pd.DataFrame, now: int) -> list:
    from mlflow.entities import Metric

    metrics = []
    for _, row in group.iterrows():
        if missing(row["batch_size"]):
            continue
        for column in PER_BATCH_METRICS:
            if (value := _number(row[column])) is not None:
                metrics.append(Metric(f"{column}_bs{int(row['batch_size'])}", value, now, 0))
    first = group.iloc[0]
    metrics += [Metric(c, v, now, 0) for c in PER_VARIANT_METRICS if (v := _number(first[c])) is not None]
    return metrics


def run_times(group: pd.DataFrame) -> tuple[int | None, int | None]:
    """(start, end) in ms since the epoch of a variant's work, from the times the stages recorded: build
    start to evaluation end; without those (nightly re-measurements) the benchmark's first row to its end."""
    first = group.iloc[0]
    dates = [t for t in (_epoch_ms(d) for d in group["date"]) if t is not None]
    start = _epoch_ms(first["started_at"]) or (min(dates) if dates else None)
    end = _epoch_ms(first["finished_at"])
    if end is None and start is not None:
        seconds = _number(first["benchmark_seconds"])
        end = max([*dates, start + int(1000 * seconds) if seconds is not None else start])
    return start, end if end is None or start is None else max(start, end)


def _log_parent(
    client: Any, parent: str, report: Report, meta: dict, frame: pd.DataFrame, links: dict
) -> None:
    """The parent run's params, tags, description, dataset and metrics."""
    from mlflow.entities import Metric, Param, RunTag

    host = (meta.get("fingerprint") or {}).get("hostname") or "this machine"
    params = flow_params(meta.get("params") or {}, frame, report)
    note = parent_note(frame, {**meta, "regressions": report.regressions}, links, report.dir.resolve(), host)
    tags = {"mlflow.note.content": note, **recommended_tags(frame)}
    now = int(time.time() * 1000)
    counts = frame.drop_duplicates(["checkpoint", "variant"])["status"].value_counts()
    metrics = [Metric(f"variants_{status}", float(n), now, 0) for status, n in counts.items()]
    metrics.append(Metric("regressions", float(report.regressions), now, 0))
    metrics.append(Metric("suspect_rows", float((frame["quality"].fillna("") == "suspect").sum()), now, 0))
    client.log_batch(parent, metrics=metrics, params=[Param(k, v[:6000]) for k, v in params.items()],
                     tags=[RunTag(k, v) for k, v in tags.items()])  # fmt: skip
    _log_dataset(client, parent, (meta.get("params") or {}).get("data_dir"))


def recommended_tags(frame: pd.DataFrame) -> dict[str, str]:
    """`recommended` (one column in the runs table: the variant to ship, with its speedup and batch size)
    and `recommended.<cell>` (the bare slug, per cell)."""
    first = first_choices(frame)
    if first.empty:
        return {}
    several = first["cell"].nunique() > 1
    parts = [
        (f"{r['cell']}: " if several else "")
        + f"{r['variant']} ({speedup(r['speedup_vs_torch_fp32'])} at bs{int(r['batch_size'])})"
        for _, r in first.iterrows()
    ]
    per_cell = {f"recommended.{c}": str(g.iloc[0]["variant"]) for c, g in first.groupby("cell", sort=True)}
    return {"recommended": "; ".join(parts), **per_cell}


def flow_params(params: dict, frame: pd.DataFrame, report: Report) -> dict[str, str]:
    """The flow's parameters as a person reads them: lists comma-separated, None as what it means, folders
    absolute."""
    defaults = {
        "paths": ",".join(sorted({str(c) for c in frame["checkpoint"].dropna()})),
        "work_dir": str(load_settings().work_dir.resolve()),
        "report_dir": str(report.dir.parent.resolve()),
    }
    out = {}
    for key, value in params.items():
        if isinstance(value, list | tuple):
            value = ",".join(map(str, value)) or None
        text = (NONE_MEANS.get(key) or defaults.get(key)) if value is None else str(value)
        if key in ("work_dir", "report_dir", "data_dir") and value is not None:
            text = str(Path(str(value)).resolve())
        if text:
            out[key] = text
    return out


def _log_parent_files(client: Any, parent: str, report: Report) -> None:
    """results.parquet, summary.md, its HTML page with the plots inlined, the plots, comparison.csv."""
    for path in [report.results, report.summary, *report.plots, report.comparison]:
        if path is not None and Path(path).exists():
            client.log_artifact(parent, str(path))
    with tempfile.TemporaryDirectory() as tmp:
        page = Path(tmp) / "summary.html"
        page.write_text(summary_html(report.summary.read_text(), report.plots), encoding="utf-8")
        client.log_artifact(parent, str(page))


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


def _tracking_note(uri: str, experiment: str, parent: str) -> str:
    """summary.md's tracking line: where the runs are, with a link into MLflow's model-training view."""
    note = (f"MLflow: parent run `{parent}` in experiment `{experiment}` at `{uri}`: "
            f"[open the run]({ui_link(uri, experiment, parent)})")  # fmt: skip
    if command := ui_command(uri):
        note += f" after `{command}`"
    return note + "."


def _number(value: Any) -> float | None:
    return None if missing(value) else float(value)


def _text(value: Any) -> str:
    return "" if missing(value) else str(value)


def _epoch_ms(iso: Any) -> int | None:
    """Milliseconds since the epoch of an ISO 8601 time, None when unknown."""
    text = _text(iso)
    return int(dt.datetime.fromisoformat(text).timestamp() * 1000) if text else None
