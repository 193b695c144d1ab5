"""The mmseg inference protocol (whole/slide), streaming metrics and evaluation."""

from __future__ import annotations

from segopt_core.evaluation.evaluate import (
    EvalResult,
    EvaluationError,
    compare_predictions,
    evaluate,
    protocol_of,
)
from segopt_core.evaluation.inference import (
    InferenceError,
    predict_logits,
    predict_logits_batch,
    predict_mask,
    predict_masks_batch,
    slide_windows,
)
from segopt_core.evaluation.metrics import ConfusionMatrix, MetricsError

__all__ = [
    "ConfusionMatrix",
    "EvalResult",
    "EvaluationError",
    "InferenceError",
    "MetricsError",
    "compare_predictions",
    "evaluate",
    "predict_logits",
    "predict_logits_batch",
    "predict_mask",
    "predict_masks_batch",
    "protocol_of",
    "slide_windows",
]
