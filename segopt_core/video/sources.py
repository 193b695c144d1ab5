"""Frame sources: video files, cameras, network streams and image sequences, all yielding RGB frames."""

from __future__ import annotations

import glob
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from segopt_core.errors import SegoptError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
STREAM_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://", "srt://")
DEFAULT_SEQUENCE_FPS = 25.0  # image folders carry no timing; 25 fps unless the caller says otherwise


class VideoError(SegoptError, RuntimeError):
    """A video source, output or pipeline problem; the message names the source, the value and the fix."""


@dataclass(frozen=True)
class SourceInfo:
    """What a source is: its kind, frame rate, frame size (h, w) and frame count when known."""

    uri: str
    kind: str  # "file" | "camera" | "stream" | "images"
    fps: float
    size: tuple[int, int]
    n_frames: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("file", "camera", "stream", "images"):
            raise ValueError(f"source {self.uri}: unknown kind {self.kind!r}")
        if not self.fps > 0:
            raise ValueError(f"source {self.uri}: frame rate must be positive, got {self.fps}")
        if min(self.size) <= 0:
            raise ValueError(f"source {self.uri}: frame size must be positive, got {self.size}")

    @property
    def paced(self) -> bool:
        """True when the device delivers frames in real time (camera, stream) rather than on demand."""
        return self.kind in ("camera", "stream")


@dataclass(frozen=True)
class ReconnectPolicy:
    """Bounded reconnect for live streams: `attempts` tries, delays base, 2·base, 4·base … capped."""

    attempts: int = 5
    base_delay_s: float = 0.5
    max_delay_s: float = 8.0

    def __post_init__(self) -> None:
        if self.attempts < 0 or self.base_delay_s < 0 or self.max_delay_s < 0:
            raise ValueError(f"reconnect policy values must be >= 0, got {self}")

    def delays(self) -> list[float]:
        """The sleep before each reconnect attempt."""
        return [min(self.base_delay_s * 2**k, self.max_delay_s) for k in range(self.attempts)]


def to_rgb(frame: np.ndarray, source: str = "frame") -> np.ndarray:
    """Any decoded frame (gray, gray+1 channel, BGR, BGRA; 8 or 16 bit) as contiguous RGB uint8 HxWx3."""
    if frame is None or frame.size == 0:
        raise VideoError(f"{source}: empty frame; the file may be truncated or not an image/video")
    if frame.dtype == np.uint16:
        frame = (frame >> 8).astype(np.uint8)
    elif frame.dtype != np.uint8:
        raise VideoError(f"{source}: unsupported pixel type {frame.dtype}; use 8- or 16-bit images")
    if frame.ndim == 3 and frame.shape[2] == 1:
        frame = frame[:, :, 0]
    if frame.ndim == 2:
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB)
    if frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2RGB)
    if frame.shape[2] == 3:
        return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
    raise VideoError(f"{source}: frames with {frame.shape[2]} channels are not supported; use gray/RGB/RGBA")


