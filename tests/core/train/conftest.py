"""A small synthetic ADE20K-layout dataset shared by the training tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def synth_ade(tmp_path_factory) -> Path:
    """8 train + 2 val synthetic street scenes at 64x64 in the ADE20K layout."""
    from segopt_core.data import synth_dataset

    return synth_dataset(tmp_path_factory.mktemp("train-data") / "ade", "ade20k", 8, 2, size=(64, 64), seed=0)


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Single-threaded training tests: on the shared 2-core CI box two intra-op threads ran ~8x slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
