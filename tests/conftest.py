"""Session-wide fixtures: tiny random-init models built from config, never downloads."""

from __future__ import annotations

import os

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

from segopt_core.models import LogitsModel, build_hf_model  # noqa: E402
from segopt_core.variants import CellSpec, tiny_cell  # noqa: E402

torch.set_num_threads(2)


def has_cuda() -> bool:
    """True when a CUDA device is usable."""
    return torch.cuda.is_available()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip `gpu` tests with a clear reason on machines without CUDA."""
    if has_cuda():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device (none found: torch.cuda.is_available() is False)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def tiny_spec() -> CellSpec:
    """A tiny ADE20K-like custom cell at 64x64 with 150 classes."""
    return tiny_cell("ade20k", 64)


@pytest.fixture(scope="session")
def tiny_city_spec() -> CellSpec:
    """A tiny Cityscapes-like custom cell at 64x64 with 19 classes (slide inference)."""
    return tiny_cell("cityscapes", 64)


@pytest.fixture(scope="session")
def tiny_hf_model(tiny_spec):
    """A random-init transformers SegFormer for the tiny cell (do not mutate)."""
    return build_hf_model(tiny_spec, seed=0)


@pytest.fixture(scope="session")
def tiny_model(tiny_hf_model) -> LogitsModel:
    """The tiny SegFormer behind segopt's LogitsModel interface (do not mutate)."""
    return LogitsModel(tiny_hf_model).eval()


@pytest.fixture
def mlflow_uri(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh MLflow SQLite tracking store for one test; fails the test if a run is left open."""
    import mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    yield uri
    leftover = mlflow.active_run()
    while mlflow.active_run() is not None:
        mlflow.end_run()
    mlflow.set_tracking_uri(None)
    assert leftover is None, f"MLflow run {leftover.info.run_id} was left open by the test"
