"""Prefect flow `video`: source -> pipelined segmentation with temporal smoothing -> overlay + summary."""

from __future__ import annotations

from pathlib import Path

from prefect import flow

from flows.naming import run_options
from segopt_core.video import OverlayStyle, SmoothingOptions, VideoOptions, VideoOutputs, parse_keyframes
from tasks.video import segment_video_task


@flow(name="video", **run_options(), log_prints=True)
def video_flow(
    source: str,
    out: str,
    checkpoint: str | None = None,
    artifact: str | None = None,
    cell: str | None = None,
    alpha: float = 0.6,
    smooth: str = "logits",
    motion_aware: bool = False,
    mode: str = "offline",
    batch_size: int | None = None,
    keyframes: str = "1",
    metrics: str = "auto",
    input_short: int | None = None,
    opacity: float = 0.5,
    side_by_side: bool = False,
    mask_video: str | None = None,
    masks_dir: str | None = None,
    gt_masks: str | None = None,
    summary: str | None = None,
) -> dict:
    """Segment a video file, camera index, stream URL or image folder; returns the JSON summary.

    Args:
        source: Video file, image folder or glob, camera index (0) or stream URL (rtsp://, http://).
        out: Overlay video to write (.mp4, .avi).
        checkpoint: SegFormer checkpoint (any format segopt reads); give it or artifact.
        artifact: Optimized artifact folder (from optimize / optimize-all), or "auto": the artifact the latest
            optimize-all report recommends for the clip's cell at batch 1; give it or checkpoint.
        cell: Matrix cell when it cannot be inferred, e.g. b0-512-ade20k; empty: inferred.
        alpha: Temporal smoothing weight in [0, 1); 0 turns it off. Default: 0.6.
        smooth: Smooth 'logits' or 'probs' (softmax). Default: logits.
        motion_aware: Warp previous scores with optical flow and lower alpha on motion. Default: False.
        mode: 'offline' (every frame) or 'live' (drop frames when behind). Default: offline.
        batch_size: Frames per inference batch; empty: picked from measured per-image cost.
        keyframes: "1" (the model on every frame), "N" (a keyframe every N frames) or "auto" (keyframes on
            scene cuts, motion, occlusion and low confidence; propagation between them). Default: 1.
        metrics: Consistency metrics: "full", "sampled", "off" or "auto" (sampled for long videos).
            Default: auto.
        input_short: Model input short side (multiple of 32); empty: the cell's crop height.
        opacity: Mask opacity over the frame, 0..1. Default: 0.5.
        side_by_side: Write original | overlay side by side. Default: False.
        mask_video: Also write a colour mask video here; empty: none.
        masks_dir: Also write per-frame label PNGs here; empty: none.
        gt_masks: Per-frame ground-truth label PNGs, to report mIoU; empty: none.
        summary: JSON summary path; empty: next to out (.json).
    """
    outputs = VideoOutputs(
        out=Path(out),
        mask_video=Path(mask_video) if mask_video else None,
        masks_dir=Path(masks_dir) if masks_dir else None,
        summary=Path(summary) if summary else Path(out).with_suffix(".json"),
    )
    return segment_video_task(
        source,
        outputs,
        checkpoint=checkpoint,
        artifact=artifact,
        cell=cell,
        smoothing=SmoothingOptions(alpha=alpha, space=smooth, motion_aware=motion_aware),
        style=OverlayStyle(opacity=opacity, side_by_side=side_by_side),
        options=VideoOptions(
            mode=mode,
            batch_size=batch_size,
            keyframes=parse_keyframes(keyframes),
            metrics=metrics,
            input_short=input_short,
        ),
        gt_masks=gt_masks,
    )
