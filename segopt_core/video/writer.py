"""Video and PNG-mask outputs that stay playable when a run stops half-way."""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np

from segopt_core.video.sources import VideoError

# mp4v and MJPG ship with every OpenCV/FFmpeg build; H.264 encoders often do not (licensing): MP4-family
# outputs use H.264 (avc1) when the installed OpenCV/FFmpeg can open such a writer, mp4v otherwise.
FOURCC_BY_SUFFIX = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "MJPG"}
H264_SUFFIXES = (".mp4", ".m4v", ".mov")
_h264: list[bool] = []  # probed once per process


def h264_available() -> bool:
    """True when this OpenCV build can open an H.264 ('avc1') MP4 writer (probed once, in a temp folder)."""
    if not _h264:
        import tempfile

        with tempfile.TemporaryDirectory() as folder, _quiet_stderr():
            path = str(Path(folder) / "probe.mp4")
            writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"avc1"), 10.0, (64, 64))
            _h264.append(bool(writer.isOpened()))
            writer.release()
    return _h264[0]


@contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Silence FFmpeg's own log lines (it writes to fd 2) while probing encoders that may be missing."""
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def fourcc_for(path: Path) -> str | None:
    """The codec a video output gets: avc1 (H.264) for MP4 where available, else mp4v / MJPG by suffix."""
    suffix = path.suffix.lower()
    if suffix in H264_SUFFIXES and h264_available():
        return "avc1"
    return FOURCC_BY_SUFFIX.get(suffix)


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


LOW_SPACE_BYTES = 64 * 1024  # below this free space a write is about to fail: stop early and say so
_SPACE_CHECK_EVERY = 25  # frames between free-space checks (one statvfs call)


def no_space_left(folder: Path) -> bool:
    """True when the filesystem of `folder` is (nearly) full."""
    try:
        return shutil.disk_usage(folder).free < LOW_SPACE_BYTES
    except OSError:
        return False


def write_error(what: str, path: Path, exc: OSError) -> VideoError:
    """One line naming the output, the path and the OS reason ("no space left on device", ...)."""
    reason = "no space left on device" if exc.errno == errno.ENOSPC else (exc.strerror or str(exc)).lower()
    return VideoError(f"{what} {path}: {reason}; free some space or choose another path")


def even_size(height: int, width: int) -> tuple[int, int]:
    """The size rounded up to even numbers: mp4v/MJPG need even sizes (OpenCV silently crops odd ones)."""
    return height + height % 2, width + width % 2


class VideoWriter:
    """An OpenCV video file at the source's frame rate; RGB frames in; odd sizes padded by one edge pixel."""

    def __init__(self, path: str | Path, fps: float, size: tuple[int, int]) -> None:
        self.path = check_writable(Path(path), "video output")
        fourcc = self.fourcc = fourcc_for(self.path)
        if fourcc is None:
            raise VideoError(
                f"video output {self.path}: unsupported extension {self.path.suffix!r}; "
                f"use one of {', '.join(FOURCC_BY_SUFFIX)}"
            )
        self.size = size  # (h, w) of the frames given to write()
        self.published = False  # True once this writer moved a complete file to `path`
        self.encoded_size = even_size(*size)
        self.frames = 0
        h, w = self.encoded_size
        # written beside the target and renamed into place once complete: a full disk or a crash never
        # leaves an unplayable file under the real name
        self.partial = self.path.with_name(f".{self.path.stem}.partial-{os.getpid()}{self.path.suffix}")
        self._writer = cv2.VideoWriter(str(self.partial), cv2.VideoWriter_fourcc(*fourcc), fps, (w, h))
        if not self._writer.isOpened():
            self.partial.unlink(missing_ok=True)
            raise VideoError(  # the folder is writable (check_writable): the frame size is what failed
                f"video output {self.path}: OpenCV cannot open a {fourcc} writer for {w}x{h} frames (beyond "
                "what the encoder supports?); write a smaller video: a smaller source, or no --side-by-side"
            )

    def write(self, frame: np.ndarray) -> None:
        """Append one RGB frame (resized to the first frame's size if the source changed size)."""
        if frame.shape[:2] != self.size:
            frame = cv2.resize(frame, (self.size[1], self.size[0]), interpolation=cv2.INTER_NEAREST)
        pad_h, pad_w = self.encoded_size[0] - self.size[0], self.encoded_size[1] - self.size[1]
        bgr = cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)
        if pad_h or pad_w:
            bgr = cv2.copyMakeBorder(bgr, 0, pad_h, 0, pad_w, cv2.BORDER_REPLICATE)
        if self.frames % _SPACE_CHECK_EVERY == 0 and no_space_left(self.path.parent):
            raise VideoError(
                f"video output {self.path}: no space left on device after {self.frames} frames; "
                "free some space or choose another path"
            )
        self._writer.write(bgr)  # OpenCV reports no write errors: close() checks the finished file
        self.frames += 1

    def close(self) -> None:
        """Finish the file (writes the container index, so the frames so far are playable) and move it into
        place; VideoError (the partial file removed) when it could not be written completely."""
        if self._writer is None:
            return
        self._writer.release()
        self._writer = None
        if not self.frames:  # nothing to play: keep no file
            self.partial.unlink(missing_ok=True)
            return
        if not self._complete():
            reason = "no space left on device" if no_space_left(self.path.parent) else "the encoder failed"
            self.partial.unlink(missing_ok=True)
            raise VideoError(
                f"video output {self.path}: {reason} while writing {self.frames} frames; nothing was kept "
                "(free some space or choose another path)"
            )
        try:
            os.replace(self.partial, self.path)
        except OSError as exc:
            self.partial.unlink(missing_ok=True)
            raise write_error("video output", self.path, exc) from None
        self.published = True

    def _complete(self) -> bool:
        """The finished file opens and its container holds every frame written."""
        capture = cv2.VideoCapture(str(self.partial))
        try:
            return capture.isOpened() and capture.get(cv2.CAP_PROP_FRAME_COUNT) >= self.frames
        finally:
            capture.release()


class MaskFolderWriter:
    """Per-frame label PNGs (uint8 class ids, 255 = ignore), named frame_000123.png by source index."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.created = not self.folder.exists()
        self.written: list[Path] = []
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
        from segopt_core.atomic import atomic_file

        path = self.folder / f"frame_{index:06d}.png"
        ok, png = cv2.imencode(".png", labels.astype(np.uint8))
        if not ok:
            raise VideoError(f"masks folder {self.folder}: cannot encode {path.name}")
        try:
            atomic_file(path, lambda tmp: tmp.write_bytes(png.tobytes()))  # no half-written PNG
        except OSError as exc:
            raise write_error("masks folder", self.folder, exc) from None
        self.written.append(path)
        self.frames += 1

    def discard(self) -> None:
        """Remove the PNGs this writer wrote (and the folder when it made it): a failed run keeps none."""
        for path in self.written:
            path.unlink(missing_ok=True)
        if self.created:
            try:
                self.folder.rmdir()
            except OSError:  # something else was put there meanwhile
                pass

    def close(self) -> None:
        """Nothing to flush (one file per frame)."""
