"""Video and PNG-mask outputs that stay playable when a run stops half-way."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from segopt_core.video.sources import VideoError

# mp4v and MJPG ship with every OpenCV/FFmpeg build; H.264 encoders often do not (licensing).
FOURCC_BY_SUFFIX = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "MJPG"}


def check_writable(path: Path, what: str = "output") -> Path:
    """The path if its folder exists (created) and is writable; VideoError naming the path and the fix."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise VideoError(
            f"{what} {path}: cannot create folder {path.parent} ({exc}); choose another path"
        ) from exc
    if not os.access(path.parent, os.W_OK) or path.is_dir():
        raise VideoError(f"{what} {path}: cannot be written (folder not writable or path is a folder)")
    return path


def even_size(height: int, width: int) -> tuple[int, int]:
    """The size rounded up to even numbers: mp4v/MJPG need even sizes (OpenCV silently crops odd ones)."""
    return height + height % 2, width + width % 2


class VideoWriter:
    """An OpenCV video file at the source's frame rate; RGB frames in; odd sizes padded by one edge pixel."""

    def __init__(self, path: str | Path, fps: float, size: tuple[int, int]) -> None:
        self.path = check_writable(Path(path), "video output")
        fourcc = FOURCC_BY_SUFFIX.get(self.path.suffix.lower())
        if fourcc is None:
            raise VideoError(
                f"video output {self.path}: unsupported extension {self.path.suffix!r}; "
                f"use one of {', '.join(FOURCC_BY_SUFFIX)}"
            )
        self.size = size  # (h, w) of the frames given to write()
        self.encoded_size = even_size(*size)
        self.frames = 0
        h, w = self.encoded_size
        self._writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*fourcc), fps, (w, h))
        if not self._writer.isOpened():
            raise VideoError(
                f"video output {self.path}: OpenCV cannot open a {fourcc} writer there; check the path"
            )

    def write(self, frame: np.ndarray) -> None:
        """Append one RGB frame (resized to the first frame's size if the source changed size)."""
        if frame.shape[:2] != self.size:
            frame = cv2.resize(frame, (self.size[1], self.size[0]), interpolation=cv2.INTER_NEAREST)
        pad_h, pad_w = self.encoded_size[0] - self.size[0], self.encoded_size[1] - self.size[1]
        bgr = cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)
        if pad_h or pad_w:
            bgr = cv2.copyMakeBorder(bgr, 0, pad_h, 0, pad_w, cv2.BORDER_REPLICATE)
        self._writer.write(bgr)
        self.frames += 1

    def close(self) -> None:
        """Finish the file (writes the container index, so the frames so far are playable)."""
        self._writer.release()


class MaskFolderWriter:
    """Per-frame label PNGs (uint8 class ids, 255 = ignore), named frame_000123.png by source index."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise VideoError(
                f"masks folder {self.folder}: cannot be created ({exc}); choose another path"
            ) from exc
        if not os.access(self.folder, os.W_OK):
            raise VideoError(f"masks folder {self.folder}: not writable; choose another path")
        self.frames = 0

    def write(self, index: int, labels: np.ndarray) -> None:
        """Save one label map."""
        path = self.folder / f"frame_{index:06d}.png"
        if not cv2.imwrite(str(path), labels.astype(np.uint8)):
            raise VideoError(f"masks folder {self.folder}: writing {path.name} failed (disk full?)")
        self.frames += 1

    def close(self) -> None:
        """Nothing to flush (one file per frame)."""
