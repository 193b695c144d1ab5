"""Fixtures for video tests: real OpenCV video files written by the tests, a tiny real predictor."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from segopt_core.predictor import TorchPredictor

FPS = 12.5
SIZE = (64, 96)  # (h, w): small frames keep the whole video suite within a few seconds


def static_frames(
    n: int, size: tuple[int, int] = SIZE, noise: float = 6.0, seed: int = 0
) -> list[np.ndarray]:
    """A static textured RGB scene with per-frame Gaussian noise."""
    rng = np.random.default_rng(seed)
    base = cv2.resize(rng.integers(0, 255, (size[0] // 8, size[1] // 8, 3), np.uint8), (size[1], size[0]))
    return [np.clip(base + rng.normal(0, noise, base.shape), 0, 255).astype(np.uint8) for _ in range(n)]


def write_video(path: Path, frames: list[np.ndarray], fps: float = FPS) -> Path:
    """Write RGB frames to an mp4v (.mp4) or MJPG (.avi) file with OpenCV."""
    fourcc = "MJPG" if path.suffix == ".avi" else "mp4v"
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (w, h))
    assert writer.isOpened(), f"cannot write test video {path}"
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def read_video(path: Path) -> tuple[int, float, tuple[int, int]]:
    """(decoded frame count, fps, (h, w)) of a video file."""
    cap = cv2.VideoCapture(str(path))
    assert cap.isOpened(), f"{path} does not open"
    fps, size, n = cap.get(cv2.CAP_PROP_FPS), (int(cap.get(4)), int(cap.get(3))), 0
    while cap.read()[0]:
        n += 1
    cap.release()
    return n, fps, size


@pytest.fixture
def video_file(tmp_path: Path) -> Callable[..., Path]:
    """Factory: a static noisy test video with n frames (mp4v unless the name says .avi)."""

    def make(n: int = 20, name: str = "in.mp4", size: tuple[int, int] = SIZE, fps: float = FPS) -> Path:
        return write_video(tmp_path / name, static_frames(n, size), fps)

    return make


@pytest.fixture(scope="session")
def tiny_predictor(tiny_model) -> TorchPredictor:
    """The tiny random-init SegFormer as an fp32 eager predictor."""
    return TorchPredictor(tiny_model)
