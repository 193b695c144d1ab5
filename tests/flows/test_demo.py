"""The demo's closing lines: where each result is, and the video's speed."""

from __future__ import annotations

from flows.demo import video_fps
from segopt_cli.demo import fps_line


def test_video_fps_comes_from_the_performance_section_of_the_video_summary():
    """The demo read `fps_end_to_end` from the top level of the summary, where it is not, and printed None."""
    summary = {"frames": {"written": 60}, "performance": {"fps_end_to_end": 24.13, "fps_model": 61.02}}
    assert video_fps(summary) == {"video_fps": 24.13, "video_model_fps": 61.02}
    assert video_fps({}) == {"video_fps": None, "video_model_fps": None}


def test_the_closing_lines_print_end_to_end_and_model_fps():
    assert fps_line({"video_fps": 24.13, "video_model_fps": 61.02}) == "24.1 FPS end-to-end, 61.0 FPS model"
    assert fps_line({}) == "– FPS end-to-end, – FPS model"


def test_the_video_step_compares_keyframes_auto_with_per_frame_inference():
    from flows.demo import keyframes_vs_per_frame

    def summary(miou, keyframes, fps):
        return {
            "consistency": {"smoothed": {"miou_gt": miou}},
            "frames": {"keyframes": keyframes, "written": 48},
            "performance": {"fps_end_to_end": fps},
        }

    line = keyframes_vs_per_frame(summary(0.594, 9, 30.1), summary(0.6, 48, 11.2))
    assert line == (
        "mIoU 0.594 vs 0.600 per-frame (99.0 %), model on 9/48 frames, per-frame 11.2 FPS end-to-end"
    )
