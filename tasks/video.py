"""Prefect task for video: one call of segopt_core.video.segment_video."""

from __future__ import annotations

from typing import Any

from prefect import task

from segopt_core.video import OverlayStyle, SmoothingOptions, VideoOptions, VideoOutputs, segment_video
from segopt_core.video.pipeline import model_threads, resolve_predictor
from segopt_core.video.stages import stage_line
from tasks.logs import run_logger


@task(name="segment-video", task_run_name="segment-video")
def segment_video_task(
    source: str,
    outputs: VideoOutputs,
    checkpoint: str | None = None,
    artifact: str | None = None,
    cell: str | None = None,
    smoothing: SmoothingOptions | None = None,
    style: OverlayStyle | None = None,
    options: VideoOptions | None = None,
    gt_masks: str | None = None,
) -> dict[str, Any]:
    """Segment one video source; returns the JSON summary (also written to outputs.summary)."""
    logger = run_logger("video")
    threads = model_threads(options or VideoOptions())
    predictor, spec = resolve_predictor(checkpoint, artifact, cell, num_threads=threads)
    summary = segment_video(
        source,
        predictor,
        spec,
        outputs,
        smoothing,
        style,
        options,
        gt_masks,
        on_metrics=lambda step, m: logger.info("frame %d: %s", step, m),
    )
    perf = summary["performance"]
    logger.info(
        "%s: %d frames (%d keyframes), %.1f fps end-to-end (model %.1f fps), %d dropped; stages %s",
        source,
        summary["frames"]["written"],
        summary["frames"]["keyframes"],
        perf["fps_end_to_end"] or 0.0,
        perf["fps_model"] or 0.0,
        summary["frames"]["dropped"],
        stage_line(summary["stages"]),
    )
    return summary
