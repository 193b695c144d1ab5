"""Session-wide fixtures: tiny random-init models built from config, never downloads."""

from __future__ import annotations

import os

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import atexit  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402

# Each pytest process (each xdist worker) gets its own device-lock folder, so that a test holding the CPU
# slot on purpose never makes another worker's benchmark wait; subprocesses inherit it.
if "SEGOPT_LOCK_DIR" not in os.environ:
    os.environ["SEGOPT_LOCK_DIR"] = tempfile.mkdtemp(prefix="segopt-test-locks-")
    atexit.register(shutil.rmtree, os.environ["SEGOPT_LOCK_DIR"], True)

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


def pytest_configure(config: pytest.Config) -> None:
    """Under xdist (`-n auto --dist loadfile`), hand out files in collection order, which puts slow first."""
    if hasattr(config.option, "loadscopereorder"):
        config.option.loadscopereorder = False  # xdist's default orders files by their number of tests


# The longest files (measured: 4-6 min each on 2 busy cores, most of the suite's tail), handed out first.
LONGEST_FILES = (
    "tests/flows/test_recovery_cli.py",
    "tests/core/backends/test_backend_aoti.py",
    "tests/core/backends/test_backend_variants.py",
)


def _file_rank(path: str, slow_files: set[str]) -> int:
    """0 for the longest files, 1 for other files with `slow` tests, 2 for the rest."""
    if path in LONGEST_FILES:
        return 0
    return 1 if path in slow_files else 2


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Long files first (a long file started last is the whole run's tail on two workers; each file's
    tests stay together and in order); skip `gpu` tests with a reason on machines without CUDA."""
    first_index: dict[str, int] = {}
    slow_files: set[str] = set()
    for index, item in enumerate(items):
        path = item.nodeid.split("::")[0]
        first_index.setdefault(path, index)
        if item.get_closest_marker("slow"):
            slow_files.add(path)

    def order(item: pytest.Item) -> tuple[int, int]:
        path = item.nodeid.split("::")[0]
        return _file_rank(path, slow_files), first_index[path]

    items.sort(key=order)
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
