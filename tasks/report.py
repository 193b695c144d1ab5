"""Prefect tasks: result rows from records, the report on disk, and its Prefect artifacts."""

from __future__ import annotations

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from segopt_core import reports
from segopt_core.atomic import is_disk_full
from segopt_core.pipeline.gate import AccuracyGate
from segopt_core.pipeline.record import VariantRecord
from segopt_core.pipeline.results import records_to_rows
from segopt_core.reports import RegressionPolicy, Report, read_results
from segopt_core.reports.markdown import artifact_markdown, results_table


@task(name="collect-rows", task_run_name="collect-rows")
def collect_rows(records: list[VariantRecord], run: dict, min_miou_ratio: float) -> list[dict]:
    """One result row per variant × batch size, with speedups and the accuracy gate applied."""
    return records_to_rows(records, run, AccuracyGate(min_miou_ratio))


@task(name="write-report", task_run_name="write-report")
def write_report(
    rows: list[dict],
    report_root: str,
    meta: dict,
    history_root: str,
    regression: RegressionPolicy | None = None,
) -> Report:
    """results.parquet, plots and summary.md under report_root/<run_id>/, plus the history entry."""
    try:
        return reports.write_report(rows, report_root, meta, history_root, regression)
    except OSError as exc:
        if not is_disk_full(exc):
            raise
        raise OSError(exc.errno, f"report {report_root}: no space left on device; free some space or "
                      "choose another --report-dir") from None  # fmt: skip


@task(name="publish-report", task_run_name="publish-report")
def publish_report(report: Report, flow_name: str) -> None:
    """The summary (plots inlined) as a Prefect Markdown artifact and the key columns as a table artifact."""
    markdown = artifact_markdown(report.summary.read_text(), report.dir, report.plots)
    what = f"segopt {flow_name} {report.dir.name}"
    description = f"{what}: recommendation, accuracy and speed per variant, plots"
    create_markdown_artifact(markdown=markdown, key=f"{flow_name}-summary", description=description)
    table = results_table(read_results(report.results))
    create_table_artifact(table=table, key=f"{flow_name}-results",
                          description=f"{what}: one row per model, variant and batch size")  # fmt: skip
