"""Keyframes and propagation: per-frame equality, zero motion, a known pan, scene cuts, failed flow."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from segopt_core.data import synth_video
from segopt_core.data.preprocess import preprocess
from segopt_core.errors import OptionError
from segopt_core.video import KeyframePolicy, SmoothingOptions, VideoOptions, VideoOutputs, segment_video
from segopt_core.video.keyframes import Propagator, parse_keyframes
from segopt_core.video.segmenter import BatchSizer, normalize, resize_frame, small_gray
from segopt_core.video.smoothing import TemporalSmoother
from segopt_core.video.sources import open_source
from tests.core.video.conftest import static_frames


def _masks(folder) -> list[np.ndarray]:
    return [cv2.imread(str(p), cv2.IMREAD_UNCHANGED) for p in sorted(folder.glob("*.png"))]


def _todays_masks(path, predictor, spec, alpha: float) -> list[np.ndarray]:
    """Per-frame inference as segopt did it before keyframes: model on each frame, EMA, argmax, upsample."""
    smoother, masks = TemporalSmoother(SmoothingOptions(alpha=alpha)), []
    with open_source(path) as source:
        for frame in source:
            resized = resize_frame(frame, frame.shape[:2])
            logits = predictor(preprocess(resized, spec)[None])[0]
            scores = smoother.update(logits, small_gray(resized, logits.shape[1:]))
            labels = np.argmax(scores, axis=0).astype(np.uint8)
            masks.append(cv2.resize(labels, frame.shape[1::-1], interpolation=cv2.INTER_NEAREST))
    return masks


def test_keyframes_1_is_exactly_per_frame_inference(tmp_path, tiny_predictor, tiny_spec):
    video = synth_video(tmp_path / "clip.mp4", n_frames=12, size=(64, 96), fps=10, seed=2, pan=2)
    outputs = VideoOutputs(tmp_path / "o.mp4", masks_dir=tmp_path / "masks")
    summary = segment_video(
        video.path,
        tiny_predictor,
        tiny_spec,
        outputs,
        SmoothingOptions(alpha=0.6),
        options=VideoOptions(keyframes=parse_keyframes("1"), batch_size=1),
    )
    got, want = _masks(outputs.masks_dir), _todays_masks(video.path, tiny_predictor, tiny_spec, 0.6)
    assert len(got) == len(want) == 12
    for a, b in zip(got, want, strict=True):
        np.testing.assert_array_equal(a, b)
    assert summary["frames"]["keyframes"] == 12 and summary["keyframes"]["propagated"] == 0


def test_normalize_is_bit_identical_to_preprocess(tiny_spec):
    image = np.random.default_rng(0).integers(0, 256, (40, 56, 3), np.uint8)
    np.testing.assert_array_equal(normalize(image, tiny_spec), preprocess(image, tiny_spec))


def _one_hot_logits(labels: np.ndarray, num_classes: int) -> np.ndarray:
    logits = np.zeros((num_classes, *labels.shape), np.float32)
    np.put_along_axis(logits, labels[None].astype(np.intp), 4.0, axis=0)
    return logits


def _world(size: tuple[int, int], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A smooth random texture (gray) and a blob label map (4 classes) of the same world."""
    rng = np.random.default_rng(seed)
    h, w = size
    texture = cv2.resize(
        rng.integers(0, 256, (h // 4, w // 4), np.uint8), (w, h), interpolation=cv2.INTER_CUBIC
    )
    field = cv2.GaussianBlur(rng.normal(size=(h, w)).astype(np.float32), (0, 0), 6)
    labels = np.digitize(field, np.quantile(field, [0.25, 0.5, 0.75])).astype(np.uint8)
    return texture, labels


def test_zero_motion_propagates_the_keyframe_labels_unchanged():
    texture, labels = _world((64, 96))
    propagator = Propagator(KeyframePolicy(every=8), SmoothingOptions(alpha=0.0))
    outcome = propagator.propagate(texture, scene_cut=False)
    assert outcome.reason == "start"
    _, key_labels = propagator.keyframe(_one_hot_logits(labels, 4), texture, outcome)
    np.testing.assert_array_equal(key_labels, labels)
    for _ in range(6):
        step = propagator.propagate(texture.copy(), scene_cut=False)
        assert step.reason is None
        np.testing.assert_array_equal(step.labels, key_labels)


@pytest.mark.parametrize("policy", ["4", "auto"])
def test_a_known_pan_is_followed_within_one_pixel_in_the_interior(policy):
    d, h, w, margin = 2, 64, 96, 12
    texture, labels = _world((h, w + 8 * d), seed=1)
    propagator = Propagator(parse_keyframes(policy), SmoothingOptions(alpha=0.0))
    first = propagator.propagate(texture[:, :w], scene_cut=False)
    propagator.keyframe(_one_hot_logits(labels[:, :w], 4), texture[:, :w], first)
    for t in range(1, 4):  # the view pans right by d px per frame: content moves left
        step = propagator.propagate(texture[:, t * d : t * d + w], scene_cut=False)
        assert step.reason is None, step.reason
        truth = labels[:, t * d : t * d + w]
        near = np.zeros((h, w), bool)
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                near |= np.roll(truth, (dy, dx), axis=(0, 1)) == step.labels
        interior = near[margin:-margin, margin:-margin]
        assert interior.all(), f"frame {t}: {(~interior).sum()} interior pixels off by more than 1 px"


def test_a_scene_cut_forces_a_keyframe(tmp_path, tiny_predictor, tiny_spec):
    video = synth_video(tmp_path / "cut.mp4", n_frames=16, size=(64, 96), fps=10, seed=1)
    summary = segment_video(
        video.path,
        tiny_predictor,
        tiny_spec,
        VideoOutputs(tmp_path / "o.mp4"),
        options=VideoOptions(keyframes=parse_keyframes("100"), metrics="off"),
    )
    reasons = summary["keyframes"]["reasons"]
    assert reasons["scene_cut"] == 1 and reasons["start"] == 1
    assert summary["frames"]["keyframes"] == 2 and summary["keyframes"]["propagated"] == 14
    assert summary["frames"]["written"] == 16 and summary["consistency"]["raw"] is None


def test_a_failed_flow_makes_the_frame_a_keyframe_and_is_counted(tmp_path, tiny_predictor, tiny_spec):
    folder = tmp_path / "tiny"  # 32x32 frames: 8x8 at score resolution, too small for DIS's patches
    folder.mkdir()
    for i, frame in enumerate(static_frames(5, size=(32, 32))):
        cv2.imwrite(str(folder / f"{i}.png"), frame)
    summary = segment_video(
        folder,
        tiny_predictor,
        tiny_spec,
        VideoOutputs(tmp_path / "o.mp4"),
        options=VideoOptions(keyframes=parse_keyframes("auto"), input_hw=(32, 32)),
    )
    assert summary["frames"]["flow_failures"] == 4 and summary["frames"]["keyframes"] == 5
    assert summary["frames"]["written"] == 5


def test_auto_on_a_panning_clip_runs_the_model_on_fewer_frames(tmp_path, tiny_predictor, tiny_spec):
    video = synth_video(tmp_path / "pan.mp4", n_frames=24, size=(64, 96), fps=10, seed=4, pan=1)
    summary = segment_video(
        video.path,
        tiny_predictor,
        tiny_spec,
        VideoOutputs(tmp_path / "o.mp4", masks_dir=tmp_path / "m"),
        options=VideoOptions(keyframes=parse_keyframes("auto")),
        gt_masks=video.masks_dir,
    )
    frames, block = summary["frames"], summary["consistency"]["smoothed"]
    assert 2 <= frames["keyframes"] < 24 and frames["keyframes"] + summary["keyframes"]["propagated"] == 24
    assert len(_masks(tmp_path / "m")) == 24 and block["miou_gt"] is not None
    assert summary["stages"]["propagation"]["frames"] == 24  # the decision runs on every frame
    assert set(summary["stages"]) >= {"decode", "resize", "model", "overlay", "encode", "metrics"}


@pytest.mark.parametrize("text", ["0", "-2", "sometimes", "1.5", ""])
def test_bad_keyframe_forms_list_the_valid_ones(text):
    with pytest.raises(OptionError, match="valid forms are 'auto' or a positive integer"):
        parse_keyframes(text)
    assert parse_keyframes("AUTO").auto and parse_keyframes(" 3 ").every == 3


def test_batch_size_is_the_cheapest_measured_per_image():
    sizer = BatchSizer(fixed=None, live=False)
    for size, seconds in [(1, 9.0), (1, 0.10), (2, 0.16), (4, 0.60)]:  # first call: warm-up, ignored
        assert sizer.next_size() == size
        sizer.record(size, seconds)
    assert sizer.chosen == 2 and sizer.summary()["per_image_ms"] == {"1": 100.0, "2": 80.0, "4": 150.0}
    assert BatchSizer(fixed=None, live=True).next_size() == 1 and BatchSizer(3, False).next_size() == 3


def test_a_frame_size_change_resets_the_keyframe_scores():
    texture, labels = _world((64, 96))
    propagator = Propagator(KeyframePolicy(every=8), SmoothingOptions(alpha=0.6))
    propagator.keyframe(_one_hot_logits(labels, 4), texture, propagator.propagate(texture, False))
    small = cv2.resize(texture, (48, 32))
    outcome = propagator.propagate(small, scene_cut=False)
    assert outcome.reason == "start" and outcome.flow is None  # no history is blended across the change
    scores, _ = propagator.keyframe(
        _one_hot_logits(cv2.resize(labels, (48, 32), interpolation=0), 4), small, outcome
    )
    np.testing.assert_array_equal(scores, _one_hot_logits(cv2.resize(labels, (48, 32), interpolation=0), 4))


def _labels_in_turn(path, predictor, spec, policy: KeyframePolicy) -> list[np.ndarray]:
    """Keyframe policies as run before the model was called ahead: each frame in turn, in one thread."""
    from segopt_core.video.segmenter import Segmenter
    from segopt_core.video.stages import StageTimes

    segmenter = Segmenter(predictor, spec, SmoothingOptions(), policy, None, None, StageTimes())
    masks = []
    with open_source(path) as source:
        for index, image in enumerate(source):
            frame = segmenter.prepare(index, image, 0.0)
            segmenter.mark_scene_cut(frame)
            labels = segmenter.step(frame)
            masks.append(cv2.resize(labels, image.shape[1::-1], interpolation=cv2.INTER_NEAREST))
    return masks


@pytest.mark.parametrize("policy", ["3", "auto"])
def test_model_calls_made_ahead_label_every_frame_as_calls_in_turn(
    tmp_path, tiny_predictor, tiny_spec, policy
):
    import threading

    threads = set()

    def predictor(batch):
        threads.add(threading.current_thread().name)
        return tiny_predictor(batch)

    predictor.name, predictor.precision, predictor.device = "tiny", "fp32", "cpu"
    video = synth_video(tmp_path / "pan.mp4", n_frames=20, size=(64, 96), fps=10, seed=4, pan=2)
    outputs = VideoOutputs(tmp_path / "o.mp4", masks_dir=tmp_path / "m")
    summary = segment_video(
        video.path, predictor, tiny_spec, outputs,
        options=VideoOptions(keyframes=parse_keyframes(policy), metrics="off"),
    )  # fmt: skip
    want = _labels_in_turn(video.path, tiny_predictor, tiny_spec, parse_keyframes(policy))
    got = _masks(outputs.masks_dir)
    assert len(got) == len(want) == 20
    for i, (a, b) in enumerate(zip(got, want, strict=True)):
        np.testing.assert_array_equal(a, b, err_msg=f"frame {i}")
    assert threads == {"segopt-model_0"}  # the model ran in its worker, beside the propagation
    if policy == "3":  # the call made ahead for frame 12 was not used: the cut at 10 made a keyframe there
        assert summary["keyframes"]["reasons"]["scene_cut"] == 1
        assert summary["frames"]["model_calls_unused"] == 1
