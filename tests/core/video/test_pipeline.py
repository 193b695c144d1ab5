"""The end-to-end pipeline on real video files: timing kept, outputs valid, bad input and failures handled."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import cv2
import numpy as np
import pytest

from segopt_core.data import synth_video
from segopt_core.predictor import TorchPredictor
from segopt_core.video import (
    OverlayStyle,
    SmoothingOptions,
    VideoError,
    VideoOptions,
    VideoOutputs,
    model_input_size,
    open_source,
    segment_video,
)
from tests.core.video.conftest import FPS, SIZE, read_video, static_frames


def test_offline_run_keeps_frames_timing_and_size(tmp_path, video_file, tiny_predictor, tiny_spec):
    outputs = VideoOutputs(
        out=tmp_path / "out" / "overlay.mp4",
        mask_video=tmp_path / "out" / "mask.avi",
        masks_dir=tmp_path / "out" / "masks",
        summary=tmp_path / "out" / "summary.json",
    )
    summary = segment_video(
        video_file(16), tiny_predictor, tiny_spec, outputs, options=VideoOptions(batch_size=4)
    )
    for path in (outputs.out, outputs.mask_video):
        n, fps, size = read_video(path)
        assert (n, size) == (16, SIZE) and fps == pytest.approx(FPS)
    masks = sorted(outputs.masks_dir.glob("*.png"))
    assert len(masks) == 16 and cv2.imread(str(masks[0]), cv2.IMREAD_UNCHANGED).shape == SIZE
    written = json.loads(outputs.summary.read_text())
    assert written["frames"] == summary["frames"]
    frames = summary["frames"]
    assert (frames["read"], frames["processed"], frames["written"], frames["dropped"]) == (16, 16, 16, 0)
    perf = summary["performance"]
    assert perf["fps_end_to_end"] > 0 and perf["fps_model"] >= perf["fps_end_to_end"]
    assert perf["latency_ms_p99"] >= perf["latency_ms_median"] > 0 and perf["peak_rss_mb"] > 0
    assert summary["consistency"]["score_hw"] == [16, 24]  # model input 64x96 -> 1/4 resolution
    assert summary["consistency"]["raw"]["flow_pairs"] == 15


def test_smoothing_on_and_off_measured_in_one_pass(tmp_path, video_file, tiny_predictor, tiny_spec):
    source = video_file(12)
    off = segment_video(
        source, tiny_predictor, tiny_spec, VideoOutputs(tmp_path / "a.mp4"), SmoothingOptions(alpha=0.0)
    )
    on = segment_video(
        source, tiny_predictor, tiny_spec, VideoOutputs(tmp_path / "b.mp4"), SmoothingOptions(alpha=0.8)
    )
    assert off["consistency"]["raw"] == off["consistency"]["smoothed"]  # α = 0: identical streams
    assert on["consistency"]["raw"] == off["consistency"]["raw"]  # same logits, same raw metrics
    raw, smooth = on["consistency"]["raw"], on["consistency"]["smoothed"]
    assert smooth["static_persistence"] > raw["static_persistence"]  # static noisy scene


def test_ground_truth_miou_reported_next_to_consistency(tmp_path, tiny_predictor, tiny_spec):
    video = synth_video(tmp_path / "synth.mp4", n_frames=16, size=(64, 96), fps=10, seed=1)
    summary = segment_video(
        video.path, tiny_predictor, tiny_spec, VideoOutputs(tmp_path / "o.mp4"), gt_masks=video.masks_dir
    )
    for stream in ("raw", "smoothed"):
        block = summary["consistency"][stream]
        assert 0.0 <= block["miou_gt"] <= 1.0 and block["flow_tc"] is not None
    assert summary["frames"]["scene_cuts"] == 1  # synth_video cuts in the middle


def test_odd_frame_size_is_padded_to_even_and_stays_playable(tmp_path, tiny_predictor, tiny_spec):
    path = tmp_path / "odd"  # OpenCV's FFmpeg writer crops odd sizes, so odd frames come from PNGs
    path.mkdir()
    for i, frame in enumerate(static_frames(6, size=(63, 97))):
        cv2.imwrite(str(path / f"{i}.png"), frame)
    with open_source(path) as source:
        assert source.info.size == (63, 97)
    out = tmp_path / "odd_out.mp4"
    segment_video(path, tiny_predictor, tiny_spec, VideoOutputs(out), style=OverlayStyle(side_by_side=True))
    n, _, size = read_video(out)
    assert n == 6 and size == (64, 194)  # side by side doubles the width; odd sides padded by one pixel


def test_grayscale_image_sequence(tmp_path, tiny_predictor, tiny_spec):
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, frame in enumerate(static_frames(5)):
        cv2.imwrite(str(folder / f"{i}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY))
    summary = segment_video(
        open_source(folder, fps=7), tiny_predictor, tiny_spec, VideoOutputs(tmp_path / "g.mp4")
    )
    n, fps, _ = read_video(tmp_path / "g.mp4")
    assert summary["frames"]["written"] == n == 5 and fps == pytest.approx(7)


@dataclass
class SlowPredictor(TorchPredictor):
    """The tiny model plus a fixed delay: an accelerator that cannot keep up with the camera."""

    delay_s: float = 0.05

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        time.sleep(self.delay_s)
        return super().__call__(batch)


def test_live_mode_drops_frames_when_inference_falls_behind(tmp_path, tiny_model, tiny_spec, video_file):
    source = video_file(30, fps=100.0)  # a 100 fps "camera"; inference takes > 50 ms per batch
    summary = segment_video(
        source,
        SlowPredictor(tiny_model),
        tiny_spec,
        VideoOutputs(tmp_path / "live.mp4"),
        options=VideoOptions(mode="live", batch_size=1, queue_size=2),
    )
    frames = summary["frames"]
    assert frames["dropped"] > 0 and frames["read"] == 30
    assert frames["processed"] + frames["dropped"] == 30 == frames["read"]
    assert read_video(tmp_path / "live.mp4")[0] == frames["written"] == frames["processed"]


@dataclass
class FailingPredictor(TorchPredictor):
    """The tiny model that fails on its n-th call (a device lost mid-way)."""

    fail_on: int = 3
    calls: int = 0

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        self.calls += 1
        if self.calls == self.fail_on:
            raise RuntimeError("CUDA error: device lost")
        return super().__call__(batch)


def test_failure_mid_way_keeps_the_frames_done_in_a_playable_file(
    tmp_path, tiny_model, tiny_spec, video_file
):
    out, summary_path = tmp_path / "partial.mp4", tmp_path / "partial.json"
    with pytest.raises(VideoError, match="device lost.*8 frames done were saved"):
        segment_video(
            video_file(20),
            FailingPredictor(tiny_model),
            tiny_spec,
            VideoOutputs(out, summary=summary_path),
            options=VideoOptions(batch_size=4),
        )
    assert read_video(out)[0] == 8
    assert "device lost" in json.loads(summary_path.read_text())["error"]


def test_corrupt_image_mid_sequence_keeps_the_frames_before(tmp_path, tiny_predictor, tiny_spec):
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, frame in enumerate(static_frames(6)):
        cv2.imwrite(str(folder / f"{i}.png"), frame)
    (folder / "3.png").write_bytes(b"broken")
    with pytest.raises(VideoError, match="3.png: cannot be read"):
        segment_video(folder, tiny_predictor, tiny_spec, VideoOutputs(tmp_path / "o.mp4"))
    assert read_video(tmp_path / "o.mp4")[0] == 3


def test_unwritable_outputs_fail_before_any_work(tmp_path, video_file, tiny_predictor, tiny_spec):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    source = video_file(4)
    with pytest.raises(VideoError, match="cannot create folder"):
        segment_video(source, tiny_predictor, tiny_spec, VideoOutputs(blocker / "out.mp4"))
    with pytest.raises(VideoError, match="unsupported extension '.gif'"):
        segment_video(source, tiny_predictor, tiny_spec, VideoOutputs(tmp_path / "out.gif"))
    with pytest.raises(VideoError, match="summary"):
        segment_video(
            source, tiny_predictor, tiny_spec, VideoOutputs(tmp_path / "o.mp4", summary=blocker / "s.json")
        )


def test_model_input_size_keeps_aspect_in_multiples_of_32():
    assert model_input_size((1080, 1920), 512) == (512, 896)
    assert model_input_size((64, 96), 64) == (64, 96)
    assert model_input_size((1081, 1919), 1024) == (1024, 1824)


def test_live_mode_latency_stays_bounded_instead_of_queueing(tmp_path, tiny_model, tiny_spec, video_file):
    source = video_file(40, fps=50.0)  # 50 fps file read at its own rate; the model takes > 80 ms a frame
    slow = SlowPredictor(tiny_model, delay_s=0.08)
    slow(np.zeros((1, 3, *SIZE), np.float32))  # warm-up outside the run: latency is about queueing
    summary = segment_video(
        source,
        slow,
        tiny_spec,
        VideoOutputs(tmp_path / "live.mp4"),
        options=VideoOptions(mode="live", queue_size=2, metrics="off"),
    )
    frames, perf = summary["frames"], summary["performance"]
    assert frames["dropped"] > 10 and frames["processed"] + frames["dropped"] == 40
    # queueing every frame would make the last ones wait for ~all 40 model calls; dropping keeps the wait to
    # the frames the bounded queues hold (2 per queue) plus the call in flight
    model_ms = summary["stages"]["model"]["p90_ms"]
    assert perf["latency_ms_p99"] < 8 * model_ms < 40 * model_ms and perf["batch_size"] == 1


def test_summary_has_stage_times_threads_codec_and_standard_metrics(tmp_path, tiny_predictor, tiny_spec):
    video = synth_video(tmp_path / "s.mp4", n_frames=20, size=(64, 96), fps=10, seed=5, pan=1)
    summary = segment_video(
        video.path, tiny_predictor, tiny_spec, VideoOutputs(tmp_path / "o.mp4"), gt_masks=video.masks_dir
    )
    stages = summary["stages"]
    for name in ("decode", "resize", "model", "smoothing", "upsample", "overlay", "encode", "metrics"):
        assert stages[name]["frames"] == 20 and stages[name]["p90_ms"] >= stages[name]["p50_ms"] >= 0
    assert "propagation" not in stages  # per-frame policy
    perf = summary["performance"]
    assert perf["codec"] in ("avc1", "mp4v") and perf["threads"]["opencv_per_call"] == 1
    assert perf["batch_size"] in (1, 2, 4) and perf["chosen_by"] == "measured per-image cost"
    block = summary["consistency"]
    assert block["flow_method"] == "opencv-dis-ultrafast" and block["metrics"] == "full"
    for stream in ("raw", "smoothed"):
        assert 0 <= block[stream]["etc_tc"] <= 1 and block[stream]["vc_8"] is not None
        assert block[stream]["vc_16"] is None  # two 10-frame shots: no 16-frame window spans the cut


def test_sampled_and_off_metrics(tmp_path, video_file, tiny_predictor, tiny_spec):
    source = video_file(24)  # frames 0-16 form the first sampled run; 17-23 are skipped
    sampled, off = (
        segment_video(
            source,
            tiny_predictor,
            tiny_spec,
            VideoOutputs(tmp_path / f"{mode}.mp4"),
            options=VideoOptions(metrics=mode),
        )
        for mode in ("sampled", "off")
    )
    assert sampled["consistency"]["raw"]["flow_pairs"] == 16  # frames 0-16 measured, the next run from 68
    assert off["consistency"]["smoothed"]["flow_pairs"] == 0 and "metrics" not in off["stages"]
    assert VideoOptions().metrics_mode(300) == "full" and VideoOptions().metrics_mode(None) == "sampled"
    with pytest.raises(ValueError, match="full, sampled, off"):
        VideoOptions(metrics="some")


def test_the_model_gets_every_core_per_frame_and_live_and_one_less_with_keyframes_offline(monkeypatch):
    from segopt_core.video import parse_keyframes
    from segopt_core.video.pipeline import model_threads

    monkeypatch.setattr("os.cpu_count", lambda: 4)
    auto = parse_keyframes("auto")
    assert model_threads(VideoOptions()) == 4  # per-frame: the model is the bottleneck
    assert model_threads(VideoOptions(mode="live", keyframes=auto)) == 4  # the source's pace leaves cores
    assert model_threads(VideoOptions(keyframes=auto)) == 3  # decode, overlay, encode run beside it
    assert model_threads(VideoOptions(keyframes=auto, model_threads=2)) == 2
