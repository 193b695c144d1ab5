"""Reports of the orchestration flows: results.parquet, the append-only history, summary.md and plots."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from segopt_core import lifecycle
from segopt_core.atomic import write_text_atomic
from segopt_core.reports.history import (
    append_history,
    compare_with_history,
    read_history,
    write_parquet_atomic,
)
from segopt_core.reports.markdown import render_summary, set_tracking_note
from segopt_core.reports.plots import write_plots
from segopt_core.reports.schema import frame_to_table, rows_to_frame

__all__ = ["RegressionPolicy", "Report", "read_results", "set_tracking_note", "write_report"]


@dataclass(frozen=True)
class RegressionPolicy:
    """Flag a row when its median latency exceeds the median of its last `window` runs by > `threshold`."""

    window: int = 5
    threshold: float = 0.10

    def __post_init__(self) -> None:
        if self.window < 1 or self.threshold <= 0:
            raise ValueError(f"window must be >= 1 and threshold > 0, got {self.window}, {self.threshold}")


@dataclass(frozen=True)
class Report:
    """Where one run's report lives; `regressions` counts flagged rows (nightly only)."""

    dir: Path
    results: Path
    summary: Path
    plots: list[Path] = field(default_factory=list)
    history: Path | None = None
    comparison: Path | None = None
    regressions: int = 0


def read_results(path: str | Path) -> pd.DataFrame:
    """A results.parquet (or a report folder) as a DataFrame."""
    from segopt_core.reports.history import pq

    path = Path(path)
    path = path / "results.parquet" if path.is_dir() else path
    return pq.read_table(path).to_pandas(types_mapper=pd.ArrowDtype)


def write_report(
    rows: Sequence[Mapping[str, Any]],
    report_root: str | Path,
    meta: Mapping[str, Any],
    history_root: str | Path | None = None,
    regression: RegressionPolicy | None = None,
) -> Report:
    """Write `report_root/<run_id>/` (results.parquet, plots, summary.md), append to the history, compare.

    The folder is written as `.tmp-<run_id>-<host hash>-<pid>` and renamed into place when complete, so a run
    that fails (a full disk) or is killed while writing never leaves a half report under its real name; the
    next report removes the temp folders whose process ran on its machine and is gone, and other machines'
    (a report folder shared between machines) only once they are a day old. The history entry, if written,
    stays: it holds this run's measurements, which a re-run reuses from the result cache and leaves out of
    the history.
    """
    out = Path(report_root) / meta["run_id"]
    if out.exists():  # the same run writing again: in place
        return _write_report(rows, out, meta, history_root, regression)
    _remove_dead_temp_folders(Path(report_root))
    tmp = Path(report_root) / f".tmp-{meta['run_id']}-{lifecycle.owner_tag()}"
    try:
        report = _write_report(rows, tmp, meta, history_root, regression)
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    moved = {"results": out / report.results.name, "summary": out / report.summary.name}
    moved["comparison"] = report.comparison and out / report.comparison.name
    return dataclasses.replace(report, dir=out, plots=[out / p.name for p in report.plots], **moved)


def _remove_dead_temp_folders(report_root: Path) -> None:
    """Temp folders of reports nobody writes any more (a killed run on this machine, or a day old)."""
    for folder in report_root.glob(".tmp-*"):
        if lifecycle.abandoned(folder):
            shutil.rmtree(folder, ignore_errors=True)


def _write_report(
    rows: Sequence[Mapping[str, Any]],
    out: Path,
    meta: Mapping[str, Any],
    history_root: str | Path | None,
    regression: RegressionPolicy | None,
) -> Report:
    run_id = meta["run_id"]
    frame = rows_to_frame(rows)
    results = write_parquet_atomic(frame_to_table(frame), out / "results.parquet")
    history = comparison_path = comparison = None
    if history_root is not None:
        history = append_history(frame, history_root, run_id, dt.datetime.now(dt.UTC).date())
        if regression is not None:
            comparison = compare_with_history(frame, read_history(history_root), regression.window,
                                              regression.threshold)  # fmt: skip
            comparison_path = out / "comparison.csv"
            write_text_atomic(comparison_path, comparison.to_csv(index=False))
    plots = write_plots(frame, out, gate=(meta.get("params") or {}).get("min_miou_ratio"))
    summary = write_text_atomic(out / "summary.md", render_summary(frame, meta, plots, comparison))
    flagged = 0 if comparison is None else int(comparison["regression"].sum())
    return Report(out, results, summary, plots, history, comparison_path, flagged)
