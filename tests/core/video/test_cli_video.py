"""`segopt video`: a real checkpoint and video file in, overlay + summary out; bad input is one clear line."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from segopt_cli.main import app
from tests.core.video.conftest import read_video


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, tiny_model, tiny_spec):
    from segopt_core.checkpoints import write_checkpoint

    return write_checkpoint(
        tiny_model, tiny_spec, tmp_path_factory.mktemp("ckpt") / "tiny.safetensors", "safetensors"
    )


def test_cli_segments_a_file(tmp_path, video_file, checkpoint):
    out = tmp_path / "o.mp4"
    args = ["video", str(video_file(10)), "--checkpoint", str(checkpoint), "--out", str(out)]
    result = CliRunner().invoke(app, [*args, "--alpha", "0.3", "--smooth", "probs", "--motion-aware"])
    assert result.exit_code == 0, result.output
    summary = json.loads(out.with_suffix(".json").read_text())
    assert summary["options"]["smoothing"]["alpha"] == 0.3 and summary["options"]["smoothing"]["motion_aware"]
    assert read_video(out)[0] == 10 == summary["frames"]["written"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["missing.mp4"], "no such file"),
        (["99"], "camera 99: not available"),
        (["IN", "--alpha", "1.0"], "alpha must be in [0, 1)"),
        (["IN", "--mode", "realtime"], "mode must be 'offline' or 'live'"),
    ],
)
def test_cli_bad_input_is_one_line_exit_2(tmp_path, video_file, checkpoint, extra, message):
    extra = [str(video_file(3)) if e == "IN" else e for e in extra]
    result = CliRunner().invoke(
        app, ["video", *extra, "--checkpoint", str(checkpoint), "--out", str(tmp_path / "o.mp4")]
    )
    assert result.exit_code == 2 and message in result.output
    assert "Traceback" not in result.output


def test_cli_needs_exactly_one_model(tmp_path, video_file):
    result = CliRunner().invoke(app, ["video", str(video_file(3)), "--out", str(tmp_path / "o.mp4")])
    assert result.exit_code == 2 and "exactly one of --checkpoint" in result.output


def test_cli_runs_an_optimized_artifact_with_its_stored_spec(tmp_path, video_file, tiny_model, tiny_spec):
    from segopt_core.backends import ArtifactStore, VariantOptions

    artifact = ArtifactStore(tmp_path / "store").get_or_build(
        tiny_model, VariantOptions("torch", "fp32"), spec=tiny_spec
    )
    out = tmp_path / "o.mp4"
    args = ["video", str(video_file(6)), "--artifact", str(artifact.path), "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert json.loads(out.with_suffix(".json").read_text())["cell"] == tiny_spec.name
    assert read_video(out)[0] == 6
    broken = CliRunner().invoke(app, [*args[:3], str(tmp_path), *args[4:]])
    assert broken.exit_code == 2 and "not a segopt artifact" in broken.output


def test_cli_says_on_the_console_when_a_file_was_cut_short(tmp_path, checkpoint, caplog):
    from tests.core.video.conftest import static_frames, write_video

    full = write_video(tmp_path / "full.avi", static_frames(20))  # MJPG/AVI: frames are independent
    cut = tmp_path / "cut.avi"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size * 6 // 10])
    out = tmp_path / "o.mp4"
    with caplog.at_level("WARNING"):  # a WARNING record reaches stderr in the CLI (logging's last resort)
        result = CliRunner().invoke(
            app, ["video", str(cut), "--checkpoint", str(checkpoint), "--out", str(out)]
        )
    assert result.exit_code == 0, result.output
    warning = [r.getMessage() for r in caplog.records if r.getMessage().startswith("warning:")]
    assert warning and "only" in warning[0] and "truncated file?" in warning[0], caplog.text
