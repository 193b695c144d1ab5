"""Every command's and flow's numeric and enumerated options, out of range: one `error:` line, exit 2,
nothing built, no traceback, before any work (issue #23, item 1). The bound on the time is a hang guard
(optimize-all with `--min-miou-ratio 5` used to run the whole matrix for 253 s), not a speed target."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from segopt_cli.main import app
from segopt_core.errors import OptionError

HANG_GUARD_S = 30  # a check that returns at all returns in about a second: this only catches the hang

# (command line with {zoo}/{work}/{data}/{artifact}/{ckpt}/{tmp} placeholders, text of the one error line)
CASES = [
    ("optimize-all {zoo} --min-miou-ratio 5.0", "--min-miou-ratio: the accuracy gate must be in (0, 1]"),
    ("optimize-all {zoo} --min-miou-ratio 0", "--min-miou-ratio: the accuracy gate must be in (0, 1]"),
    ("optimize-all {zoo} --limit 0", "--limit 0: input should be greater than or equal to 1"),
    ("optimize-all {zoo} --iters 0", "--iters 0: input should be greater than or equal to 1"),
    ("optimize-all {zoo} --warmup -1", "--warmup -1: input should be greater than or equal to 0"),
    ("optimize-all {zoo} --batch-sizes 0", "--batch-sizes '0': expected comma-separated integers from 1"),
    ("optimize-all {zoo} --batch-sizes 100000", "--batch-sizes '100000': expected comma-separated integers"),
    ("optimize-all {zoo} --precisions int8", "unknown precision 'int8' (did you mean int8-"),
    ("optimize-all {zoo} --backends tensorflow", "unknown backend 'tensorflow'; valid: torch"),
    ("optimize-all {zoo} --variants torch-fp33", "unknown variant 'torch-fp33' (did you mean torch-fp32"),
    ("optimize-all {zoo} --cells b9-999-mars", "unknown cell pattern 'b9-999-mars'"),
    ("optimize-all {zoo} --task-runner ray", "unknown task runner 'ray'; valid: threads, dask"),
    ("optimize-all {zoo} --limit abc", "Invalid value for '--limit'"),
    ("optimize-all {zoo} --data {tmp}/nodata", "dataset folder does not exist"),
    ("optimize-all {tmp}/missing", "PATHS: no such file or folder"),
    ("optimize-all {tmp}/empty", "PATHS: no checkpoint in"),
    ("optimize-all {zoo} --work-dir {long}", "--work-dir: "),
    (
        "nightly-benchmark --work-dir {work} --threshold -1",
        "--threshold -1.0: input should be greater than 0",
    ),
    (
        "nightly-benchmark --work-dir {work} --window 0",
        "--window 0: input should be greater than or equal to 1",
    ),
    (
        "nightly-benchmark --work-dir {work} --iters 0",
        "--iters 0: input should be greater than or equal to 1",
    ),
    (
        "nightly-benchmark --work-dir {work} --batch-sizes 0,1",
        "--batch-sizes '0,1': expected comma-separated",
    ),
    ("nightly-benchmark --work-dir {work} --variants onnxruntime-fp33", "unknown variant 'onnxruntime-fp33'"),
    ("nightly-benchmark --work-dir {tmp}/typo", "--work-dir {tmp}/typo: no artifact store there"),
    (
        "demo --work-dir {tmp}/demo --train-iters 5",
        "--train-iters 5: input should be greater than or equal to 10",
    ),
    (
        "demo --work-dir {tmp}/demo --image-size 32",
        "--image-size 32: input should be greater than or equal to 64",
    ),
    ("demo --work-dir {tmp}/demo --batch-sizes 0", "--batch-sizes '0': expected comma-separated integers"),
    (
        "benchmark --artifact {artifact} --batch-sizes 0",
        "--batch-sizes '0': expected comma-separated integers",
    ),
    ("benchmark --artifact {artifact} --iters 0", "iters"),
    ("benchmark --artifact {artifact} --warmup -1", "warm-up must be >= 0"),
    ("benchmark --artifact {artifact} --min-time -1", "min_time"),
    ("benchmark --artifact {artifact} --threads 0", "--threads must be at least 1, got 0"),
    ("benchmark --artifact {artifact} --scope frame", "--scope 'frame' must be 'model' or 'e2e'"),
    ("benchmark --artifact {artifact} --input-size 0x0", "--input-size '0x0' must be positive"),
    ("benchmark --artifact {artifact} --lock-timeout -1", "--lock-timeout -1.0: must be at least 0"),
    ("benchmark --checkpoint {ckpt} --backends tflite", "unknown backend 'tflite'"),
    ("optimize {ckpt} --out {tmp}/store --backend tflite", "unknown backend 'tflite'"),
    ("optimize {ckpt} --out {tmp}/store --precision int4", "unknown precision 'int4'"),
    ("optimize {ckpt} --out {tmp}/store --device tpu", "unknown device 'tpu'"),
    ("optimize {ckpt} --out {tmp}/store --precision int8-static --calib-method mean", "calibration method"),
    ("optimize {ckpt} --out {tmp}/store --precision int8-static --calib-images 0", "num_images must be >= 1"),
    ("evaluate --checkpoint {ckpt} --data {data} --limit 0", "--limit must be at least 1, got 0"),
    ("evaluate --checkpoint {ckpt} --data {data} --batch-size 0", "--batch-size must be at least 1, got 0"),
    ("evaluate --checkpoint {ckpt} --data {data} --split test", "unknown split 'test'"),
    ("evaluate --checkpoint {ckpt} --data {data} --layout coco", "unknown layout 'coco'"),
    ("evaluate --checkpoint {ckpt} --data {data} --mode tile", "mode"),
    ("data synth --out {tmp}/synth --size 100000x100000", "too large; use at most 8192 pixels a side"),
    ("data synth --out {tmp}/synth --size 0x0", "--size '0x0' must be positive"),
    ("data synth --out {tmp}/synth --layout coco", "unknown layout 'coco'"),
    ("data synth --out {tmp}/synth --n-train -1", "n_train=-1"),
    ("data synth-video --out {tmp}/v.mp4 --frames 1", "--frames 1 --fps 12: need at least 2 frames"),
    ("data synth-video --out {tmp}/v.mp4 --fps 0", "--frames 48 --fps 0: need at least 2 frames"),
    ("data synth-video --out {tmp}/v.mp4 --size 9000x9000", "too large; use at most 8192 pixels a side"),
    ("data synth-video --out {tmp}/v.mp4 --scene-cut-at 500", "--scene-cut-at 500: must be -1 (middle)"),
    ("data synth-video --out {tmp}/v.mp4 --label-space coco", "coco"),
    ("data info --data {data} --split test", "unknown split 'test'"),
    ("data info --data {data} --layout coco", "unknown layout 'coco'"),
    ("train --data {data} --tiny --out {tmp}/t --iters 0", "iters"),
    ("train --data {data} --tiny --out {tmp}/t --lr 0", "lr"),
    ("train --data {data} --tiny --out {tmp}/t --batch-size 0", "batch_size"),
    ("train --data {data} --tiny --out {tmp}/t --device tpu", "device"),
    ("train --data {data} --tiny --out {tmp}/t --device cuda", "device 'cuda' asked for, but this torch has"),
    ("train --data {data} --tiny --out {tmp}/t --amp fp8", "amp"),
    ("train --data {data} --tiny --out {tmp}/t --crop 8", "crop_size"),
    ("train --data {data} --tiny --out {tmp}/t --preset fast", "unknown training preset 'fast'"),
    ("train --data {data} --cell b9-999-mars --out {tmp}/t", "b9-999-mars"),
    ("train --data {data} --tiny --out {tmp}/t --resume", "no training state to resume from"),
    ("video {clip} --checkpoint {ckpt} --out {tmp}/o.mp4 --alpha 1.5", "alpha"),
    ("video {clip} --checkpoint {ckpt} --out {tmp}/o.mp4 --opacity 2", "opacity"),
    ("video {clip} --checkpoint {ckpt} --out {tmp}/o.mp4 --batch-size 0", "--batch-size 0: the valid forms"),
    ("video {clip} --checkpoint {ckpt} --out {tmp}/o.mp4 --mode fast", "mode"),
    ("video {clip} --checkpoint {ckpt} --out {tmp}/o.mp4 --smooth mean", "mean"),
    ("video {clip} --checkpoint {ckpt} --out {tmp}/o.mp4 --device cuda", "--device cuda: this torch has no"),
    (
        "video {clip} --checkpoint {ckpt} --out {tmp}/o.mp4 --device tpu",
        "--device 'tpu': must be cpu or cuda",
    ),
    ("video {clip} --checkpoint {ckpt} --out {tmp}/o.mp4 --input-size 0x0", "--input-size '0x0' must be"),
    ("video {clip} --checkpoint {ckpt} --out {tmp}/o.mp4 --scene-cut -1", "scene"),
    ("zoo init {tmp}/z --format onnx", "onnx"),
    ("zoo init {tmp}/z --cells b9-999-mars", "b9-999-mars"),
    ("zoo convert {ckpt} {tmp}/c --format onnx", "onnx"),
]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, tiny_model, tiny_spec):
    """A tiny checkpoint (in a zoo folder), a dataset, a work folder with a store, a clip, an artifact."""
    from segopt_core.backends import ArtifactStore, VariantOptions
    from segopt_core.checkpoints import write_checkpoint
    from segopt_core.data import synth_dataset
    from segopt_core.data.video_synth import synth_video

    root = tmp_path_factory.mktemp("inputs")
    ckpt = write_checkpoint(tiny_model, tiny_spec, root / "zoo" / "tiny.safetensors", "safetensors")
    store = ArtifactStore(root / "work" / "artifacts")
    artifact = store.get_or_build(tiny_model, VariantOptions("torch", "fp32"), spec=tiny_spec).path
    return {
        "zoo": root / "zoo",
        "ckpt": ckpt,
        "work": root / "work",
        "artifact": artifact,
        "data": synth_dataset(root / "data", "ade20k", n_train=2, n_val=2, size=(64, 64), seed=0),
        "clip": synth_video(root / "clip.mp4", 4, (64, 64), 12.0, 0).path,
    }


def _files(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*")}


@pytest.mark.parametrize(("line", "message"), CASES, ids=[c[0].split(" --")[-1] for c in CASES])
def test_an_out_of_range_option_is_one_line_exit_2_and_nothing_is_built(inputs, tmp_path, line, message):
    (tmp_path / "empty").mkdir()
    values = {**{k: str(v) for k, v in inputs.items()}, "tmp": str(tmp_path), "long": "x" * 300}
    args = [part.format(**values) for part in line.split()]
    before = _files(tmp_path) | _files(inputs["work"])
    start = time.perf_counter()
    result = CliRunner().invoke(app, args)
    seconds = time.perf_counter() - start
    assert result.exit_code == 2, (line, result.output)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), (line, result.stderr)
    assert message.format(**values) in lines[0], (line, lines[0])
    assert "Traceback" not in result.output and result.stdout == ""
    assert _files(tmp_path) | _files(inputs["work"]) == before, line  # nothing built, written or left
    assert seconds < HANG_GUARD_S, (line, seconds)


def _flows() -> dict:
    from flows.demo import demo
    from flows.nightly import nightly_benchmark
    from flows.optimize_all import optimize_all
    from flows.train import train_flow
    from flows.video import video_flow

    return {f.name: f for f in (optimize_all, nightly_benchmark, demo, train_flow, video_flow)}


FLOW_CASES = [
    ("optimize-all", {"min_miou_ratio": 5.0}, "min_miou_ratio: the accuracy gate must be in (0, 1]"),
    ("optimize-all", {"limit": 0}, "limit 0: input should be greater than or equal to 1"),
    ("optimize-all", {"iters": 0}, "iters 0: input should be greater than or equal to 1"),
    ("optimize-all", {"warmup": -1}, "warmup -1: input should be greater than or equal to 0"),
    ("optimize-all", {"batch_sizes": [0]}, "batch_sizes: batch sizes must be integers from 1 to 1024"),
    ("optimize-all", {"precisions": ["int8"]}, "precisions: unknown precision 'int8'"),
    ("optimize-all", {"paths": ["{tmp}/missing"]}, "paths: no such file or folder"),
    ("nightly-benchmark", {"threshold": -1.0}, "threshold -1.0: input should be greater than 0"),
    ("nightly-benchmark", {"window": 0}, "window 0: input should be greater than or equal to 1"),
    ("nightly-benchmark", {"work_dir": "{tmp}/typo"}, "no artifact store there"),
    ("demo", {"train_iters": 5}, "train_iters 5: input should be greater than or equal to 10"),
    ("demo", {"alpha": 1.0}, "alpha 1.0: input should be less than 1"),
    ("train", {"data_dir": "{tmp}", "tiny": True, "iters": 0}, "iters"),
    ("train", {"data_dir": "{tmp}", "tiny": True, "device": "tpu"}, "device"),
    ("video", {"source": "{tmp}/in.mp4", "out": "{tmp}/o.mp4", "alpha": 1.5}, "alpha"),
    ("video", {"source": "{tmp}/in.mp4", "out": "{tmp}/o.mp4", "batch_size": 0}, "batch_size"),
]


def _fill(value, tmp: Path):
    """The case's {tmp} placeholders filled in (in strings and lists of strings)."""
    if isinstance(value, str):
        return value.format(tmp=tmp)
    return [_fill(v, tmp) for v in value] if isinstance(value, list) else value


