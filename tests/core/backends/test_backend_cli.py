"""`segopt optimize` and `segopt predict` end to end on a tiny checkpoint."""

from __future__ import annotations

import json
import sys

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from segopt_cli.main import app

runner = CliRunner()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, tiny_model, tiny_spec):
    from segopt_core.checkpoints import write_checkpoint

    return write_checkpoint(
        tiny_model, tiny_spec, tmp_path_factory.mktemp("ckpt") / "tiny.safetensors", "safetensors"
    )


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("store")


def test_optimize_prints_artifact_and_reuses(checkpoint, store_dir):
    args = [
        "optimize",
        str(checkpoint),
        "--backend",
        "onnxruntime",
        "--fold-decode-head",
        "--out",
        str(store_dir),
    ]
    first = runner.invoke(app, [*args, "--json"])
    assert first.exit_code == 0, first.output
    meta = json.loads(first.stdout)
    assert meta["slug"] == "onnxruntime-fp32-folded" and meta["verification"]["passed"]
    second = runner.invoke(app, args)
    assert second.exit_code == 0 and second.stdout.strip() == meta["path"]
    assert "reused" in second.stderr


def test_predict_writes_palette_masks(checkpoint, store_dir, tmp_path, tiny_spec):
    built = runner.invoke(app, ["optimize", str(checkpoint), "--backend", "torch", "--out", str(store_dir)])
    assert built.exit_code == 0, built.output
    image = tmp_path / "img.png"
    cv2.imwrite(str(image), np.random.default_rng(0).integers(0, 255, (80, 96, 3), dtype=np.uint8))
    result = runner.invoke(
        app, ["predict", "--artifact", built.stdout.strip(), str(image), "--out", str(tmp_path / "masks")]
    )
    assert result.exit_code == 0, result.output
    mask = cv2.cvtColor(cv2.imread(str(tmp_path / "masks" / "img.png")), cv2.COLOR_BGR2RGB)
    assert mask.shape[:2] == (80, 96)
    palette = {tuple(c) for c in tiny_spec.dataset.palette}
    assert {tuple(c) for c in mask.reshape(-1, 3)} <= palette


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--backend", "tflite"], "valid: torch"),
        (["--precision", "int8-static"], "needs --calib-data"),
        (["--precision", "int8-static", "--calib-data", "/nonexistent"], "does not exist"),
    ],
)
def test_optimize_bad_input_is_one_line_error(checkpoint, store_dir, args, message):
    result = runner.invoke(app, ["optimize", str(checkpoint), "--out", str(store_dir), *args])
    assert result.exit_code == 2
    assert message in result.stderr and "Traceback" not in result.output


def test_too_few_calibration_images(checkpoint, store_dir, tmp_path):
    for i in range(2):
        cv2.imwrite(str(tmp_path / f"{i}.png"), np.zeros((64, 64, 3), np.uint8))
    args = ["--precision", "int8-static", "--calib-data", str(tmp_path)]
    result = runner.invoke(app, ["optimize", str(checkpoint), "--out", str(store_dir), *args])
    assert result.exit_code == 2 and "only 2 calibration images" in result.stderr


def test_unavailable_backend_is_skipped(checkpoint, store_dir):
    pytest.importorskip("torch")
    import torch

    if torch.cuda.is_available():
        pytest.skip("checks the no-CUDA path")
    result = runner.invoke(
        app,
        [
            "optimize",
            str(checkpoint),
            "--backend",
            "tensorrt",
            "--precision",
            "fp16",
            "--out",
            str(store_dir),
        ],
    )
    assert result.exit_code == 3 and result.stderr.startswith("skipped:")


def test_predict_on_non_artifact(tmp_path):
    image = tmp_path / "x.png"
    cv2.imwrite(str(image), np.zeros((8, 8, 3), np.uint8))
    result = runner.invoke(
        app, ["predict", "--artifact", str(tmp_path), str(image), "--out", str(tmp_path / "m")]
    )
    assert result.exit_code == 2 and "not a segopt artifact" in result.stderr
    assert (
        result.stderr.count("segopt artifact") == 1
    )  # said once, not "not a segopt artifact (... not a ...)"
    assert not (tmp_path / "m").exists()  # a failed --out leaves no empty folder


@pytest.mark.parametrize("kind", ["missing", "folder"])
def test_predict_names_a_missing_image_or_a_folder_as_such(tmp_path, kind):
    image = tmp_path / "x.png"
    if kind == "folder":
        image.mkdir()
    result = runner.invoke(app, ["predict", "--artifact", str(tmp_path), str(image)])
    expected = "a folder, not an image file" if kind == "folder" else "no such image file"
    assert result.exit_code == 2 and result.stderr == f"error: {image}: {expected}\n"


def test_optimize_without_onnxruntime_says_which_extra_to_install(checkpoint, tmp_path, monkeypatch):
    """`pip install segopt` without the cpu/gpu extra: one line naming the extras, not ModuleNotFoundError."""
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # makes `import onnxruntime` fail
    result = runner.invoke(
        app, ["optimize", str(checkpoint), "--backend", "onnxruntime", "--out", str(tmp_path)]
    )
    assert result.exit_code == 3, result.output
    assert result.stderr.strip() == (
        "skipped: ONNX Runtime is not installed: install segopt[cpu] or segopt[gpu] (never both)"
    )
    assert not list(tmp_path.rglob("*.onnx"))  # refused before the export, nothing half-built
