"""Calibration images for INT8 static: a dataset split or a plain image folder, at the crop size."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from segopt_core.backends.errors import CalibrationError
from segopt_core.variants import CellSpec

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def _dataset_images(root: Path, limit: int) -> list[np.ndarray]:
    """RGB images of a dataset's train split (val when no train split); [] when it is not a dataset."""
    from segopt_core.data import DatasetError, open_dataset

    for split in ("train", "val"):
        try:
            dataset = open_dataset(root, split=split, strict=False)
        except (DatasetError, OSError):
            continue
        return [dataset[i].image for i in range(min(limit, len(dataset)))]
    return []


def _folder_images(root: Path, limit: int) -> list[np.ndarray]:
    """RGB images found under a plain folder (sorted, recursive)."""
    from segopt_core.data import read_image

    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    return [read_image(p) for p in files[:limit]]


def load_calibration_images(root: str | Path, spec: CellSpec, num_images: int) -> np.ndarray:
    """(N,3,H,W) float32: up to num_images images resized to the cell's crop size and preprocessed."""
    import cv2

    from segopt_core.data import preprocess

    root = Path(root).expanduser()
    if not root.is_dir():
        raise CalibrationError(f"{root}: calibration folder does not exist; pass a dataset or image folder")
    images = _dataset_images(root, num_images) or _folder_images(root, num_images)
    if not images:
        raise CalibrationError(
            f"{root}: no images found (looked for a dataset layout and {', '.join(IMAGE_SUFFIXES)})"
        )
    h, w = spec.crop_size
    resized = [cv2.resize(im, (w, h), interpolation=cv2.INTER_LINEAR) for im in images]
    return np.stack([preprocess(im, spec) for im in resized]).astype(np.float32)
