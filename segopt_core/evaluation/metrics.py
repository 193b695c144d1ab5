"""Streaming confusion matrix with mmseg's IoU semantics (aAcc, mIoU, mAcc, per-class IoU/accuracy)."""

from __future__ import annotations

import math

import numpy as np

from segopt_core.errors import SegoptError
from segopt_core.variants import IGNORE_INDEX


class MetricsError(SegoptError, ValueError):
    """Predictions or labels that do not fit the confusion matrix."""


class ConfusionMatrix:
    """Pixel counts per (label, prediction) pair, accumulated image by image with np.bincount."""

    def __init__(self, num_classes: int, ignore_index: int = IGNORE_INDEX) -> None:
        if num_classes < 1:
            raise MetricsError(f"num_classes must be positive, got {num_classes}")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.matrix = np.zeros((num_classes, num_classes), dtype=np.int64)  # rows: label, cols: prediction

    def update(self, pred: np.ndarray, label: np.ndarray) -> None:
        """Add one prediction/label pair of the same shape; label pixels equal to ignore_index are skipped."""
        if pred.shape != label.shape:
            raise MetricsError(f"prediction shape {pred.shape} differs from label shape {label.shape}")
        keep = label != self.ignore_index
        label_kept = label[keep].astype(np.int64)
        pred_kept = pred[keep].astype(np.int64)
        self._check_range(label_kept, "label")
        self._check_range(pred_kept, "prediction")
        counts = np.bincount(label_kept * self.num_classes + pred_kept, minlength=self.num_classes**2)
        self.matrix += counts.reshape(self.num_classes, self.num_classes)

    def _check_range(self, values: np.ndarray, what: str) -> None:
        if values.size and (values.min() < 0 or values.max() >= self.num_classes):
            bad = values[(values < 0) | (values >= self.num_classes)][0]
            raise MetricsError(
                f"{what} value {int(bad)} outside 0..{self.num_classes - 1} "
                f"(ignore index {self.ignore_index}); model and dataset label spaces differ"
            )

    def merge(self, other: ConfusionMatrix) -> ConfusionMatrix:
        """Add another matrix of the same size into this one (returns self)."""
        if other.num_classes != self.num_classes:
            raise MetricsError(f"cannot merge {other.num_classes}-class into {self.num_classes}-class matrix")
        self.matrix += other.matrix
        return self

    def summary(self) -> dict:
        """aAcc, mIoU, mAcc (fractions 0..1) and per-class IoU/accuracy lists (NaN where undefined).

        As mmseg: IoU = intersection / union, NaN when a class is absent from both labels and predictions;
        accuracy = intersection / label area, NaN when the class has no labelled pixel; means are nanmeans.
        """
        intersect = np.diag(self.matrix).astype(np.float64)
        area_label = self.matrix.sum(axis=1).astype(np.float64)
        area_pred = self.matrix.sum(axis=0).astype(np.float64)
        union = area_label + area_pred - intersect
        with np.errstate(divide="ignore", invalid="ignore"):
            iou = np.where(union > 0, intersect / union, np.nan)
            acc = np.where(area_label > 0, intersect / area_label, np.nan)
        total = area_label.sum()
        return {
            "aAcc": float(intersect.sum() / total) if total else math.nan,
            "mIoU": _nanmean(iou),
            "mAcc": _nanmean(acc),
            "per_class_iou": [float(v) for v in iou],
            "per_class_acc": [float(v) for v in acc],
            "n_pixels": int(total),
        }


def _nanmean(values: np.ndarray) -> float:
    """Mean over the defined entries; NaN when none is defined (without numpy's warning)."""
    defined = values[~np.isnan(values)]
    return float(defined.mean()) if defined.size else math.nan
