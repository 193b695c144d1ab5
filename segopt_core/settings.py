"""Explicit configuration from SEGOPT_* environment variables."""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict


class SegoptSettings(BaseSettings):
    """Where segopt keeps its work; every field can be set as SEGOPT_<FIELD> in the environment."""

    model_config = SettingsConfigDict(env_prefix="SEGOPT_")

    work_dir: Path = Path("segopt-work")
    reports_dir: Path = Path("reports")
    mlflow_tracking_uri: str = "sqlite:///mlflow.db"  # MLflow 3 refuses a plain ./mlruns file store

    @property
    def artifacts_dir(self) -> Path:
        """Folder of the optimized-artifact store."""
        return self.work_dir / "artifacts"


def load_settings() -> SegoptSettings:
    """Settings read from the environment now."""
    return SegoptSettings()
