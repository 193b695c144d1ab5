"""MLflow for training runs: a live `on_metrics` callback on one explicit run (no global active run).

Reports are logged once they are finished (`segopt_tracking.report`); training streams its curves while the
run is going, so it holds its run open from the first step to `finish`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from segopt_tracking.store import experiment_id, probe_tracking, tracking_uri, ui_link

TRAIN_EXPERIMENT = "segopt-train"


class MlflowTrainLogger:
    """Params at start, loss/lr/validation curves per step, the best model as artifact, a final status."""

    def __init__(self, run_name: str, params: dict[str, Any], tags: dict[str, str], uri: str | None = None):
        from mlflow import MlflowClient
        from mlflow.entities import Param

        self.uri = probe_tracking(
            uri or tracking_uri()
        )  # a dead server: one line now, not minutes of retries
        self.client = MlflowClient(tracking_uri=self.uri)
        experiment = experiment_id(self.client, TRAIN_EXPERIMENT, self.uri)
        tags = {k: v for k, v in tags.items() if v}
        self.run_id = self.client.create_run(experiment, run_name=run_name, tags=tags).info.run_id
        self.link = ui_link(self.uri, experiment, self.run_id)  # the run in MLflow's model-training view
        params = {k: str(v) for k, v in params.items() if v is not None and str(v)}
        self.client.log_batch(self.run_id, params=[Param(k, v[:6000]) for k, v in params.items()])

    def __call__(self, step: int, metrics: dict[str, float]) -> None:
        """The loop's on_metrics callback: one batch write per report."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, step) for k, v in metrics.items()]
        self.client.log_batch(self.run_id, metrics=batch)

    def log_folder(self, folder: Path, artifact_path: str) -> None:
        """Upload a folder (an exported model) as run artifacts."""
        self.client.log_artifacts(self.run_id, str(folder), artifact_path)

    def finish(self, ok: bool) -> None:
        """Close the run as FINISHED or FAILED."""
        self.client.set_terminated(self.run_id, "FINISHED" if ok else "FAILED")
