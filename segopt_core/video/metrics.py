"""Temporal-consistency metrics of label sequences (static-region persistence, flow-warped TC) and GT mIoU."""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from segopt_core.evaluation.metrics import ConfusionMatrix
from segopt_core.variants import IGNORE_INDEX


def label_persistence(prev: np.ndarray, cur: np.ndarray, still: np.ndarray) -> tuple[int, int]:
    """(unchanged, total) labels among the `still` pixels of two consecutive label maps."""
    total = int(still.sum())
    return int((prev[still] == cur[still]).sum()), total


def still_pixels(prev_gray: np.ndarray, gray: np.ndarray, tau: float) -> np.ndarray:
    """Pixels whose absolute gray difference between the two frames is below τ."""
    return cv2.absdiff(prev_gray, gray) < tau


def warp_labels(labels: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Nearest-neighbour sample of labels at x + flow(x); samples falling outside the frame become 255."""
    h, w = labels.shape
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    map_x, map_y = xs + flow[..., 0], ys + flow[..., 1]
    return cv2.remap(
        labels.astype(np.uint8),
        map_x,
        map_y,
        cv2.INTER_NEAREST,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=IGNORE_INDEX,
    )


def pair_miou(a: np.ndarray, b: np.ndarray, num_classes: int) -> float | None:
    """Mean IoU between two label maps over classes present in either (255 in either map is ignored)."""
    valid = (a != IGNORE_INDEX) & (b != IGNORE_INDEX) & (a < num_classes) & (b < num_classes)
    if not valid.any():
        return None
    cm = confusion(a[valid], b[valid], num_classes)
    union = cm.sum(0) + cm.sum(1) - np.diag(cm)
    present = union > 0
    return float((np.diag(cm)[present] / union[present]).mean())


def confusion(pred: np.ndarray, label: np.ndarray, num_classes: int) -> np.ndarray:
    """num_classes² confusion counts (rows: label, columns: prediction) of valid pixel pairs."""
    index = label.astype(np.int64) * num_classes + pred.astype(np.int64)
    return np.bincount(index.ravel(), minlength=num_classes**2).reshape(num_classes, num_classes)


@dataclass
class ConsistencyMeter:
    """Accumulates both consistency measures (and GT mIoU when labels are given) for one label stream."""

    num_classes: int
    static_same: int = 0
    static_total: int = 0
    tc_sum: float = 0.0
    tc_pairs: int = 0
    gt: ConfusionMatrix | None = None
    _prev: np.ndarray | None = field(default=None, repr=False)

    def update(self, labels: np.ndarray, still: np.ndarray | None, flow: np.ndarray | None) -> None:
        """Add one frame's score-resolution labels; `still`/`flow` describe its pair with the previous one."""
        prev, self._prev = self._prev, labels
        if prev is None or prev.shape != labels.shape:
            return
        if still is not None:
            same, total = label_persistence(prev, labels, still)
            self.static_same, self.static_total = self.static_same + same, self.static_total + total
        if flow is not None:
            miou = pair_miou(labels, warp_labels(prev, flow), self.num_classes)
            if miou is not None:
                self.tc_sum, self.tc_pairs = self.tc_sum + miou, self.tc_pairs + 1

    def break_sequence(self) -> None:
        """Do not pair the next frame with the previous one (scene cut, size change)."""
        self._prev = None

    def update_gt(self, pred: np.ndarray, label: np.ndarray) -> None:
        """Add a full-resolution prediction and its ground-truth label map (255 = ignore)."""
        if self.gt is None:
            self.gt = ConfusionMatrix(self.num_classes)
        self.gt.update(pred, label)

    def summary(self) -> dict[str, float | int | None]:
        """static_persistence, flow_tc, pairs and (with ground truth) mIoU, rounded."""
        return {
            "static_persistence": _rounded(
                self.static_same / self.static_total if self.static_total else None
            ),
            "static_pixels": self.static_total,
            "flow_tc": _rounded(self.tc_sum / self.tc_pairs if self.tc_pairs else None),
            "flow_pairs": self.tc_pairs,
            "miou_gt": _rounded(self.gt.summary()["mIoU"] if self.gt is not None else None),
        }


def _rounded(value: float | None) -> float | None:
    return None if value is None or value != value else round(value, 4)  # NaN -> None (JSON-safe)
