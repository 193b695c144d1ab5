"""mmseg's SegFormer train pipeline on numpy: random resize, cat_max_ratio crop, flip, photometric, pad.

Every random draw comes from the `np.random.Generator` passed in, which the loop derives from
(seed, epoch, position), so a sample's augmentation is the same whether or not the run was resumed.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from segopt_core.variants import CellSpec


@dataclass(frozen=True)
class AugmentConfig:
    """The pipeline's knobs (mmseg defaults)."""

    scale: tuple[int, int]  # (long, short) bound before the ratio, mmseg's RandomResize(scale=...)
    crop: tuple[int, int]  # (h, w)
    ratio_range: tuple[float, float] = (0.5, 2.0)
    cat_max_ratio: float = 0.75
    flip_prob: float = 0.5
    photometric: bool = True
    ignore_index: int = 255


def rescale_size(h: int, w: int, scale: tuple[int, int]) -> tuple[int, int]:
    """mmcv's keep-ratio rescale: the largest size with long side <= max(scale) and short <= min(scale)."""
    factor = min(max(scale) / max(h, w), min(scale) / min(h, w))
    return max(1, int(h * factor + 0.5)), max(1, int(w * factor + 0.5))


def random_resize(image: np.ndarray, label: np.ndarray, cfg: AugmentConfig, rng: np.random.Generator):
    """RandomResize(scale, ratio_range, keep_ratio=True): bilinear image, nearest label."""
    ratio = rng.uniform(*cfg.ratio_range)
    target = (int(cfg.scale[0] * ratio), int(cfg.scale[1] * ratio))
    h, w = rescale_size(*image.shape[:2], target)
    image = cv2.resize(image, (w, h), interpolation=cv2.INTER_LINEAR)
    label = cv2.resize(label, (w, h), interpolation=cv2.INTER_NEAREST)
    return image, label


def _crop_box(shape: tuple[int, int], crop: tuple[int, int], rng: np.random.Generator) -> tuple[int, int]:
    """Top-left corner of a random crop (mmseg's RandomCrop.crop_bbox)."""
    off_h = int(rng.integers(0, max(shape[0] - crop[0], 0) + 1))
    off_w = int(rng.integers(0, max(shape[1] - crop[1], 0) + 1))
    return off_h, off_w


def random_crop(image: np.ndarray, label: np.ndarray, cfg: AugmentConfig, rng: np.random.Generator):
    """RandomCrop(crop, cat_max_ratio): retry up to 10 times until no class covers > cat_max_ratio."""
    ch, cw = cfg.crop
    y, x = _crop_box(label.shape, cfg.crop, rng)
    if cfg.cat_max_ratio < 1.0:
        for _ in range(10):
            patch = label[y : y + ch, x : x + cw]
            _, counts = np.unique(patch[patch != cfg.ignore_index], return_counts=True)
            if len(counts) > 1 and counts.max() / counts.sum() < cfg.cat_max_ratio:
                break
            y, x = _crop_box(label.shape, cfg.crop, rng)
    return image[y : y + ch, x : x + cw], label[y : y + ch, x : x + cw]


def _convert(img: np.ndarray, alpha: float = 1.0, beta: float = 0.0) -> np.ndarray:
    """img * alpha + beta, clipped to uint8 (mmseg's PhotoMetricDistortion.convert)."""
    return np.clip(img.astype(np.float32) * alpha + beta, 0, 255).astype(np.uint8)


def photometric_distortion(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """mmseg's PhotoMetricDistortion (brightness 32, contrast/saturation 0.5-1.5, hue 18) on an RGB image."""
    if rng.integers(2):
        image = _convert(image, beta=rng.uniform(-32, 32))
    contrast_first = bool(rng.integers(2))
    if contrast_first and rng.integers(2):
        image = _convert(image, alpha=rng.uniform(0.5, 1.5))
    if rng.integers(2):
        hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)
        hsv[..., 1] = _convert(hsv[..., 1], alpha=rng.uniform(0.5, 1.5))
        image = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    if rng.integers(2):
        hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)
        hsv[..., 0] = (hsv[..., 0].astype(int) + int(rng.integers(-18, 18))) % 180
        image = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    if not contrast_first and rng.integers(2):
        image = _convert(image, alpha=rng.uniform(0.5, 1.5))
    return image


def normalize_and_pad(image: np.ndarray, label: np.ndarray, cfg: AugmentConfig, spec: CellSpec):
    """(x - mean) / std as float32 CHW, padded bottom/right to the crop with 0 (image) and ignore (label)."""
    mean = np.asarray(spec.mean, dtype=np.float32)
    std = np.asarray(spec.std, dtype=np.float32)
    x = ((image.astype(np.float32) - mean) / std).transpose(2, 0, 1)
    ch, cw = cfg.crop
    h, w = label.shape
    pixels = np.zeros((3, max(ch, h), max(cw, w)), dtype=np.float32)
    pixels[:, :h, :w] = x
    target = np.full((max(ch, h), max(cw, w)), cfg.ignore_index, dtype=np.int64)
    target[:h, :w] = label
    return pixels, target


def augment(
    image: np.ndarray, label: np.ndarray, cfg: AugmentConfig, spec: CellSpec, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """The train pipeline: HxWx3 uint8 RGB + HxW uint8 -> float32 (3,h,w), int64 (h,w) at the crop size."""
    image, label = random_resize(image, label, cfg, rng)
    image, label = random_crop(image, label, cfg, rng)
    if rng.random() < cfg.flip_prob:
        image, label = image[:, ::-1], label[:, ::-1]
    image = np.ascontiguousarray(image)
    if cfg.photometric:
        image = photometric_distortion(image, rng)
    return normalize_and_pad(image, np.ascontiguousarray(label), cfg, spec)
