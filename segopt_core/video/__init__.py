"""Video segmentation: any source, pipelined inference, temporal smoothing, overlays, consistency metrics."""

from __future__ import annotations

from segopt_core.video.flow import FLOW_METHOD, FlowError, dense_flow, warp_scores
from segopt_core.video.keyframes import KeyframePolicy, parse_keyframes
from segopt_core.video.metrics import (
    ConsistencyMeter,
    EtcConsistency,
    VideoConsistency,
    label_persistence,
    pair_miou,
    warp_labels,
)
from segopt_core.video.overlay import LabelStyle, OverlayStyle, render
from segopt_core.video.pipeline import VideoOptions, VideoOutputs, model_input_size, segment_video
from segopt_core.video.smoothing import SmoothingOptions, TemporalSmoother
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
    "FLOW_METHOD",
    "CaptureSource",
    "ConsistencyMeter",
    "EtcConsistency",
    "FlowError",
    "KeyframePolicy",
    "FrameSource",
    "ImageSequenceSource",
    "LabelStyle",
    "OverlayStyle",
    "ReconnectPolicy",
    "SmoothingOptions",
    "SourceInfo",
    "TemporalSmoother",
    "VideoConsistency",
    "VideoError",
    "VideoOptions",
    "VideoOutputs",
    "VideoWriter",
    "dense_flow",
    "label_persistence",
    "model_input_size",
    "open_source",
    "pair_miou",
    "parse_keyframes",
    "render",
    "segment_video",
    "warp_labels",
    "warp_scores",
]
