"""Video segmentation: any source, pipelined inference, temporal smoothing, overlays, consistency metrics."""

from __future__ import annotations

from segopt_core.video.metrics import ConsistencyMeter, label_persistence, pair_miou, warp_labels
from segopt_core.video.overlay import LabelStyle, OverlayStyle, render
from segopt_core.video.pipeline import VideoOptions, VideoOutputs, model_input_size, segment_video
from segopt_core.video.smoothing import SmoothingOptions, TemporalSmoother, dense_flow, warp_scores
from segopt_core.video.sources import (
    CaptureSource,
    FrameSource,
    ImageSequenceSource,
    ReconnectPolicy,
    SourceInfo,
    VideoError,
    open_source,
)
from segopt_core.video.writer import VideoWriter

__all__ = [
    "CaptureSource",
    "ConsistencyMeter",
    "FrameSource",
    "ImageSequenceSource",
    "LabelStyle",
    "OverlayStyle",
    "ReconnectPolicy",
    "SmoothingOptions",
    "SourceInfo",
    "TemporalSmoother",
    "VideoError",
    "VideoOptions",
    "VideoOutputs",
    "VideoWriter",
    "dense_flow",
    "label_persistence",
    "model_input_size",
    "open_source",
    "pair_miou",
    "render",
    "segment_video",
    "warp_labels",
    "warp_scores",
]
