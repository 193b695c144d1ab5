"""Dense optical flow and score warping at score resolution (H/4 × W/4 of the model input).

OpenCV's DIS (preset ULTRAFAST) is the flow method: on a 128×224 score-resolution frame it takes ~0.5 ms
(busy 2-core EPYC) against ~11-15 ms for Farneback, and it recovers a synthetic pan over 1-20 frame gaps
within 0.3 px where Farneback underestimates it by a third at 10+ frame gaps (docs/video.md).
"""

from __future__ import annotations

import threading

import cv2
import numpy as np

FLOW_METHOD = "opencv-dis-ultrafast"  # named in summaries so figures can be compared with papers'
_local = threading.local()  # one DIS object per thread (the object is reused, not shared)


class FlowError(RuntimeError):
    """Optical flow could not be computed for a frame pair (the frame becomes a keyframe)."""


def _dis() -> cv2.DISOpticalFlow:
    dis = getattr(_local, "dis", None)
    if dis is None:
        dis = _local.dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST)
    return dis


def dense_flow(gray_from: np.ndarray, gray_to: np.ndarray) -> np.ndarray:
    """DIS flow (h, w, 2) float32: gray_from(x) ≈ gray_to(x + flow(x)); FlowError when it fails."""
    try:
        flow = _dis().calc(np.ascontiguousarray(gray_from), np.ascontiguousarray(gray_to), None)
    except cv2.error as exc:
        raise FlowError(f"optical flow failed on a {gray_from.shape} pair: {exc}") from exc
    if flow is None or flow.shape[:2] != gray_from.shape or not np.isfinite(flow).all():
        raise FlowError(f"optical flow on a {gray_from.shape} pair returned no finite field")
    return flow


def sample_maps(flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """cv2.remap maps (x + flow_x, y + flow_y), float32."""
    h, w = flow.shape[:2]
    map_x = flow[..., 0] + np.arange(w, dtype=np.float32)[None, :]
    map_y = flow[..., 1] + np.arange(h, dtype=np.float32)[:, None]
    return map_x, map_y


def warp_scores(scores: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Bilinear sample of (C, h, w) scores at x + flow(x), edges clamped (one cv2.remap per channel)."""
    map_x, map_y = sample_maps(flow)
    out = np.empty_like(scores, dtype=np.float32)
    for c in range(scores.shape[0]):
        out[c] = cv2.remap(scores[c], map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return out


def unreliable_pixels(
    gray: np.ndarray,
    gray_to: np.ndarray,
    flow: np.ndarray,
    back: np.ndarray,
    max_error_px: float,
    max_gray_error: float,
) -> np.ndarray:
    """Pixels whose flow leaves the frame, or whose flow disagrees with the reverse flow by > max_error_px
    where the warp also fails to explain the image (|gray − warped gray_to| > max_gray_error): occlusions.

    The photometric condition matters: DIS's forward and backward flows disagree on 15-40 % of the pixels of
    textureless regions (sky, road) of the synthetic clips at score resolution, where any flow warps the
    same values; together with it the share falls to 0.3-10 %, growing with real occlusion.
    """
    h, w = flow.shape[:2]
    map_x, map_y = sample_maps(flow)
    outside = (map_x < 0) | (map_x > w - 1) | (map_y < 0) | (map_y > h - 1)
    back_at = cv2.remap(back, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    disagree = np.linalg.norm(flow + back_at, axis=2) > max_error_px
    warped = cv2.remap(gray_to, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return outside | (disagree & (cv2.absdiff(warped, gray) > max_gray_error))
