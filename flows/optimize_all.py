"""Flow `optimize-all`: discover → build variants (parallel) → benchmark (one per device) → evaluate → gate →
report → MLflow.

The flow body is the diagram: start_run → plan_variants → build_stage → benchmark_stage → evaluate_stage →
report_stage, each stage a plain function over VariantRecords that submits the Prefect tasks of `tasks/`
(nightly-benchmark reuses benchmark_stage)."""

from __future__ import annotations

import datetime as dt
import inspect
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from prefect import flow, unmapped
from prefect.runtime import flow_run

from flows.naming import current_run_id, run_options
from flows.parameters import described_by, preflight
from flows.runners import queued_per_key, runner_from_env, settle
from segopt_core.backends.options import VariantOptions
from segopt_core.batches import DEFAULT_BATCH_SIZES
from segopt_core.benchmark import device_concurrency_key, machine_fingerprint
from segopt_core.benchmark.fingerprint import machine_summary
from segopt_core.errors import RunFailed
from segopt_core.pipeline.demo_zoo import default_sources, ensure_demo_zoo, is_empty
from segopt_core.pipeline.discovery import no_checkpoint_found
from segopt_core.pipeline.jobs import VariantJob, plan_jobs
from segopt_core.pipeline.params import OPTIMIZE_ALL_DEFAULTS as DEFAULTS
from segopt_core.pipeline.params import BenchmarkParams, OptimizeAllParams
from segopt_core.pipeline.record import VariantRecord
from segopt_core.pipeline.results import machine_id
from segopt_core.pipeline.stages import EvalSource
from segopt_core.settings import load_settings
from segopt_core.variants import CellSpec
from tasks.benchmark import benchmark_variant, ensure_device_limit
from tasks.discover import discover_checkpoints, load_cached_results
from tasks.evaluate import evaluate_variant, prepare_samples
from tasks.logs import log_closing_line
from tasks.optimize import build_variant
from tasks.report import collect_rows, publish_report, write_report
from tasks.tracking import log_to_mlflow


def device_key(record: VariantRecord) -> str:
    """The concurrency-limit name of the device a variant runs on."""
    return device_concurrency_key(record.device)


def locals_of(flow_fn, values: dict) -> dict:
    """A flow's arguments from its `locals()` (taken first thing in its body), by parameter name."""
    names = inspect.signature(flow_fn.fn if hasattr(flow_fn, "fn") else flow_fn).parameters
    return {name: values[name] for name in names}


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


@flow(name="optimize-all", **run_options(), task_runner=runner_from_env(), log_prints=True)
@described_by(OptimizeAllParams)
def optimize_all(
    paths: list[str] = (),
    cells: list[str] = (),
    backends: list[str] = (),
    precisions: list[str] = (),
    variants: list[str] = (),
    batch_sizes: list[int] = DEFAULT_BATCH_SIZES,
    data_dir: str | None = None,
    limit: int | None = DEFAULTS.limit,
    warmup: int = DEFAULTS.warmup,
    iters: int = DEFAULTS.iters,
    min_miou_ratio: float = DEFAULTS.min_miou_ratio,
    work_dir: str | None = None,
    report_dir: str | None = None,
    demo_zoo_if_empty: bool = DEFAULTS.demo_zoo_if_empty,
    log_models: bool = DEFAULTS.log_models,
    track: bool = DEFAULTS.track,
) -> str:
    """Optimize, benchmark, verify and report every checkpoint under `paths`; returns the report folder."""
    params = OptimizeAllParams.from_flow(**locals_of(optimize_all, locals()))  # bad values stop here
    preflight(params)  # before any task: the paths, the data set (the CLI ran it before Prefect started)
    run = start_run(params)
    plan = plan_variants(run, params.variant_options(torch.cuda.is_available()))
    built = build_stage(plan, run)
    benched = benchmark_stage(plan.with_specs(built), run.params, run.results)
    evaluated = evaluate_stage(plan.with_specs(benched), plan.source, run.results)
    return report_stage(plan.cached + evaluated, run)


@dataclass(frozen=True)
class Run:
    """One optimize-all run: its parameters (sources resolved), folders and report metadata."""

    params: OptimizeAllParams
    work: Path
    reports: Path
    meta: dict

    @property
    def results(self) -> str:
        """The result cache (resume)."""
        return str(self.work / "results")


@dataclass(frozen=True)
class Plan:
    """What a run builds: every job, the records an earlier run finished, the jobs left, the eval source."""

    jobs: list[VariantJob]
    cached: list[VariantRecord]
    todo: list[VariantJob]
    source: EvalSource

    def with_specs(self, records: list[VariantRecord]) -> list[tuple[VariantRecord, CellSpec]]:
        """Each record with its checkpoint's cell."""
        spec_of = {job.key: job.checkpoint.spec for job in self.jobs}
        return [(record, spec_of[record.cache_key]) for record in records]


