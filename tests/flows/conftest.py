"""Fixtures for flow tests: one real Prefect test server per session, a fresh MLflow SQLite store per test."""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """A real temporary Prefect API (SQLite, in-process server) for the whole session."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    from prefect.testing.utilities import prefect_test_harness

    # the CI machine is small and shared: give the test server time to start
    with prefect_test_harness(server_startup_timeout=180):
        yield


def write_tiny_checkpoint(path: Path, seed: int = 0, nan: bool = False) -> Path:
    """A tiny SegFormer .safetensors; nan=True makes every weight NaN (discoverable but unbuildable)."""
    from segopt_core.checkpoints import write_checkpoint
    from segopt_core.models import build_hf_model
    from segopt_core.variants import tiny_cell

    spec = tiny_cell("ade20k", 64)
    write_checkpoint(build_hf_model(spec, seed), spec, path, "safetensors")
    if nan:
        raw = bytearray(path.read_bytes())
        start = 8 + struct.unpack("<Q", raw[:8])[0]  # safetensors: u64 header length, header, then data
        raw[start:] = b"\xff" * (len(raw) - start)
        path.write_bytes(bytes(raw))
    return path


@pytest.fixture(scope="session")
def tiny_checkpoint() -> Callable[..., Path]:
    """write_tiny_checkpoint(path, seed=0, nan=False): a tiny ADE20K-like checkpoint for flow tests."""
    return write_tiny_checkpoint