@pytest.mark.parametrize(("name", "params", "message"), FLOW_CASES)
def test_a_deployment_run_with_an_out_of_range_parameter_fails_before_any_task(
    prefect_harness, tmp_path, name, params, message
):
    """A deployment calls the flow with JSON parameters (no CLI): the flow checks them before any task."""
    params = {key: _fill(value, tmp_path) for key, value in params.items()}
    if name in ("optimize-all", "nightly-benchmark", "demo"):
        params.setdefault("work_dir", str(tmp_path / "w"))
    state = _flows()[name](**params, return_state=True)
    assert state.is_failed(), state
    error = state.result(raise_on_failure=False)
    assert isinstance(error, ValueError) and message.format(tmp=tmp_path) in str(error), error
    assert "\n" not in str(error)
    assert not (tmp_path / "w").exists() and not (tmp_path / "o.mp4").exists()


def test_the_cli_and_the_flows_share_one_validation_home():
    """#25 item 5: the rules live in the parameter models; the flows' signatures are the models' fields."""
    from segopt_core.pipeline.params import OptimizeAllParams

    with pytest.raises(OptionError, match="--min-miou-ratio"):
        OptimizeAllParams.from_cli(min_miou_ratio=5.0)
    with pytest.raises(OptionError, match="^min_miou_ratio"):
        OptimizeAllParams.from_flow(min_miou_ratio=5.0)
