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

    `keyframes` is "1" (the model on every frame), "N" or "auto" (propagation between keyframes);
    `batch_size` None picks it from measured per-image cost; `artifact` "auto" takes the artifact the latest
    optimize-all report recommends for `cell` at batch 1.
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
