"""Flow `optimize-all`: discover → build variants (parallel) → benchmark (one per device) → evaluate → gate →
report → MLflow."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import torch
from prefect import flow, unmapped
from prefect.runtime import flow_run

from flows.runners import queued_per_key, runner_from_env, settle
from segopt_core.benchmark import device_concurrency_key, machine_fingerprint
from segopt_core.benchmark.fingerprint import machine_summary
from segopt_core.errors import RunFailed
from segopt_core.pipeline.jobs import check_run_options, default_sources, ensure_demo_zoo, is_empty, plan_jobs
from segopt_core.pipeline.results import machine_id
from segopt_core.settings import load_settings
from tasks.benchmark import benchmark_variant, ensure_device_limit
from tasks.discover import discover_checkpoints, load_cached
from tasks.evaluate import evaluate_variant, sample_source
from tasks.optimize import build_variant
from tasks.report import collect_rows, publish_report, write_report_task
from tasks.tracking import track

DEFAULT_BATCH_SIZES = (1, 4, 8)
RUN_ID = re.compile(r"\d{8}T\d{6}Z-[a-z0-9-]+-[0-9a-z]{1,8}")


def device_key(record: dict) -> str:
    """The concurrency-limit name of the device a variant runs on."""
    return device_concurrency_key((record.get("options") or {}).get("device", "cpu"))


def new_run_id(flow_name: str | None = None) -> str:
    """Report id: UTC time + flow name + the Prefect flow-run id prefix (unique per run, sortable).

    Also the flows' `flow_run_name`, so the Prefect run, reports/<run-id>/ and MLflow share one name.
    """
    suffix = (flow_run.get_id() or "local")[:8]
    flow_name = flow_name or flow_run.get_flow_name() or "flow"
    return f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}-{flow_name}-{suffix}"


def current_run_id(flow_name: str) -> str:
    """The flow run's name when `flow_run_name=new_run_id` set it, else a new run id."""
    name = flow_run.get_name() or ""
    return name if RUN_ID.fullmatch(name) else new_run_id(flow_name)


def run_meta(flow_name: str, params: dict) -> dict:
    """Facts every row and the report carry: run id, flow run, machine."""
    fingerprint = machine_fingerprint()
    return {
        "run_id": current_run_id(flow_name),
        "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "flow": flow_name,
        "flow_run_id": flow_run.get_id() or "",
        "machine_id": machine_id(fingerprint),
        "machine": machine_summary(fingerprint) + f", torch {fingerprint.get('torch_version')}",
        "fingerprint": fingerprint,
        "params": params,
        "notes": [],
    }


@flow(name="optimize-all", flow_run_name=new_run_id, task_runner=runner_from_env(), log_prints=True)
def optimize_all(
    paths: list[str] | None = None,
    cells: list[str] | None = None,
    backends: list[str] | None = None,
    precisions: list[str] | None = None,
    variants: list[str] | None = None,
    batch_sizes: list[int] | None = None,
    data_dir: str | None = None,
    limit: int | None = 8,
    warmup: int = 3,
    iters: int = 20,
    min_miou_ratio: float = 0.97,
    work_dir: str | None = None,
    report_dir: str | None = None,
    demo_zoo_if_empty: bool = False,
    log_models: bool = False,
) -> str:
    """Optimize, benchmark, verify and report every checkpoint under `paths`; returns the report folder.

    paths: checkpoint files/folders (default: the B0 `segopt demo` trained, else <work_dir>/zoo);
    cells: cell-name filters;
    backends/precisions: filters of the machine's default variants; variants: exact slugs
    (e.g. onnxruntime-fp32); data_dir: labelled validation set (else label-free agreement with fp32 on
    synthetic samples); limit: evaluation images; min_miou_ratio: the accuracy gate;
    demo_zoo_if_empty: write the tiny demo zoo when `paths` hold nothing.
    """
    batch_sizes = list(batch_sizes or DEFAULT_BATCH_SIZES)
    # a mistyped option fails here, before anything is discovered or built
    options = check_run_options(cells, backends, precisions, variants, batch_sizes, torch.cuda.is_available())
    settings = load_settings()
    work = Path(work_dir or settings.work_dir)
    reports = Path(report_dir or settings.reports_dir)
    if not paths:  # the demo's trained B0 (and its labelled set) when `segopt demo` ran, else the zoo
        paths, demo_data = default_sources(work)
        data_dir = data_dir or demo_data
    meta = run_meta("optimize-all", dict(flow_run.parameters))
    if demo_zoo_if_empty and is_empty(paths):
        ensure_demo_zoo(paths[0])
        meta["notes"].append(f"{paths[0]} was empty: wrote the tiny demo zoo there")

    checkpoints, rejected = discover_checkpoints(paths, cells)
    meta["notes"] += [f"not a checkpoint: `{r['path']}`: {r['reason']}" for r in rejected]
    meta["notes"] += [f"`{c.path}`: {conflict}" for c in checkpoints for conflict in c.conflicts]
    settings_key = {"batch_sizes": batch_sizes, "warmup": warmup, "iters": iters, "data_dir": data_dir,
                    "limit": limit}  # fmt: skip
    jobs = plan_jobs(checkpoints, options, settings_key)
    cached, todo = load_cached(jobs, str(work / "results"))
    source = sample_source(str(work), [c.spec for c in checkpoints], data_dir, limit)
    spec_of = {job.key: job.checkpoint.spec for job in jobs}

    # 1. build every variant in parallel (threads or Dask)
    built = settle(build_variant.map(todo, unmapped(str(work / "artifacts")), unmapped(source)))
    records = [rec or job.record("failed", error=err) for job, (rec, err) in zip(todo, built, strict=True)]

    # 2. benchmark, one at a time per device: nothing else runs during a measurement
    ready = [r for r in records if r["status"] == "ok"]
    for key in sorted({device_key(r) for r in ready}):
        ensure_device_limit(key)
    bench_futures = queued_per_key(
        lambda r, after: benchmark_variant.submit(
            r, spec_of[r["cache_key"]], batch_sizes, warmup, iters, device_key(r), str(work / "results"),
            wait_for=after,
        ),
        ready,
        device_key,
    )  # fmt: skip
    benched = [
        rec or {**r, "status": "failed", "error": err}
        for r, (rec, err) in zip(ready, settle(bench_futures), strict=True)
    ]

    # 3. accuracy vs fp32 (labels or agreement), then cache the finished record
    measured = [r for r in benched if r["status"] == "ok"]
    eval_futures = [
        evaluate_variant.submit(r, spec_of[r["cache_key"]], source, str(work / "results")) for r in measured
    ]
    evaluated = [
        rec or {**r, "accuracy": {"error": err}}
        for r, (rec, err) in zip(measured, settle(eval_futures), strict=True)
    ]

    failed = [r for r in records + benched if r["status"] != "ok"]
    all_records = cached + evaluated + failed
    rows = collect_rows(all_records, meta, min_miou_ratio)
    report = write_report_task(rows, str(reports), meta, str(reports / "history"))
    track(report, meta, log_models)
    publish_report(report, "optimize-all")
    if not any(row["status"] == "ok" for row in rows):
        raise RunFailed(f"no variant succeeded; see {report.summary}")
    return str(report.dir)