def start_run(params: OptimizeAllParams) -> Run:
    """Resolve the folders and the default sources (the demo's B0 or zoo), write the demo zoo if asked."""
    settings = load_settings()
    work = Path(params.work_dir or settings.work_dir)
    reports = Path(params.report_dir or settings.reports_dir)
    if not params.paths:  # the demo's trained B0 (and its labelled set) when `segopt demo` ran, else the zoo
        paths, demo_data = default_sources(work)
        params = params.model_copy(update={"paths": paths, "data_dir": params.data_dir or demo_data})
    meta = run_meta("optimize-all", dict(flow_run.parameters))
    if params.demo_zoo_if_empty and is_empty(params.paths):
        ensure_demo_zoo(params.paths[0])
        meta["notes"].append(f"{params.paths[0]} was empty: wrote the tiny demo zoo there")
    return Run(params, work, reports, meta)


def plan_variants(run: Run, options: list[VariantOptions]) -> Plan:
    """Discover the checkpoints, one job per checkpoint × variant, split into cached and to-do."""
    params = run.params
    checkpoints, rejected = discover_checkpoints(params.paths, params.cells)
    if not checkpoints:  # before anything is built: candidates were there (preflight), none usable
        raise no_checkpoint_found(params.paths, rejected, params.cells)
    run.meta["notes"] += [f"not a checkpoint: `{r['path']}`: {r['reason']}" for r in rejected]
    run.meta["notes"] += [f"`{c.path}`: {conflict}" for c in checkpoints for conflict in c.conflicts]
    jobs = plan_jobs(checkpoints, options, params.cache_settings())
    cached, todo = load_cached_results(jobs, run.results)
    source = prepare_samples(str(run.work), [c.spec for c in checkpoints], params.data_dir, params.limit)
    return Plan(jobs, cached, todo, source)


def build_stage(plan: Plan, run: Run) -> list[VariantRecord]:
    """Build (or reuse) every variant left to do, in parallel (threads or Dask)."""
    built = settle(build_variant.map(plan.todo, unmapped(str(run.work / "artifacts")), unmapped(plan.source)))
    return [rec or job.record("failed", error=err) for job, (rec, err) in zip(plan.todo, built, strict=True)]


def benchmark_stage(
    items: list[tuple[VariantRecord, CellSpec]], params: BenchmarkParams, cache_root: str | None = None
) -> list[VariantRecord]:
    """Benchmark the built variants, one at a time per device (nothing else runs during a measurement);
    the others pass through."""
    ready = [(record, spec) for record, spec in items if record.ok]
    for key in sorted({device_key(record) for record, _ in ready}):
        ensure_device_limit(key)
    futures = queued_per_key(
        lambda item, after: benchmark_variant.submit(
            item[0], item[1], params.batch_sizes, params.warmup, params.iters, device_key(item[0]),
            cache_root, wait_for=after,
        ),
        ready,
        lambda item: device_key(item[0]),
    )  # fmt: skip
    benched = [rec or r.failed(err) for (r, _), (rec, err) in zip(ready, settle(futures), strict=True)]
    return [record for record, _ in items if not record.ok] + benched


def evaluate_stage(
    items: list[tuple[VariantRecord, CellSpec]], source: EvalSource, cache_root: str
) -> list[VariantRecord]:
    """Accuracy vs fp32 (labels or agreement) of the measured variants, each cached once finished; the
    others pass through."""
    measured = [(record, spec) for record, spec in items if record.ok]
    futures = [evaluate_variant.submit(record, spec, source, cache_root) for record, spec in measured]
    evaluated = [
        rec or replace(r, accuracy={"error": err})
        for (r, _), (rec, err) in zip(measured, settle(futures), strict=True)
    ]
    return [record for record, _ in items if not record.ok] + evaluated


def report_stage(records: list[VariantRecord], run: Run) -> str:
    """Rows with the gate applied, the report on disk, MLflow, the Prefect artifacts; the report folder."""
    rows = collect_rows(records, run.meta, run.params.min_miou_ratio)
    report = write_report(rows, str(run.reports), run.meta, str(run.reports / "history"))
    tracking = log_to_mlflow(report, run.meta, run.params.log_models, run.params.track)
    publish_report(report, "optimize-all")
    log_closing_line("optimize-all", report, tracking)
    if not any(row["status"] == "ok" for row in rows):
        raise RunFailed(f"no variant succeeded; see {report.summary}")
    return str(report.dir)
