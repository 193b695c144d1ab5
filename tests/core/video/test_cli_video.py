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


@pytest.mark.parametrize("value", ["0", "-1", "often"])
def test_cli_bad_keyframes_is_one_line_listing_the_valid_forms(tmp_path, video_file, checkpoint, value):
    result = CliRunner().invoke(
        app,
        ["video", str(video_file(3)), "--checkpoint", str(checkpoint), "--out", str(tmp_path / "o.mp4"),
         "--keyframes", value],
    )  # fmt: skip
    lines = [ln for ln in result.output.splitlines() if ln.startswith("error:")]
    assert result.exit_code == 2 and len(lines) == 1 and "Traceback" not in result.output
    assert f"--keyframes {value}: the valid forms are 'auto' or a positive integer N" in lines[0]


def _report(root, cell: str, artifact: str, variant: str = "torch-fp32") -> None:
    """A minimal optimize-all report folder: results.parquet with one accepted row at batch 1."""
    import pandas as pd

    from segopt_core.reports.recommend import COLUMNS

    row = dict.fromkeys(COLUMNS)
    row |= {"cell": cell, "checkpoint": "c", "batch_size": 1, "variant": variant, "artifact": artifact,
            "latency_ms_median": 5.0, "status": "ok", "accepted": True}  # fmt: skip
    folder = root / "20260101T000000Z-optimize-all-local"
    folder.mkdir(parents=True)
    pd.DataFrame([row]).to_parquet(folder / "results.parquet")


def test_cli_artifact_auto_takes_the_latest_reports_recommendation(
    tmp_path, video_file, tiny_model, tiny_spec, monkeypatch
):
    from segopt_core.backends import ArtifactStore, VariantOptions

    monkeypatch.setenv("SEGOPT_REPORTS_DIR", str(tmp_path / "reports"))
    args = ["video", str(video_file(4)), "--artifact", "auto", "--out", str(tmp_path / "o.mp4")]
    missing = CliRunner().invoke(app, args)
    assert missing.exit_code == 2 and "no optimize-all report under" in missing.output
    artifact = ArtifactStore(tmp_path / "store").get_or_build(
        tiny_model, VariantOptions("torch", "fp32"), spec=tiny_spec
    )
    _report(tmp_path / "reports", tiny_spec.name, str(artifact.path))
    result = CliRunner().invoke(app, [*args, "--keyframes", "auto"])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "o.json").read_text())["cell"] == tiny_spec.name
    other = CliRunner().invoke(app, [*args, "--cell", "b0-512-ade20k"])
    assert other.exit_code == 2 and "no recommended variant for cell b0-512-ade20k at batch 1" in other.output
