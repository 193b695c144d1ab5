"""Optimized backends behind one Predictor: torch, torch.compile, ONNX Runtime, TensorRT; artifact store."""

from __future__ import annotations

from segopt_core.backends.artifacts import (
    Artifact,
    ArtifactStore,
    check_artifact,
    load_predictor,
    read_metadata,
)
from segopt_core.backends.errors import (
    ArtifactError,
    BackendUnavailable,
    CalibrationError,
    OnnxModelError,
    VerificationError,
)
from segopt_core.backends.folding import FoldingError, fold_decode_head
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
