"""Optimized backends behind one Predictor: torch, torch.compile, ONNX Runtime, TensorRT; artifact store.

The artifact store and folding (torch, transformers) are imported on first use, so that the option
names (`options`, `registry`) can be checked in a command's first second, before anything heavy loads.
"""

from __future__ import annotations

import importlib
from typing import Any

from segopt_core.backends.errors import (
    ArtifactError,
    BackendUnavailable,
    CalibrationError,
    OnnxModelError,
    VerificationError,
)
from segopt_core.backends.options import (
    CalibrationOptions,
    VariantOptions,
    cpu_supports_bf16,
    default_variants,
    segformer_safe_int8,
)

__all__ = [
    "Artifact",
    "ArtifactError",
    "ArtifactStore",
    "BackendUnavailable",
    "CalibrationError",
    "CalibrationOptions",
    "FoldingError",
    "OnnxModelError",
    "VariantOptions",
    "VerificationError",
    "check_artifact",
    "cpu_supports_bf16",
    "default_variants",
    "fold_decode_head",
    "load_predictor",
    "read_metadata",
    "segformer_safe_int8",
]

_LAZY = {
    "Artifact": "artifacts",
    "ArtifactStore": "artifacts",
    "check_artifact": "artifacts",
    "load_predictor": "artifacts",
    "read_metadata": "artifacts",
    "FoldingError": "folding",
    "fold_decode_head": "folding",
}


def __getattr__(name: str) -> Any:
    """The store's and folding's names, imported when first asked for."""
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
