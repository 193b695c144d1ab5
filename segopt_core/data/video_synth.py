"""Short synthetic street videos (moving, occluding objects, a scene cut, optional camera pan) with
per-frame ground-truth masks, for the video flow's temporal metrics."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from segopt_core.data.synth import (
    CAR,
    SYNTH_CLASSES,
    SceneObject,
    apply_textures,
    draw_background,
    draw_object,
    finish,
    random_lighting,
    random_objects,
    texture_fields,
    to_label_space,
)
from segopt_core.errors import SegoptError

AUTO = -1


class VideoSynthError(SegoptError, RuntimeError):
    """A synthetic video that could not be written or does not read back as written."""


@dataclass(frozen=True)
class SynthVideo:
    """A written video and its masks (masks_dir/frame_00000.png..., label_space train ids, 255 = ignore)."""

    path: Path
    masks_dir: Path
    n_frames: int
    fps: float
    size: tuple[int, int]  # (height, width)
    scene_cut_at: int | None = None
    label_space: str = "ade20k"

    def mask_path(self, index: int) -> Path:
        """The PNG mask of frame `index`."""
        return self.masks_dir / f"frame_{index:05d}.png"

    def read_mask(self, index: int) -> np.ndarray:
        """The HxW uint8 ground truth of frame `index`."""
        from PIL import Image

        with Image.open(self.mask_path(index)) as img:
            return np.asarray(img, dtype=np.uint8)


@dataclass
class _Shot:
    base: np.ndarray
    label: np.ndarray
    fields: dict
    objects: list
    lighting: object


def _pan_origin(shot_base: np.ndarray, width: int, pan: int) -> int:
    """x of the view in the wide background at frame 0 (panning right starts left, and vice versa)."""
    return 0 if pan >= 0 else shot_base.shape[1] - width


def _make_shot(rng: np.random.Generator, size: tuple[int, int], n_frames: int, pan: int) -> _Shot:
    """A background wide enough for the pan, moving objects and one large occluder crossing the view."""
    height, width = size
    wide = width + abs(pan) * n_frames
    base, label = draw_background(rng, height, wide)
    horizon = float(np.argmax((label != SYNTH_CLASSES.index("sky")).any(axis=1)) / height)
    objects = random_objects(rng, height, wide, max(horizon, 0.3))
    speed = max(2.0, 1.2 * width / max(n_frames, 1))  # crosses most of the view during the shot
    colours = ((200, 30, 30), (30, 30, 30))
    x_start = _pan_origin(base, width, pan) - 0.2 * width  # world coordinates, just left of the view
    objects.append(SceneObject(CAR, x_start, height * 1.02, height * 0.25, colours, speed + pan))
    return _Shot(base, label, texture_fields(rng, height, wide), objects, random_lighting(rng))


def _render_frame(shot: _Shot, t: int, width: int, pan: int, rng: np.random.Generator):
    """(RGB uint8 frame, synthetic-id labels) of frame t of a shot; objects move in world coordinates."""
    x0 = _pan_origin(shot.base, width, pan) + pan * t
    base = shot.base[:, x0 : x0 + width].copy()
    label = shot.label[:, x0 : x0 + width].copy()
    for obj in shot.objects:
        draw_object(base, label, obj, obj.x + obj.velocity * t - x0)
    image = apply_textures(base, label, shot.fields, x0)
    return finish(image, shot.lighting, rng), label


def synth_video(
    out_path: str | Path,
    n_frames: int = 48,
    size: tuple[int, int] = (128, 128),
    fps: float = 12.0,
    seed: int = 0,
    scene_cut_at: int | None = AUTO,
    pan: int = 0,
    label_space: str = "ade20k",
) -> SynthVideo:
    """Write an mp4 (mp4v) and one PNG mask per frame; scene_cut_at=-1 cuts at the middle, None never."""
    import cv2

    out_path = Path(out_path).expanduser()
    height, width = size
    if n_frames < 2 or fps <= 0 or min(size) < 32:
        raise VideoSynthError(
            f"{out_path}: need n_frames >= 2, fps > 0 and size >= 32x32 (got {n_frames}, {fps}, {size})"
        )
    cut = n_frames // 2 if scene_cut_at == AUTO else scene_cut_at
    if cut is not None and not 0 < cut < n_frames:
        raise VideoSynthError(f"{out_path}: scene_cut_at={cut} must be inside 1..{n_frames - 1} (or None)")
    to_label_space(np.zeros(1, np.uint8), label_space)  # validates the name
    rng = np.random.default_rng([seed, 7])
    shots = [(0, cut or n_frames)] + ([(cut, n_frames)] if cut else [])
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{out_path.stem}.", dir=out_path.parent))
    tmp_video = tmp_dir / out_path.name
    try:
        writer = cv2.VideoWriter(str(tmp_video), cv2.VideoWriter_fourcc(*"mp4v"), float(fps), (width, height))
        if not writer.isOpened():
            raise VideoSynthError(f"{out_path}: OpenCV cannot open an mp4v writer (FFmpeg support missing)")
        try:
            for start, stop in shots:
                shot = _make_shot(rng, size, stop - start, pan)
                for t in range(stop - start):
                    frame, label = _render_frame(shot, t, width, pan, rng)
                    writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
                    _save_mask(
                        to_label_space(label, label_space), tmp_dir / "masks" / f"frame_{start + t:05d}.png"
                    )
        finally:
            writer.release()
        verify_video(tmp_video, n_frames, fps, size)
        video = SynthVideo(
            out_path, _masks_dir(out_path), n_frames, float(fps), (height, width), cut, label_space
        )
        _write_sidecar(tmp_dir, video, seed, pan)
        _publish(tmp_dir, out_path, video.masks_dir)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    return video


def _masks_dir(out_path: Path) -> Path:
    return out_path.with_name(f"{out_path.stem}_masks")


def _save_mask(mask: np.ndarray, path: Path) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(mask).save(path)


def _write_sidecar(tmp_dir: Path, video: SynthVideo, seed: int, pan: int) -> None:
    meta = {
        "video": video.path.name,
        "masks_dir": video.masks_dir.name,
        "n_frames": video.n_frames,
        "fps": video.fps,
        "size": list(video.size),
        "scene_cut_at": video.scene_cut_at,
        "pan_px_per_frame": pan,
        "seed": seed,
        "label_space": video.label_space,
        "classes": dict(
            zip(
                SYNTH_CLASSES,
                to_label_space(np.arange(7, dtype=np.uint8), video.label_space).tolist(),
                strict=True,
            )
        ),
    }
    (tmp_dir / "meta.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")


def _publish(tmp_dir: Path, out_path: Path, masks_dir: Path) -> None:
    """Move the verified video, masks and sidecar JSON into place (each with os.replace)."""
    if masks_dir.exists():
        shutil.rmtree(masks_dir)
    os.replace(tmp_dir / "masks", masks_dir)
    os.replace(tmp_dir / "meta.json", out_path.with_suffix(".json"))
    os.replace(tmp_dir / out_path.name, out_path)


def verify_video(path: Path, n_frames: int, fps: float, size: tuple[int, int]) -> None:
    """Check a video opens with cv2.VideoCapture with the expected frame count, fps and size."""
    import cv2

    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            raise VideoSynthError(f"{path}: cv2.VideoCapture cannot open the written video")
        read = 0
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            if frame.shape[:2] != tuple(size):
                raise VideoSynthError(f"{path}: frame {read} is {frame.shape[:2]}, expected {tuple(size)}")
            read += 1
        got_fps = capture.get(cv2.CAP_PROP_FPS)
    finally:
        capture.release()
    if read != n_frames or abs(got_fps - fps) > 0.01 * fps:
        raise VideoSynthError(
            f"{path}: reads back {read} frames at {got_fps} fps, expected {n_frames} at {fps}"
        )
