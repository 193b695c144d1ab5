"""`segopt evaluate` and `segopt data ...` through the real Typer app."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from segopt_cli.main import app
from segopt_core.models import build_hf_model

runner = CliRunner()


@pytest.fixture(scope="module")
def ade_data(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "ade"
    result = runner.invoke(
        app, ["data", "synth", "--out", str(out), "--n-train", "0", "--n-val", "3", "--size", "64x64"]
    )
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def hf_checkpoint(tmp_path_factory, tiny_spec):
    folder = tmp_path_factory.mktemp("ckpt") / "tiny-hf"
    build_hf_model(tiny_spec, seed=0).save_pretrained(folder)
    return folder


def test_evaluate_json(ade_data, hf_checkpoint, tmp_path) -> None:
    out = tmp_path / "result.json"
    args = ["evaluate", "--checkpoint", str(hf_checkpoint), "--data", str(ade_data), "--limit", "2"]
    result = runner.invoke(app, [*args, "--test-scale", "64x64", "--json", "--out", str(out)])
    assert result.exit_code == 0, result.output
    payload = json.loads(out.read_text())
    assert payload["n_images"] == 2 and payload["protocol"]["layout"] == "ade20k"
    assert payload["protocol"]["test_scale"] == [64, 64] and len(payload["per_class_iou"]) == 150
    assert payload["checkpoint"]["format"] == "hf" and len(payload["checkpoint"]["sha256"]) == 64
    assert '"mIoU"' in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["evaluate", "--checkpoint", "{ckpt}", "--data", "{tmp}/missing"], "does not exist"),
        (["evaluate", "--checkpoint", "{ckpt}", "--data", "{data}", "--split", "test"], "unknown split"),
        (["evaluate", "--checkpoint", "{ckpt}", "--data", "{data}", "--mode", "tiles"], "valid modes"),
        (["evaluate", "--checkpoint", "{ckpt}", "--data", "{data}", "--limit", "0"], "--limit"),
        (
            ["evaluate", "--checkpoint", "{ckpt}", "--data", "{data}", "--batch-size", "0"],
            "--batch-size must be",
        ),
        (["data", "synth", "--out", "{data}"], "not empty"),
        (["data", "synth", "--out", "{tmp}/x", "--size", "big"], "not HxW"),
        (["data", "synth-video", "--out", "{tmp}/v.mp4", "--frames", "1"], "need at least 2 frames"),
    ],
)
def test_bad_input_is_one_clear_line(args, message, ade_data, hf_checkpoint, tmp_path) -> None:
    filled = [a.format(ckpt=hf_checkpoint, data=ade_data, tmp=tmp_path) for a in args]
    result = runner.invoke(app, filled)
    assert result.exit_code == 2, result.output
    assert message in result.stderr and "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1


def test_info_check_reports_bad_files(ade_data, tmp_path) -> None:
    result = runner.invoke(app, ["data", "info", "--data", str(ade_data), "--check"])
    assert result.exit_code == 0 and "3 readable, 0 skipped" in result.stdout
