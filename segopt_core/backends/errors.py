"""Domain exceptions of the backends: skipped (unavailable), failed verification, broken artifacts."""

from __future__ import annotations

from segopt_core.errors import SegoptError


class BackendUnavailable(SegoptError, RuntimeError):
    """The variant cannot run here (no CUDA, TensorRT or provider missing): report it as skipped."""


class VerificationError(SegoptError, RuntimeError):
    """The optimized variant disagrees with the fp32 reference (or produced NaN/inf): report it as failed."""


class ArtifactError(SegoptError, RuntimeError):
    """An artifact folder is missing, truncated or not a segopt artifact."""


class ReadOnlyArtifact(ArtifactError, ValueError):
    """An artifact that would need a new file (a size compiled on first use) is read-only: the user can copy
    it or add the size where it is writable (bad input: exit 2)."""


class OnnxModelError(SegoptError, ValueError):
    """An ONNX file is not a SegFormer export segopt can run (wrong inputs/outputs, truncated)."""


class CalibrationError(SegoptError, ValueError):
    """The calibration data cannot be used (too few images, unreadable folder)."""
