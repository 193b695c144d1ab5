"""Where MLflow runs go: the tracking URI, a quick probe of it, experiments, and links into the MLflow UI."""

from __future__ import annotations

import os
import socket
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from segopt_core.errors import SegoptError
from segopt_core.settings import load_settings

PROBE_TIMEOUT_S = 3.0
LOCAL_UI = "http://127.0.0.1:5000"  # where `mlflow ui` serves a SQLite store by default
# MLflow 3 opens an experiment in its GenAI view unless the URL asks for the classic model-training one
CLASSIC_VIEW = "workflowType=machine_learning"
UNTRACKED_HINT = "or run untracked (--untracked; flow parameter track=false)"


class TrackingUnavailable(SegoptError, ValueError):
    """The tracking URI cannot take runs (server down, database folder missing or read-only)."""


def tracking_uri() -> str:
    """MLFLOW_TRACKING_URI when set, else SEGOPT_MLFLOW_TRACKING_URI (default: sqlite:///mlflow.db here)."""
    return os.environ.get("MLFLOW_TRACKING_URI") or load_settings().mlflow_tracking_uri


def sqlite_path(uri: str) -> str | None:
    """The database file of a sqlite:/// tracking URI, else None."""
    return uri.removeprefix("sqlite:///") if uri.startswith("sqlite:///") and ":memory:" not in uri else None


def probe_tracking(uri: str | None = None, timeout_s: float = PROBE_TIMEOUT_S) -> str:
    """The URI when it can take runs; TrackingUnavailable (one line, what to do) within seconds when not.

    MLflow's own client retries an unreachable server for minutes; this asks once, before any work.
    """
    uri = uri or tracking_uri()
    parsed = urlparse(uri)
    if parsed.scheme in ("http", "https"):
        _probe_server(uri, timeout_s)
    elif (db := sqlite_path(uri)) is not None:
        folder = Path(db).resolve().parent
        if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
            problem = "does not exist" if not folder.is_dir() else "is not writable"
            raise TrackingUnavailable(
                f"MLflow tracking database {uri}: folder {folder} {problem}; fix MLFLOW_TRACKING_URI "
                f"{UNTRACKED_HINT}"
            )
    elif parsed.hostname and parsed.port:  # e.g. postgresql://host:5432/db: is anything listening?
        _probe_port(uri, parsed.hostname, parsed.port, timeout_s)
    return uri


def _probe_server(uri: str, timeout_s: float) -> None:
    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout_s):
            return
    except urllib.error.HTTPError:  # it answered: a server is there (a proxy may not route /health)
        return
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise TrackingUnavailable(
            f"MLflow tracking server {uri} is not reachable ({reason}); start it, point "
            f"MLFLOW_TRACKING_URI at a running one {UNTRACKED_HINT}"
        ) from None


def _probe_port(uri: str, host: str, port: int, timeout_s: float) -> None:
    try:
        socket.create_connection((host, port), timeout=timeout_s).close()
    except OSError as exc:
        raise TrackingUnavailable(
            f"MLflow tracking store {uri} is not reachable ({exc}); fix MLFLOW_TRACKING_URI {UNTRACKED_HINT}"
        ) from None


def artifact_root(uri: str) -> str | None:
    """For a SQLite store, keep run artifacts next to the database (not in ./mlruns of whatever cwd)."""
    if not uri.startswith("sqlite:///"):
        return None
    db = Path(urlparse(uri).path if uri.startswith("sqlite:////") else uri[len("sqlite:///") :])
    return (db.resolve().parent / "mlartifacts").as_uri()


def experiment_id(client: Any, name: str, uri: str) -> str:
    """The id of the named experiment, created (artifacts beside a SQLite database) when missing."""
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    return client.create_experiment(name, artifact_location=artifact_root(uri))


def ui_server(uri: str) -> str:
    """The MLflow UI that shows this store: the server itself, or `mlflow ui` on 127.0.0.1:5000."""
    return uri.rstrip("/") if uri.startswith(("http://", "https://")) else LOCAL_UI


def ui_page(experiment: str, run_id: str | None = None) -> str:
    """The UI's page of a run (or of the experiment's runs table) in MLflow's classic model-training view."""
    return f"#/experiments/{experiment}/runs" + (f"/{run_id}" if run_id else "") + f"?{CLASSIC_VIEW}"


def ui_link(uri: str, experiment: str, run_id: str | None = None) -> str:
    """A link that opens the run (or the experiment's runs table) in MLflow's classic model-training view."""
    return f"{ui_server(uri)}/{ui_page(experiment, run_id)}"


def ui_command(uri: str) -> str | None:
    """The command that serves a local store's UI (None for a tracking server: it serves its own)."""
    if uri.startswith(("http://", "https://")):
        return None
    return f"mlflow ui --backend-store-uri {uri} --host 127.0.0.1 --port 5000"
