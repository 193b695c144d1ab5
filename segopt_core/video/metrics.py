"""Temporal-consistency metrics of label sequences and GT mIoU.

segopt's own (static-region persistence, flow-warped pair mIoU) beside the standard ones: ETC's temporal
consistency (Liu et al., ECCV 2020) and, with ground truth, VSPW's video consistency VC_8 / VC_16
(Miao et al., CVPR 2021). All at score resolution; the flow is `segopt_core.video.flow.FLOW_METHOD`.
"""

from __future__ import annotations

from collections import deque
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


class EtcConsistency:
    """ETC's TC: per class, intersections and unions of P_t and the flow-warped P_(t+1) accumulated over the
    clip, then IoU averaged over the classes seen (255 = out of frame, ignored)."""

    def __init__(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.intersection = np.zeros(num_classes, np.int64)
        self.union = np.zeros(num_classes, np.int64)
        self.pairs = 0

    def add(self, labels: np.ndarray, next_warped: np.ndarray) -> None:
        """One pair: P_t and P_(t+1) warped onto frame t."""
        valid = (labels < self.num_classes) & (next_warped < self.num_classes)
        cm = confusion(next_warped[valid], labels[valid], self.num_classes)
        inter = np.diag(cm)
        self.intersection += inter
        self.union += cm.sum(0) + cm.sum(1) - inter
        self.pairs += 1

    def value(self) -> float | None:
        """Mean IoU over classes with a non-empty union; None before the first pair."""
        seen = self.union > 0
        return float((self.intersection[seen] / self.union[seen]).mean()) if seen.any() else None


class VideoConsistency:
    """VSPW's VC_n: over every window of n consecutive frames, the share of pixels whose ground truth stays
    the same class through the window where the prediction stays the same too; the mean over windows.
    Windows do not span a scene cut; ignore (255) pixels are left out of the ground-truth set."""

    def __init__(self, n: int) -> None:
        self.n = n
        self._pairs: deque[tuple[np.ndarray, np.ndarray]] = deque(maxlen=n - 1)
        self._prev: tuple[np.ndarray, np.ndarray] | None = None
        self.total = 0.0
        self.windows = 0

    def add(self, gt: np.ndarray, pred: np.ndarray) -> None:
        """The next frame's ground truth and prediction (same size)."""
        prev, self._prev = self._prev, (gt, pred)
        if prev is None or prev[0].shape != gt.shape:
            self._pairs.clear()
            return
        self._pairs.append(((gt == prev[0]) & (gt != IGNORE_INDEX), pred == prev[1]))
        if len(self._pairs) == self.n - 1:
            gt_same = np.logical_and.reduce([g for g, _ in self._pairs])
            pred_same = np.logical_and.reduce([p for _, p in self._pairs])
            count = int(gt_same.sum())
            if count:
                self.total += int((gt_same & pred_same).sum()) / count
                self.windows += 1

    def break_sequence(self) -> None:
        """The next frame starts a new clip."""
        self._prev = None
        self._pairs.clear()

    def value(self) -> float | None:
        """Mean over windows; None before the first full window."""
        return self.total / self.windows if self.windows else None


@dataclass
class ConsistencyMeter:
    """Accumulates both consistency measures (and GT mIoU when labels are given) for one label stream."""

    num_classes: int
    static_same: int = 0
    static_total: int = 0
    tc_sum: float = 0.0
    tc_pairs: int = 0
    gt: ConfusionMatrix | None = None
    etc: EtcConsistency | None = None
    vc: tuple[VideoConsistency, ...] = ()
    _prev: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.etc = EtcConsistency(self.num_classes)
        self.vc = (VideoConsistency(8), VideoConsistency(16))

    def update(
        self,
        labels: np.ndarray,
        still: np.ndarray | None,
        flow: np.ndarray | None,
        forward: np.ndarray | None = None,
        gt: np.ndarray | None = None,
    ) -> None:
        """Add one frame's score-resolution labels; `still`, `flow` (t → t−1) and `forward` (t−1 → t) describe
        its pair with the previous frame; `gt` (same size) feeds VC_n."""
        prev, self._prev = self._prev, labels
        if gt is not None:
            for vc in self.vc:
                vc.add(gt, labels)
        if prev is None or prev.shape != labels.shape:
            return
        if forward is not None:
            self.etc.add(prev, warp_labels(labels, forward))
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
        for vc in self.vc:
            vc.break_sequence()

    def update_gt(self, pred: np.ndarray, label: np.ndarray) -> None:
        """Add a full-resolution prediction and its ground-truth label map (255 = ignore)."""
        if self.gt is None:
            self.gt = ConfusionMatrix(self.num_classes)
        self.gt.update(pred, label)

    def summary(self) -> dict[str, float | int | None]:
        """static_persistence, flow_tc, etc_tc, pairs and (with ground truth) mIoU, VC_8, VC_16, rounded."""
        return {
            "static_persistence": _rounded(
                self.static_same / self.static_total if self.static_total else None
            ),
            "static_pixels": self.static_total,
            "flow_tc": _rounded(self.tc_sum / self.tc_pairs if self.tc_pairs else None),
            "flow_pairs": self.tc_pairs,
            "miou_gt": _rounded(self.gt.summary()["mIoU"] if self.gt is not None else None),
            "etc_tc": _rounded(self.etc.value()),
            "etc_pairs": self.etc.pairs,
            "vc_8": _rounded(self.vc[0].value()),
            "vc_16": _rounded(self.vc[1].value()),
        }


def _rounded(value: float | None) -> float | None:
    return None if value is None or value != value else round(value, 4)  # NaN -> None (JSON-safe)
