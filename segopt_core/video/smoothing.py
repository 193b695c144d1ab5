"""Temporal smoothing of class scores: a per-pixel EMA at the model output resolution, motion-aware option."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from segopt_core.video.flow import dense_flow, warp_scores

__all__ = ["SmoothingOptions", "TemporalSmoother", "argmax_labels", "dense_flow", "softmax", "warp_scores"]


@dataclass(frozen=True)
class SmoothingOptions:
    """`s_t = α·s_(t−1) + (1−α)·z_t` on logits or probabilities; reset on scene cuts and size changes."""

    alpha: float = 0.6
    space: str = "logits"  # "logits" or "probs" (softmax first)
    scene_cut_threshold: float = 30.0  # mean |Δgray| (0..255) between frames at score resolution
    motion_aware: bool = False  # warp s_(t−1) with DIS flow and lower α where motion is large
    motion_scale_px: float = 2.0  # α_eff = α·exp(−|flow| / scale); flow in score-resolution pixels

    def __post_init__(self) -> None:
        if not 0.0 <= self.alpha < 1.0:
            raise ValueError(f"alpha must be in [0, 1) (0 turns smoothing off), got {self.alpha}")
        if self.space not in ("logits", "probs"):
            raise ValueError(f"smoothing space must be 'logits' or 'probs', got {self.space!r}")
        if self.scene_cut_threshold <= 0 or self.motion_scale_px <= 0:
            raise ValueError("scene_cut_threshold and motion_scale_px must be positive")


def softmax(scores: np.ndarray) -> np.ndarray:
    """Softmax over the class axis (0) of (C, h, w) scores."""
    shifted = np.exp(scores - scores.max(axis=0, keepdims=True))
    return shifted / shifted.sum(axis=0, keepdims=True)


def argmax_labels(scores: np.ndarray) -> np.ndarray:
    """First index of the maximum over the class axis of (C, h, w) scores, as np.argmax(0) but ~2× faster
    (numpy reduces the strided class axis slowly; one pass per channel stays contiguous)."""
    best = scores[0].copy()
    labels = np.zeros(best.shape, np.uint8 if scores.shape[0] <= 256 else np.int32)
    for c in range(1, scores.shape[0]):
        better = scores[c] > best  # strict: ties keep the first index, as np.argmax
        np.copyto(best, scores[c], where=better)
        labels[better] = c
    return labels


class TemporalSmoother:
    """Keeps only the previous frame's smoothed scores (and its small gray frame) between calls."""

    def __init__(self, options: SmoothingOptions) -> None:
        self.options = options
        self.resets = 0
        self._prev: np.ndarray | None = None
        self._prev_gray: np.ndarray | None = None

    def reset(self) -> None:
        """Forget the history (the next frame is taken as is)."""
        self._prev, self._prev_gray = None, None

    def is_scene_cut(self, gray: np.ndarray) -> bool:
        """True when the mean absolute gray difference to the previous frame exceeds the threshold."""
        if self._prev_gray is None or self._prev_gray.shape != gray.shape:
            return False
        diff = cv2.absdiff(self._prev_gray, gray)
        return float(diff.mean()) > self.options.scene_cut_threshold

    def update(self, logits: np.ndarray, gray: np.ndarray, flow: np.ndarray | None = None) -> np.ndarray:
        """Smoothed scores for this frame from its (C, h, w) logits and (h, w) uint8 gray frame."""
        z = softmax(logits) if self.options.space == "probs" else logits
        alpha = self.options.alpha
        if alpha == 0.0:
            return z
        prev = self._prev
        if prev is None or prev.shape != z.shape or self.is_scene_cut(gray):
            self.resets += prev is not None
            smoothed = z
        else:
            smoothed = self._blend(prev, z, gray, flow, alpha)
        self._prev, self._prev_gray = smoothed, gray
        return smoothed

    def _blend(
        self, prev: np.ndarray, z: np.ndarray, gray: np.ndarray, flow: np.ndarray | None, alpha: float
    ) -> np.ndarray:
        if not self.options.motion_aware:
            return alpha * prev + (1.0 - alpha) * z
        if flow is None:
            flow = dense_flow(gray, self._prev_gray)
        warped = warp_scores(prev, flow)
        magnitude = np.linalg.norm(flow, axis=2)
        alpha_map = (alpha * np.exp(-magnitude / self.options.motion_scale_px)).astype(np.float32)
        return alpha_map * warped + (1.0 - alpha_map) * z
