"""Prefect task: the report's MLflow runs (all MLflow code lives in `segopt_tracking`)."""

from __future__ import annotations

from prefect import task

from segopt_core.reports import Report
from segopt_tracking.report import TrackingOutcome, track_report, untracked
from tasks.logs import run_logger


@task(name="log-to-mlflow", task_run_name="log-to-mlflow")
def log_to_mlflow(
    report: Report, meta: dict, log_models: bool = False, track: bool = True
) -> TrackingOutcome:
    """Log the report to MLflow (or, untracked, say so); a failure is said in summary.md and the log."""
    outcome = track_report(report, meta, log_models) if track else untracked(report)
    log = run_logger("tracking")
    (log.info if outcome.run_id else log.warning)(outcome.note)
    return outcome
