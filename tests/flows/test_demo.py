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
