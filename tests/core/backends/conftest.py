"""Backend fixtures shared across test modules: a compiled artifact costs a C++ compile, so build it once."""

from __future__ import annotations

import os

import numpy as np
import pytest

from segopt_core.backends import Artifact, ArtifactStore, VariantOptions
from segopt_core.backends.verify import verification_inputs
from segopt_core.lifecycle import file_lock

COMPILED_FP32 = VariantOptions("torch-compile", "fp32", fold_decode_head=True)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> ArtifactStore:
    """An artifact store per test module."""
    return ArtifactStore(tmp_path_factory.mktemp("artifacts"))


@pytest.fixture(scope="module")
def calib_images() -> np.ndarray:
    """Eight image-like calibration inputs at the tiny cell's 64x64."""
    return verification_inputs((8, 3, 64, 64), seed=123)


@pytest.fixture(scope="session")
def compiled_fp32(tmp_path_factory, tiny_model, tiny_spec) -> Artifact:
    """The tiny model's torch-compile fp32 artifact (an AOTInductor package); copy it before changing it.

    Under xdist the workers share one store and build it under one lock: the second worker waits, then
    reuses it (one compile instead of one per worker)."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return ArtifactStore(tmp_path_factory.mktemp("compiled")).get_or_build(
            tiny_model, COMPILED_FP32, spec=tiny_spec
        )
    shared = tmp_path_factory.getbasetemp().parent  # the run's folder, above each worker's own
    with file_lock(shared / "compiled-shared.lock"):
        return ArtifactStore(shared / "compiled-shared").get_or_build(
            tiny_model, COMPILED_FP32, spec=tiny_spec
        )
