"""The `video` flow runs under a real Prefect test server on a synthetic video with ground truth."""

from __future__ import annotations

import json

import cv2


def test_video_flow_writes_overlay_and_summary(prefect_harness, tmp_path, tiny_model, tiny_spec):
    from flows.video import video_flow
    from segopt_core.checkpoints import write_checkpoint
    from segopt_core.data import synth_video

    checkpoint = write_checkpoint(tiny_model, tiny_spec, tmp_path / "tiny.safetensors", "safetensors")
    video = synth_video(tmp_path / "synth.mp4", n_frames=12, size=(64, 96), fps=8, seed=3)
    out = tmp_path / "out" / "overlay.mp4"
    summary = video_flow(
        source=str(video.path),
        out=str(out),
        checkpoint=str(checkpoint),
        alpha=0.6,
        keyframes="auto",
        masks_dir=str(tmp_path / "out" / "masks"),
        gt_masks=str(video.masks_dir),
    )
    assert summary["frames"]["written"] == 12 and summary["cell"] == tiny_spec.name
    assert summary["keyframes"]["policy"] == "auto" and summary["frames"]["keyframes"] >= 2
    assert summary["consistency"]["smoothed"]["miou_gt"] is not None
    assert json.loads(out.with_suffix(".json").read_text())["frames"] == summary["frames"]
    cap = cv2.VideoCapture(str(out))
    assert cap.get(cv2.CAP_PROP_FPS) == 8 and int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 12
    cap.release()
    assert len(list((tmp_path / "out" / "masks").glob("*.png"))) == 12


def test_segment_video_task_fn_rejects_missing_model(tmp_path):
    import pytest

    from segopt_core.video import VideoError, VideoOutputs
    from tasks.video import segment_video_task

    with pytest.raises(VideoError, match="exactly one of --checkpoint"):
        segment_video_task.fn("in.mp4", VideoOutputs(tmp_path / "o.mp4"))
