"""Sources: files, image sequences, cameras and dropping streams, with clear errors on bad input."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from segopt_core.video.sources import (
    CaptureSource,
    ImageSequenceSource,
    ReconnectPolicy,
    VideoError,
    open_source,
    to_rgb,
)
from tests.core.video.conftest import FPS, SIZE, static_frames, write_video


def test_file_source_detects_size_fps_and_count(video_file):
    with open_source(video_file(20)) as source:
        assert (source.info.kind, source.info.size, source.info.n_frames) == ("file", SIZE, 20)
        assert source.info.fps == pytest.approx(FPS)
        frames = list(source)
    assert len(frames) == 20 and frames[0].shape == (*SIZE, 3) and frames[0].dtype == np.uint8


def test_image_folder_is_a_sequence_with_gray_and_rgba_frames(tmp_path):
    frames = static_frames(3)
    cv2.imwrite(str(tmp_path / "f2.png"), cv2.cvtColor(frames[0], cv2.COLOR_RGB2GRAY))
    cv2.imwrite(str(tmp_path / "f10.png"), cv2.cvtColor(frames[1], cv2.COLOR_RGB2BGRA))
    cv2.imwrite(str(tmp_path / "f1.png"), cv2.cvtColor(frames[2], cv2.COLOR_RGB2BGR))
    source = open_source(tmp_path, fps=5)
    assert isinstance(source, ImageSequenceSource)
    assert [p.name for p in source.paths] == ["f1.png", "f2.png", "f10.png"]  # natural order
    got = list(source)
    assert source.info.fps == 5 and all(f.shape == (*SIZE, 3) for f in got)
    np.testing.assert_array_equal(got[0], frames[2])
    assert (got[1][..., 0] == got[1][..., 1]).all()  # gray expanded to 3 equal channels
    assert len(list(open_source(str(tmp_path / "f1*.png")))) == 2  # glob


def test_to_rgb_handles_gray_16bit_and_rejects_odd_channels():
    gray16 = np.full((4, 5), 0x8000, np.uint16)
    assert to_rgb(gray16).shape == (4, 5, 3) and to_rgb(gray16)[0, 0, 0] == 0x80
    assert to_rgb(np.zeros((4, 5, 1), np.uint8)).shape == (4, 5, 3)
    with pytest.raises(VideoError, match="2 channels"):
        to_rgb(np.zeros((4, 5, 2), np.uint8))


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda p: p / "missing.mp4", "no such file"),
        (lambda p: _write(p / "empty.mp4", b""), "empty"),
        (lambda p: _write(p / "garbage.mp4", b"not a video at all" * 100), "cannot open|no frame"),
        (lambda p: p / "empty_folder", "no images"),
    ],
)
def test_bad_inputs_raise_clear_errors(tmp_path, make, match):
    (tmp_path / "empty_folder").mkdir()
    with pytest.raises(VideoError, match=match):
        open_source(make(tmp_path))


def test_zero_frame_video_is_rejected(tmp_path):
    path = tmp_path / "zero.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, (SIZE[1], SIZE[0]))
    writer.release()
    if not path.exists():
        path.write_bytes(b"")
    with pytest.raises(VideoError, match="empty|no frame|cannot open"):
        open_source(path)


def test_truncated_file_yields_the_frames_before_the_cut(tmp_path):
    path = write_video(tmp_path / "full.avi", static_frames(20))  # MJPG/AVI: frames are independent
    cut = tmp_path / "cut.avi"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with open_source(cut) as source:
        n = len(list(source))
    assert 0 < n < 20


def test_missing_camera_index_is_a_clear_error():
    with pytest.raises(VideoError, match="camera 99: not available"):
        open_source(99)


def test_dropping_stream_reconnects_with_backoff_then_stops_cleanly(tmp_path):
    """A stream whose connection ends after a file's frames and never comes back."""
    path = write_video(tmp_path / "stream.mp4", static_frames(8))
    opens = []

    def opener():
        opens.append(1)
        return cv2.VideoCapture(str(path) if len(opens) == 1 else str(tmp_path / "gone.mp4"))

    source = CaptureSource(
        "rtsp://camera/1", "stream", ReconnectPolicy(attempts=3, base_delay_s=0.01), opener
    )
    assert len(list(source)) == 8
    assert source.reconnects == 3 and "3 reconnect attempts" in source.stop_reason
    assert ReconnectPolicy(4, 0.5, 1.5).delays() == [0.5, 1.0, 1.5, 1.5]


class _RaisingCapture:
    """A real capture whose connection breaks (read raises) after `limit` frames."""

    def __init__(self, path: Path, limit: int) -> None:
        self.cap, self.limit, self.count = cv2.VideoCapture(str(path)), limit, 0

    def isOpened(self) -> bool:  # noqa: N802 - cv2's name
        return self.cap.isOpened()

    def get(self, prop: int) -> float:
        return self.cap.get(prop)

    def read(self):
        self.count += 1
        if self.count > self.limit:
            raise OSError("connection reset by peer")
        return self.cap.read()

    def release(self) -> None:
        self.cap.release()


def test_stream_that_raises_mid_way_resumes_after_reconnect(tmp_path):
    path = write_video(tmp_path / "stream.mp4", static_frames(6))
    opens = []

    def opener():
        opens.append(1)
        if len(opens) == 1:
            return _RaisingCapture(path, 3)
        return cv2.VideoCapture(str(path) if len(opens) == 2 else str(tmp_path / "gone.mp4"))

    source = CaptureSource("http://cam/live", "stream", ReconnectPolicy(attempts=2, base_delay_s=0.0), opener)
    frames = list(source)
    assert len(frames) == 3 + 6 + 0  # 3 before the break, then the whole reconnected stream
    assert source.reconnects == 3 and source.stop_reason  # 1 successful, then 2 failed at its end


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path
