"""`segopt video`: segment a video file, camera, stream or image sequence into an overlay video."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from segopt_cli.common import FAILED_EXIT, USAGE_EXIT, fail, parse_size
from segopt_core.atomic import is_disk_full


def video(
    input: str = typer.Argument(..., help="Video file, image folder/glob, camera index (0) or stream URL."),
    out: Path = typer.Option(..., "--out", help="Overlay video to write (.mp4, .avi)."),
    checkpoint: Path | None = typer.Option(None, help="SegFormer checkpoint (any format segopt reads)."),
    artifact: Path | None = typer.Option(
        None,
        help="Optimized artifact folder (from `segopt optimize`), or 'auto': the one the latest optimize-all "
        "report recommends for the cell (--cell) at batch 1.",
    ),
    cell: str | None = typer.Option(
        None, help="Matrix cell when it cannot be inferred (e.g. b0-512-ade20k)."
    ),
    alpha: float = typer.Option(0.6, help="Temporal smoothing α in [0, 1); 0 turns it off."),
    smooth: str = typer.Option("logits", help="Smooth 'logits' or 'probs' (softmax)."),
    motion_aware: bool = typer.Option(
        False, help="Warp previous scores with optical flow; lower α on motion."
    ),
    scene_cut: float = typer.Option(
        30.0, help="Scene-cut threshold: mean |Δgray| (0..255) that resets smoothing."
    ),
    mode: str = typer.Option("offline", help="'offline' (every frame) or 'live' (drop frames when behind)."),
    batch_size: str = typer.Option(
        "auto", help="Frames per inference batch, or 'auto' (picked from measured per-image cost)."
    ),
    keyframes: str = typer.Option(
        "1",
        help="Model on every frame (1), every N-th frame (N), or 'auto' (scene cuts, motion, occlusion, "
        "confidence drops; at least every 4 frames); scores are warped with optical flow in between.",
    ),
    metrics: str = typer.Option(
        "auto", help="Consistency metrics: full | sampled | off | auto (full up to 300 frames, else sampled)."
    ),
    input_short: int | None = typer.Option(None, help="Model input short side (default: the cell's crop)."),
    input_size: str | None = typer.Option(None, help="Fixed model input HxW (static-shape artifacts)."),
    opacity: float = typer.Option(0.5, help="Mask opacity over the frame, 0..1."),
    legend: bool = typer.Option(True, help="Draw a legend of the classes present."),
    side_by_side: bool = typer.Option(False, help="Write original | overlay side by side."),
    mask_video: Path | None = typer.Option(None, help="Also write a colour mask video here."),
    masks_dir: Path | None = typer.Option(None, help="Also write per-frame label PNGs here."),
    gt_masks: Path | None = typer.Option(None, help="Per-frame ground-truth label PNGs: report mIoU."),
    fps: float | None = typer.Option(None, help="Frame rate of an image-sequence input (default 25)."),
    summary: Path | None = typer.Option(None, help="JSON summary path (default: next to --out)."),
    device: str = typer.Option("cpu", help="Device of a --checkpoint model (cpu, cuda)."),
) -> None:
    """Segment a video source with temporal smoothing; writes an overlay video and a JSON summary."""
    from segopt_core.video import (
        OverlayStyle,
        SmoothingOptions,
        VideoError,
        VideoOptions,
        VideoOutputs,
        open_source,
        segment_video,
    )
    from segopt_core.video.keyframes import parse_keyframes
    from segopt_core.video.pipeline import model_threads, resolve_predictor

    summary = summary or out.with_suffix(".json")
    _check_options(out, summary, device)
    try:
        policy = parse_keyframes(keyframes)
        smoothing = SmoothingOptions(
            alpha=alpha, space=smooth, scene_cut_threshold=scene_cut, motion_aware=motion_aware
        )
        options = VideoOptions(
            mode=mode,
            batch_size=_batch_size(batch_size),
            keyframes=policy,
            metrics=metrics,
            input_short=input_short,
            input_hw=parse_size(input_size, "--input-size") if input_size else None,
            progress=True,
        )
        style = OverlayStyle(opacity=opacity, legend=legend, side_by_side=side_by_side)
        if (checkpoint is None) == (artifact is None):
            raise VideoError("pass exactly one of --checkpoint PATH or --artifact DIR")
        source = open_source(input, fps=fps)
        try:
            predictor, spec = resolve_predictor(
                checkpoint, artifact, cell, device, num_threads=model_threads(options)
            )
        except BaseException:
            source.close()
            raise
        result = segment_video(
            source,
            predictor,
            spec,
            VideoOutputs(out=out, mask_video=mask_video, masks_dir=masks_dir, summary=summary),
            smoothing=smoothing,
            style=style,
            options=options,
            gt_masks=gt_masks,
        )
    except (VideoError, ValueError, KeyError) as exc:  # bad input 2; a full disk is failed work (1)
        fail(str(exc).strip("'\""), FAILED_EXIT if is_disk_full(exc) else USAGE_EXIT)
    shown = {key: result[key] for key in ("performance", "keyframes", "stages", "consistency")}
    typer.echo(json.dumps(shown, indent=2))
    typer.echo(f"wrote {out} ({result['frames']['written']} frames) and {summary}")


def _batch_size(text: str) -> int | None:
    """'auto' -> None (measured); a positive integer as is; one `error:` line otherwise."""
    if text.strip().lower() == "auto":
        return None
    if not text.strip().isdigit() or int(text) < 1:
        fail(f"--batch-size {text}: the valid forms are 'auto' or a positive integer")
    return int(text)


def _check_options(out: Path, summary: Path, device: str) -> None:
    """One line (exit 2) for an output path that cannot be written or a device this torch lacks."""
    import torch

    from segopt_core.atomic import check_target_path

    for path in (out, summary):
        check_target_path(path)
    if device not in ("cpu", "cuda"):
        fail(f"--device {device!r}: must be cpu or cuda")
    if device == "cuda" and not torch.cuda.is_available():
        fail("--device cuda: this torch has no usable CUDA device (a CPU build, or no GPU); use --device cpu")


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.command(name="video")(video)
