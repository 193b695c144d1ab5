"""Explicit configuration from SEGOPT_* environment variables."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from pydantic import field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class SegoptSettings(BaseSettings):
    """Where segopt keeps its work; every field can be set as SEGOPT_<FIELD> in the environment."""

    model_config = SettingsConfigDict(env_prefix="SEGOPT_")

    work_dir: Path = Path("segopt-work")
    reports_dir: Path = Path("reports")
    mlflow_tracking_uri: str = "sqlite:///mlflow.db"  # MLflow 3 refuses a plain ./mlruns file store
    task_runner: str = "threads"  # where flows run mapped tasks: "threads" | "dask" (flows/runners.py)
    dask_address: str | None = None  # an existing Dask scheduler, e.g. tcp://host:8786 (else a local cluster)
    lock_dir: Path | None = None  # device lock files (None: <tmp>/segopt-locks, shared by every user run)

    @field_validator("dask_address", "lock_dir", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        return None if value == "" else value  # SEGOPT_LOCK_DIR= (empty) means the default, not "."

    @property
    def device_lock_dir(self) -> Path:
        """Folder of the per-device benchmark lock files."""
        return self.lock_dir or Path(tempfile.gettempdir()) / "segopt-locks"

    @property
    def artifacts_dir(self) -> Path:
        """Folder of the optimized-artifact store."""
        return self.work_dir / "artifacts"


def load_settings() -> SegoptSettings:
    """Settings read from the environment now."""
    return SegoptSettings()
