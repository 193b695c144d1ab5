"""Synthetic videos: frame count, fps, per-frame masks, scene cut, pan, determinism."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from segopt_core.data import synth_video
from segopt_core.data.video_synth import VideoSynthError


def _frames(path) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame.astype(np.float32))
    capture.release()
    return frames


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return synth_video(
        tmp_path_factory.mktemp("v") / "clip.mp4", n_frames=16, size=(64, 96), fps=8, seed=1, pan=2
    )


def test_video_reads_back_with_frame_count_fps_and_masks(video) -> None:
    capture = cv2.VideoCapture(str(video.path))
    assert capture.isOpened()
    assert capture.get(cv2.CAP_PROP_FPS) == pytest.approx(8)
    capture.release()
    frames = _frames(video.path)
    assert len(frames) == video.n_frames == 16 and frames[0].shape == (64, 96, 3)
    masks = sorted(video.masks_dir.glob("frame_*.png"))
    assert len(masks) == 16
    values = np.unique(np.stack([video.read_mask(i) for i in range(16)]))
    assert set(values) <= {6, 11, 1, 4, 2, 12, 20, 255}  # ADE20K train ids of the synthetic classes
    meta = json.loads(video.path.with_suffix(".json").read_text())
    assert meta["n_frames"] == 16 and meta["scene_cut_at"] == 8


def test_scene_cut_is_the_largest_change(video) -> None:
    masks = np.stack([video.read_mask(i) for i in range(16)])
    changed = [(masks[i] != masks[i + 1]).mean() for i in range(15)]
    assert int(np.argmax(changed)) == 7  # between frame 7 and the cut at 8
    assert max(changed[:7]) > 0  # objects move (and the camera pans) inside a shot


def test_same_seed_same_masks(video, tmp_path) -> None:
    again = synth_video(tmp_path / "again.mp4", n_frames=16, size=(64, 96), fps=8, seed=1, pan=2)
    for i in range(16):
        np.testing.assert_array_equal(again.read_mask(i), video.read_mask(i))


def test_no_cut_and_bad_requests(tmp_path) -> None:
    clip = synth_video(tmp_path / "nocut.mp4", n_frames=4, size=(32, 32), scene_cut_at=None)
    assert clip.scene_cut_at is None and len(_frames(clip.path)) == 4
    with pytest.raises(VideoSynthError, match="scene_cut_at"):
        synth_video(tmp_path / "bad.mp4", n_frames=4, size=(32, 32), scene_cut_at=9)
    with pytest.raises(VideoSynthError, match="n_frames"):
        synth_video(tmp_path / "bad.mp4", n_frames=1)
