"""All of segopt's MLflow code, and nothing of Prefect: where runs go, a report's runs, training curves.

A layer between the pure core and the orchestration: `segopt_core` never imports MLflow, the Prefect tasks
of `tasks/` call these in a few lines, and `segopt train --mlflow` uses them without Prefect. MLflow itself
is imported inside the functions that talk to it, so importing this package stays cheap.
"""

from __future__ import annotations

from segopt_tracking.report import TrackingOutcome, log_report, track_report, untracked
from segopt_tracking.store import TrackingUnavailable, probe_tracking, tracking_uri, ui_link
from segopt_tracking.train import MlflowTrainLogger

__all__ = [
    "MlflowTrainLogger",
    "TrackingOutcome",
    "TrackingUnavailable",
    "log_report",
    "probe_tracking",
    "track_report",
    "tracking_uri",
    "ui_link",
    "untracked",
]
