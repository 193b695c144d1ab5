"""The logger a task writes to: Prefect's run logger inside a run, a plain logger outside (`task.fn()`);
and a run log that says what happened rather than one "Finished in state Completed()" per task."""

from __future__ import annotations

import logging

from prefect import get_run_logger
from prefect.exceptions import MissingContextError

from segopt_core.reports import Report, read_results
from segopt_core.reports.recommend import closing_line
from segopt_tracking.report import TrackingOutcome


def run_logger(name: str) -> logging.Logger | logging.LoggerAdapter:
    """Prefect's run logger in a flow or task run; `segopt.<name>` when called outside one."""
    try:
        return get_run_logger()
    except MissingContextError:  # called through .fn() outside a run
        return logging.getLogger(f"segopt.{name}")


class QuietRunLog(logging.Filter):
    """Drops Prefect's INFO lines that say nothing: "Finished in state Completed()" of each task run and of
    the flow run (a flow run logged 51 of its 66 lines so, and the flow's would follow segopt's closing
    line), and the two lines around segopt's crash-detection hook. Failed, crashed and cancelled runs still
    log theirs, at ERROR."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.INFO:
            return True
        text = str(record.msg)
        hook = "'crash_detection_hook'" in text and text.startswith(("Running hook", "Hook "))
        return not (hook or text.startswith("Finished in state Completed"))


def quiet_run_log() -> None:
    """Install `QuietRunLog` on Prefect's task-run and flow-run loggers (console and API alike), once."""
    for name in ("prefect.task_runs", "prefect.flow_runs", "prefect.engine"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, QuietRunLog) for f in logger.filters):
            logger.addFilter(QuietRunLog())


quiet_run_log()  # at import: every flow imports its tasks, deployment runs by a worker included


def log_closing_line(flow_name: str, report: Report, tracking: TrackingOutcome) -> str:
    """End the run log with what to ship (nightly: the regressions), the report and the MLflow link."""
    regressions = report.regressions if flow_name == "nightly-benchmark" else None
    mlflow = tracking.link or tracking.note.removeprefix("MLflow: ").replace(
        "**", ""
    )  # a log line, not Markdown
    line = closing_line(read_results(report.results), report.summary, mlflow, regressions)
    run_logger(flow_name).info(line)
    return line
