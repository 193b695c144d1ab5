"""The one preprocessing every backend shares: mmseg's Resize(keep_ratio) and mean/std normalisation."""

from __future__ import annotations

import numpy as np

from segopt_core.variants import CellSpec


def rescale_size(height: int, width: int, scale: tuple[int, int]) -> tuple[int, int]:
    """(new_h, new_w) fitting the (long, short) bound with the aspect ratio kept, rounded as mmcv."""
    long_edge, short_edge = max(scale), min(scale)
    factor = min(long_edge / max(height, width), short_edge / min(height, width))
    return int(height * factor + 0.5), int(width * factor + 0.5)  # mmcv's _scale_size rounding


def resize_to_test_scale(image: np.ndarray, scale: tuple[int, int]) -> np.ndarray:
    """An HxWx3 uint8 image resized to the test scale (bilinear, cv2 as mmcv.imresize)."""
    import cv2

    new_h, new_w = rescale_size(image.shape[0], image.shape[1], scale)
    if (new_h, new_w) == image.shape[:2]:
        return image
    return cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)


def preprocess(image: np.ndarray, spec: CellSpec) -> np.ndarray:
    """HxWx3 uint8 RGB -> float32 (3,H,W) normalised with the spec's mean/std (0..255 scale)."""
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"preprocess expects an HxWx3 RGB image, got shape {image.shape}")
    mean = np.asarray(spec.mean, dtype=np.float32)
    std = np.asarray(spec.std, dtype=np.float32)
    normalised = (image.astype(np.float32) - mean) / std
    return np.ascontiguousarray(normalised.transpose(2, 0, 1))
