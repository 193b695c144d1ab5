"""Flow `nightly-benchmark`: re-benchmark stored artifacts → history → compare with previous runs → flag
regressions → report → MLflow."""

from __future__ import annotations

from pathlib import Path

from prefect import flow
from prefect.runtime import flow_run

from flows.naming import run_options
from flows.optimize_all import benchmark_stage, locals_of, run_meta
from flows.parameters import described_by, preflight
from flows.runners import runner_from_env
from segopt_core.batches import DEFAULT_BATCH_SIZES
from segopt_core.pipeline.gate import DEFAULT_MIN_MIOU_RATIO
from segopt_core.pipeline.params import NIGHTLY_DEFAULTS as DEFAULTS
from segopt_core.pipeline.params import NightlyParams
from segopt_core.reports import RegressionPolicy
from segopt_core.settings import load_settings
from tasks.logs import log_closing_line
from tasks.report import collect_rows, publish_report, write_report
from tasks.store import list_artifacts
from tasks.tracking import log_to_mlflow


class RegressionDetected(RuntimeError):
    """A variant got slower than its recent history by more than the threshold."""


@flow(name="nightly-benchmark", **run_options(), task_runner=runner_from_env(), log_prints=True)
@described_by(NightlyParams)
def nightly_benchmark(
    cells: list[str] = (),
    variants: list[str] = (),
    batch_sizes: list[int] = DEFAULT_BATCH_SIZES,
    warmup: int = DEFAULTS.warmup,
    iters: int = DEFAULTS.iters,
    window: int = DEFAULTS.window,
    threshold: float = DEFAULTS.threshold,
    fail_on_regression: bool = DEFAULTS.fail_on_regression,
    work_dir: str | None = None,
    report_dir: str | None = None,
    track: bool = DEFAULTS.track,
) -> str:
    """Re-benchmark every stored artifact, append to the history, flag regressions; returns the report dir.

    A row regresses when its median latency exceeds the median of its last `window` runs (same cell,
    checkpoint, variant, batch size and machine) by more than `threshold` (0.10 = 10 %).
    """
    params = NightlyParams.from_flow(**locals_of(nightly_benchmark, locals()))  # bad values stop here
    preflight(params)  # before anything is measured: the work folder holds a store, variant names exist
    work = params.work()
    reports = Path(params.report_dir or load_settings().reports_dir)
    policy = RegressionPolicy(params.window, params.threshold)
    meta = run_meta("nightly-benchmark", dict(flow_run.parameters))

    stored = list_artifacts(str(work / "artifacts"), str(work / "results"), params.cells, params.variants)
    if not stored:
        meta["notes"].append(f"no stored artifact under {work / 'artifacts'}: run optimize-all first")
        print(f"warning: {meta['notes'][-1]}")  # said on the console too, not only in the report
    records = benchmark_stage(stored, params)

    rows = collect_rows(records, meta, DEFAULT_MIN_MIOU_RATIO)  # no accuracy in nightly runs: the gate idles
    report = write_report(rows, str(reports), meta, str(reports / "history"), policy)
    tracking = log_to_mlflow(report, meta, track=params.track)
    publish_report(report, "nightly-benchmark")
    log_closing_line("nightly-benchmark", report, tracking)
    if params.fail_on_regression and report.regressions:
        raise RegressionDetected(f"{report.regressions} benchmark row(s) regressed; see {report.summary}")
    return str(report.dir)
