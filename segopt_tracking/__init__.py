"""All of segopt's MLflow code, and nothing of Prefect: where runs go, a report's runs, training curves.

A layer between the pure core and the orchestration: `segopt_core` never imports MLflow, the Prefect tasks
of `tasks/` call these in a few lines, and `segopt train --mlflow` uses them without Prefect.

- `segopt_tracking.store`: the tracking URI, `probe_tracking` (seconds, before any work), UI links;
- `segopt_tracking.report`: a report's parent and nested runs (`track_report`, `untracked`, `log_report`);
- `segopt_tracking.notes`: the run descriptions;
- `segopt_tracking.train`: `MlflowTrainLogger`, training curves while the run goes.

Nothing is imported here, and MLflow only inside the functions that talk to it, so the CLI can probe the
tracking URI before it imports pandas, torch or MLflow.
"""
