"""The logger a task writes to: Prefect's run logger inside a run, a plain logger outside (`task.fn()`);
and a run log that says what happened rather than one "Finished in state Completed()" per task."""

from __future__ import annotations

import logging

from prefect import get_run_logger
from prefect.exceptions import MissingContextError

from segopt_core.reports import Report, read_results
from segopt_core.reports.recommend import closing_line
from segopt_tracking import TrackingOutcome


def run_logger(name: str) -> logging.Logger | logging.LoggerAdapter:
    """Prefect's run logger in a flow or task run; `segopt.<name>` when called outside one."""
    try:
        return get_run_logger()
    except MissingContextError:  # called through .fn() outside a run
        return logging.getLogger(f"segopt.{name}")


class QuietCompletedTasks(logging.Filter):
    """Drops the INFO line Prefect logs when a task run completes (a flow run logged 51 of its 66 lines
    so); failed, crashed and cancelled task runs still log theirs, at ERROR."""

    def filter(self, record: logging.LogRecord) -> bool:
        completed = str(record.msg).startswith("Finished in state Completed")
        return not (completed and record.levelno == logging.INFO)


def quiet_completed_tasks() -> None:
    """Install `QuietCompletedTasks` on Prefect's task-run logger (console and API alike), once."""
    logger = logging.getLogger("prefect.task_runs")
    if not any(isinstance(f, QuietCompletedTasks) for f in logger.filters):
        logger.addFilter(QuietCompletedTasks())


quiet_completed_tasks()  # at import: every flow imports its tasks, deployment runs by a worker included


def log_closing_line(flow_name: str, report: Report, tracking: TrackingOutcome) -> str:
    """End the run log with what to ship (nightly: the regressions), the report and the MLflow link."""
    regressions = report.regressions if flow_name == "nightly-benchmark" else None
    line = closing_line(
        read_results(report.results), report.summary, tracking.link or tracking.note, regressions
    )
    run_logger(flow_name).info(line)
    return line
