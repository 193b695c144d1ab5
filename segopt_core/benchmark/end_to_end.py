"""End-to-end scope: image file -> decode -> preprocess -> infer -> full-resolution mask."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from segopt_core.errors import SegoptError
from segopt_core.predictor import Predictor
from segopt_core.variants import CellSpec


class EndToEndError(SegoptError, ValueError):
    """The end-to-end benchmark cannot run with the given inputs."""


def default_image_size(spec: CellSpec) -> tuple[int, int]:
    """A typical raw image (h, w) for the cell: 4:3 at the test scale (whole) or the full scale (slide)."""
    long_side, short_side = max(spec.test_scale), min(spec.test_scale)
    if spec.inference_mode == "slide":
        return short_side, long_side  # Cityscapes: 1024x2048 frames, evaluated at full size
    return short_side, min(long_side, short_side * 4 // 3)


def write_sample_images(out_dir: str | Path, size: tuple[int, int], n: int = 8, seed: int = 0) -> list[Path]:
    """Write n smooth random (h, w) JPEGs (decode cost like photos, unlike white noise); their paths."""
    import cv2

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        coarse = rng.integers(0, 256, size=(max(2, size[0] // 32), max(2, size[1] // 32), 3), dtype=np.uint8)
        image = cv2.resize(coarse, (size[1], size[0]), interpolation=cv2.INTER_CUBIC)
        image = cv2.add(image, rng.integers(0, 12, size=image.shape, dtype=np.uint8))
        path = out / f"sample_{i:03d}.jpg"
        if not cv2.imwrite(str(path), image, [cv2.IMWRITE_JPEG_QUALITY, 90]):
            raise EndToEndError(f"{path}: could not write a sample image; check the folder is writable")
        paths.append(path)
    return paths


class EndToEnd:
    """A callable pipeline: each call decodes the next `batch_size` files and returns full-size masks."""

    def __init__(self, predictor: Predictor, spec: CellSpec, image_paths: Sequence[str | Path]) -> None:
        if not image_paths:
            raise EndToEndError("end-to-end scope needs image files: pass image paths (or write samples)")
        missing = [str(p) for p in image_paths if not Path(p).is_file()]
        if missing:
            raise EndToEndError(f"image files not found: {missing[:3]}; pass existing image files")
        self.predictor, self.spec = predictor, spec
        self.paths = [Path(p) for p in image_paths]
        self._cycle = itertools.cycle(self.paths)

    def image_size(self) -> tuple[int, int]:
        """(h, w) of the first image (the row's input_h / input_w)."""
        from segopt_core.data.datasets import read_image

        return tuple(read_image(self.paths[0]).shape[:2])  # type: ignore[return-value]

    def __call__(self, batch_size: int) -> list[np.ndarray]:
        """Decode the next batch_size images and predict their masks (mmseg whole/slide protocol)."""
        from segopt_core.data.datasets import read_image
        from segopt_core.evaluation.inference import predict_masks_batch

        images = [read_image(next(self._cycle)) for _ in range(batch_size)]
        return predict_masks_batch(self.predictor, images, self.spec, batch_size=batch_size)