class FrameSource:
    """Base class: iterates RGB uint8 frames; `info` describes the source, `stop_reason` an early end."""

    info: SourceInfo
    stop_reason: str | None = None
    decode_threads: int | None = None  # FFmpeg decoder threads (None: the library's default)

    def __iter__(self) -> Iterator[np.ndarray]:
        raise NotImplementedError

    def close(self) -> None:
        """Release the device or file."""

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def default_decode_threads() -> int:
    """FFmpeg decoder threads: half the cores (one on two cores), leaving the rest to the model, the overlay
    and the encoder, which run in their own threads at the same time."""
    return max(1, (os.cpu_count() or 1) // 2)


def _capture(uri: str | int, decode_threads: int | None) -> Any:
    """cv2.VideoCapture with the decoder's thread count set (files and streams; cameras as they come)."""
    if decode_threads is None or isinstance(uri, int):
        return cv2.VideoCapture(uri)
    capture = cv2.VideoCapture(uri, cv2.CAP_FFMPEG, [cv2.CAP_PROP_N_THREADS, decode_threads])
    return capture if capture.isOpened() else cv2.VideoCapture(uri)  # a build without FFmpeg: any backend


class CaptureSource(FrameSource):
    """A file, camera or stream read through OpenCV (FFmpeg/V4L2); streams reconnect with backoff."""

    def __init__(
        self,
        uri: str | int,
        kind: str,
        reconnect: ReconnectPolicy | None = None,
        opener: Callable[[], Any] | None = None,
        decode_threads: int | None = None,
    ) -> None:
        self.uri, self.kind = uri, kind
        self.reconnect = reconnect or ReconnectPolicy()
        self.decode_threads = decode_threads if kind != "camera" else None
        self._opener = opener or (lambda: _capture(uri, self.decode_threads))
        self.reconnects = 0
        self.stop_reason = None
        self._cap = self._open_or_raise()
        self._first = self._read_first()
        self.info = self._probe()

    def _open_or_raise(self) -> Any:
        cap = self._opener()
        if cap is not None and cap.isOpened():
            return cap
        if self.kind == "camera":
            raise VideoError(
                f"camera {self.uri}: not available (no such device or it is busy); "
                "check `ls /dev/video*` and pass an existing index"
            )
        if self.kind == "stream":
            raise VideoError(f"stream {self.uri}: cannot connect; check the URL, network and credentials")
        raise VideoError(
            f"video {self.uri}: OpenCV/FFmpeg cannot open it (unreadable, truncated or unsupported format); "
            "re-encode it, e.g. `ffmpeg -i in -c:v libx264 out.mp4`"
        )

    def _read_first(self) -> np.ndarray:
        frame = self._read()
        if frame is None:
            self.close()
            raise VideoError(
                f"{self.kind} {self.uri}: no frame could be decoded (zero-frame or corrupt video); "
                "check the input with `ffprobe`"
            )
        return frame

    def _read(self) -> np.ndarray | None:
        try:
            ok, frame = self._cap.read()
        except (cv2.error, OSError, RuntimeError):  # a broken connection may raise instead of returning False
            return None
        return to_rgb(frame, f"{self.kind} {self.uri}") if ok and frame is not None else None

    def _probe(self) -> SourceInfo:
        fps = float(self._cap.get(cv2.CAP_PROP_FPS) or 0.0)
        count = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        h, w = self._first.shape[:2]
        return SourceInfo(
            uri=str(self.uri),
            kind=self.kind,
            fps=fps if 0 < fps < 1000 else 30.0,  # cameras and some streams report 0 or nonsense
            size=(h, w),
            n_frames=count if self.kind == "file" and count > 0 else None,
        )

    def __iter__(self) -> Iterator[np.ndarray]:
        frame: np.ndarray | None = self._first
        while frame is not None:
            yield frame
            frame = self._read()
            if frame is None and self.kind == "stream":
                frame = self._reconnect()

    def _reconnect(self) -> np.ndarray | None:
        """Reopen a dropped stream a bounded number of times; None (stop_reason set) when it stays down."""
        for delay in self.reconnect.delays():
            time.sleep(delay)
            self.reconnects += 1
            self._release()
            try:
                self._cap = self._opener()
            except (cv2.error, OSError, RuntimeError):
                continue
            if self._cap is not None and self._cap.isOpened():
                frame = self._read()
                if frame is not None:
                    return frame
        attempts = self.reconnect.attempts
        self.stop_reason = (
            f"stream {self.uri} dropped and did not come back after {attempts} reconnect attempts"
        )
        return None

    def _release(self) -> None:
        if getattr(self, "_cap", None) is not None:
            try:
                self._cap.release()
            except (cv2.error, OSError, RuntimeError):
                pass

    def close(self) -> None:
        self._release()


class ImageSequenceSource(FrameSource):
    """A folder of images or a glob pattern, read in sorted (natural) order as a video at `fps`."""

    def __init__(self, pattern: str | Path, fps: float | None = None) -> None:
        self.pattern = str(pattern)
        self.paths = list_images(self.pattern)
        self.stop_reason = None
        first = self._load(self.paths[0])
        self.info = SourceInfo(
            uri=self.pattern,
            kind="images",
            fps=fps or DEFAULT_SEQUENCE_FPS,
            size=first.shape[:2],
            n_frames=len(self.paths),
        )

    @staticmethod
    def _load(path: Path) -> np.ndarray:
        image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if image is None:
            raise VideoError(f"image {path}: cannot be read (corrupt or not an image); remove or replace it")
        return to_rgb(image, f"image {path}")

    def __iter__(self) -> Iterator[np.ndarray]:
        for path in self.paths:
            yield self._load(path)


def _natural_key(path: Path) -> list[Any]:
    import re

    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.name)]


def list_images(pattern: str) -> list[Path]:
    """Image files of a folder or glob pattern, naturally sorted; VideoError when there are none."""
    path = Path(pattern)
    candidates = path.iterdir() if path.is_dir() else (Path(p) for p in glob.glob(pattern))
    images = sorted((p for p in candidates if p.suffix.lower() in IMAGE_SUFFIXES), key=_natural_key)
    if not images:
        raise VideoError(f"image sequence {pattern}: no images ({', '.join(IMAGE_SUFFIXES)}) found")
    return images


def open_source(
    source: str | int | Path,
    fps: float | None = None,
    reconnect: ReconnectPolicy | None = None,
    decode_threads: int | None = None,
) -> FrameSource:
    """Open a camera index, stream URL, image folder/glob or video file; VideoError with the fix otherwise."""
    text = str(source)
    threads = decode_threads or default_decode_threads()
    if isinstance(source, int) or text.isdigit():
        return CaptureSource(int(text), "camera", reconnect)
    if text.lower().startswith(STREAM_SCHEMES):
        return CaptureSource(text, "stream", reconnect, decode_threads=threads)
    if Path(text).is_dir() or any(ch in text for ch in "*?["):
        return ImageSequenceSource(text, fps)
    path = Path(text)
    if not path.exists():
        raise VideoError(
            f"input {text}: no such file; pass a video file, an image folder or glob, "
            "a camera index (0, 1, …) or a stream URL (rtsp://, http://)"
        )
    if path.stat().st_size == 0:
        raise VideoError(f"video {text}: the file is empty (0 bytes); re-export or re-download it")
    return CaptureSource(text, "file", reconnect, decode_threads=threads)
