"""A full disk: `segopt video` fails with one line naming the path and "no space left", and leaves no
unplayable video nor a 0-byte or half-written JSON."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

import segopt_core.video.writer as writer
from segopt_cli.main import app
from tests.core.video.conftest import read_video
from tests.disk import tmpfs


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, tiny_model, tiny_spec):
    from segopt_core.checkpoints import write_checkpoint

    return write_checkpoint(
        tiny_model, tiny_spec, tmp_path_factory.mktemp("ckpt") / "tiny.safetensors", "safetensors"
    )


def _video(args: list[str]):
    return CliRunner().invoke(app, ["video", *args])


def _assert_clean_failure(result, out: Path) -> None:
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output  # failed work
    line = [ln for ln in result.output.splitlines() if ln.startswith("error:")]
    assert len(line) == 1 and str(out.parent) in line[0] and "no space left" in line[0], result.output
    assert not out.exists() or read_video(out)[0] > 0  # never an unplayable file under the real name
    summary = out.with_suffix(".json")
    assert not summary.exists() or json.loads(summary.read_text())["error"]  # never 0 bytes or half
    assert not [p for p in out.parent.iterdir() if ".partial-" in p.name or p.name.endswith(".tmp")]


def test_disk_full_at_the_start_keeps_no_video(tmp_path, video_file, checkpoint, monkeypatch):
    monkeypatch.setattr(writer, "no_space_left", lambda folder: True)
    out = tmp_path / "o.mp4"
    result = _video([str(video_file(10)), "--checkpoint", str(checkpoint), "--out", str(out)])
    _assert_clean_failure(result, out)
    assert not out.exists()


def test_disk_full_while_closing_removes_the_partial_video(tmp_path, video_file, checkpoint, monkeypatch):
    full = []  # the disk fills up after the frames were encoded, while the container index is written

    def incomplete(self) -> bool:
        full.append(True)
        return False

    monkeypatch.setattr(writer.VideoWriter, "_complete", incomplete)
    monkeypatch.setattr(writer, "no_space_left", lambda folder: bool(full))
    out, masks = tmp_path / "o.mp4", tmp_path / "masks"
    args = [
        str(video_file(10)),
        "--checkpoint",
        str(checkpoint),
        "--out",
        str(out),
        "--masks-dir",
        str(masks),
    ]
    result = _video(args)
    _assert_clean_failure(result, out)
    assert "nothing was kept" in result.output and not out.exists()
    # nothing half-left (issue #23, item 6): no summary claiming frames, no mask PNGs of the lost video
    assert not out.with_suffix(".json").exists() and not masks.exists()


def test_summary_write_failure_names_the_file(tmp_path, video_file, checkpoint, monkeypatch):
    import segopt_core.atomic as atomic

    def full(path, write):
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr(atomic, "atomic_file", full)
    out = tmp_path / "o.mp4"
    result = _video([str(video_file(5)), "--checkpoint", str(checkpoint), "--out", str(out)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"summary {out.with_suffix('.json')}: no space left on device" in result.output
    assert not out.with_suffix(".json").exists()


@pytest.mark.slow
@pytest.mark.parametrize("free_kb", [40, 200])
def test_video_on_a_real_full_disk(tmp_path, video_file, checkpoint, free_kb):
    source = video_file(60, size=(192, 256))
    with tmpfs(tmp_path / f"disk-{uuid.uuid4().hex[:6]}", "2m") as disk:
        filler = disk / "filler"
        filler.write_bytes(b"\0" * (2048 * 1024 - free_kb * 1024))
        out = disk / "o.mp4"
        result = _video([str(source), "--checkpoint", str(checkpoint), "--out", str(out),
                         "--masks-dir", str(disk / "masks")])  # fmt: skip
        _assert_clean_failure(result, out)
        os.sync()
