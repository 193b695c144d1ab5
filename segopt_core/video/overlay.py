"""Colorize label maps, blend them over frames and draw a legend of the classes present."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from segopt_core.variants import CellSpec, distinct_palette


@dataclass(frozen=True)
class OverlayStyle:
    """How output frames look: mask opacity, legend, and original | overlay side by side."""

    opacity: float = 0.5
    legend: bool = True
    legend_max_entries: int = 8  # the largest classes by area; a long legend would hide the frame
    side_by_side: bool = False

    def __post_init__(self) -> None:
        if not 0.0 <= self.opacity <= 1.0:
            raise ValueError(f"opacity must be in [0, 1], got {self.opacity}")
        if self.legend_max_entries < 1:
            raise ValueError(f"legend_max_entries must be >= 1, got {self.legend_max_entries}")


@dataclass(frozen=True)
class LabelStyle:
    """Class names and RGB colours for every model output index (255/unknown is black)."""

    names: tuple[str, ...]
    palette: tuple[tuple[int, int, int], ...]

    @classmethod
    def from_spec(cls, spec: CellSpec) -> LabelStyle:
        """Names and palette of the spec's dataset, padded for custom checkpoints with more classes."""
        n = spec.num_classes
        names = tuple(spec.dataset.class_names[:n]) + tuple(
            f"class_{i}" for i in range(len(spec.dataset.class_names), n)
        )
        palette = spec.dataset.palette if len(spec.dataset.palette) >= n else distinct_palette(n)
        return cls(names=names, palette=tuple(palette[:n]))

    def lut(self) -> np.ndarray:
        """A (256, 1, 3) uint8 lookup table label -> RGB for cv2.LUT."""
        table = np.zeros((256, 1, 3), np.uint8)
        table[: min(len(self.palette), 255), 0] = np.asarray(self.palette[:255], np.uint8)
        return table


def colorize(labels: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """An HxW uint8 label map as an HxWx3 RGB image (cv2.LUT; releases the GIL)."""
    labels = labels.astype(np.uint8, copy=False)
    return cv2.LUT(cv2.merge([labels, labels, labels]), lut)


def blend(frame: np.ndarray, color: np.ndarray, opacity: float) -> np.ndarray:
    """frame·(1−opacity) + color·opacity, uint8."""
    return cv2.addWeighted(frame, 1.0 - opacity, color, opacity, 0.0)


def draw_legend(image: np.ndarray, labels: np.ndarray, style: LabelStyle, max_entries: int) -> None:
    """Draw the largest classes present (colour swatch + name) in the top-left corner, in place."""
    counts = np.bincount(labels.ravel(), minlength=256)[: len(style.names)]
    present = [int(i) for i in np.argsort(counts)[::-1][:max_entries] if counts[i] > 0]
    scale = max(0.3, min(image.shape[:2]) / 720)
    row = int(22 * scale) + 4
    thickness = max(1, round(scale))
    for k, cls in enumerate(present):
        y = 4 + k * row
        if y + row > max(image.shape[0] // 2, row + 4):  # keep at least half of the frame visible
            break
        cv2.rectangle(image, (4, y), (4 + row - 4, y + row - 4), style.palette[cls], -1)
        origin = (row + 6, y + row - 6)
        cv2.putText(
            image, style.names[cls], origin, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thickness + 2
        )
        cv2.putText(
            image, style.names[cls], origin, cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thickness
        )


def render(
    frame: np.ndarray,
    labels: np.ndarray,
    labels_style: LabelStyle,
    style: OverlayStyle,
    color: np.ndarray | None = None,
) -> np.ndarray:
    """The overlay output frame (RGB): mask blended over the frame, legend, optionally beside the original.

    `color` is the colourized label map when the caller has it already (the video pipeline colourizes at
    score resolution and upsamples: the same pixels, a fraction of the LUT work).
    """
    color = colorize(labels, labels_style.lut()) if color is None else color
    out = blend(frame, color, style.opacity)
    if style.legend:
        draw_legend(out, labels, labels_style, style.legend_max_entries)
    return np.hstack([frame, out]) if style.side_by_side else out
