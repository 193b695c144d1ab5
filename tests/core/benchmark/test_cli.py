"""`segopt benchmark` end to end on a tiny checkpoint, and its one-line errors."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from segopt_cli.main import app
from segopt_core.benchmark import device_lock, read_parquet


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory, tiny_model, tiny_spec):
    from segopt_core.checkpoints import write_checkpoint

    return write_checkpoint(
        tiny_model, tiny_spec, tmp_path_factory.mktemp("ckpt") / "tiny.safetensors", "safetensors"
    )


@pytest.fixture
def env(tmp_path):
    return {"SEGOPT_WORK_DIR": str(tmp_path / "work"), "SEGOPT_LOCK_DIR": str(tmp_path / "locks")}


def test_benchmark_checkpoint_to_parquet(tiny_checkpoint, tmp_path, env):
    out = tmp_path / "bench.parquet"
    args = f"benchmark --checkpoint {tiny_checkpoint} --backends torch --precisions fp32,fp16 --batch-sizes 1"
    args = args.split() + "--iters 1 --warmup 0 --lock-timeout 5 --parquet".split() + [str(out)]
    result = CliRunner().invoke(app, args, env=env)
    assert result.exit_code == 0, result.output
    rows = read_parquet(out)
    by_variant = {(r["variant"], r["batch_size"]): r for r in rows}
    assert set(by_variant) == {("torch-fp32", 1), ("torch-fp16-cuda", 1)}
    fp32 = by_variant[("torch-fp32", 1)]
    assert fp32["status"] == "ok" and fp32["load_ms"] > 0 and fp32["model_size_mib"] > 0
    assert fp32["checkpoint_sha256"] and fp32["cell"] == "tiny-64-ade20k"
    fp16 = by_variant[("torch-fp16-cuda", 1)]
    assert fp16["status"] == ("ok" if fp16["gpu_name"] else "skipped") and fp16["device"] == "cuda"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--batch-sizes", "1,x"], "--batch-sizes"),
        (["--scope", "video"], "--scope"),
        (["--backends", "tflite"], "unknown backend"),
        (["--iters", "0"], "nothing to measure"),
    ],
)
def test_bad_input_is_a_one_line_error(tiny_checkpoint, env, args, message):
    result = CliRunner().invoke(app, ["benchmark", "--checkpoint", str(tiny_checkpoint), *args], env=env)
    assert result.exit_code == 2
    assert message in result.output and len(result.output.strip().splitlines()) == 1


def test_needs_checkpoint_or_artifact(env):
    result = CliRunner().invoke(app, ["benchmark"], env=env)
    assert result.exit_code == 2 and "exactly one of --checkpoint" in result.output


def test_busy_device_is_reported(tiny_checkpoint, env):
    with device_lock("cpu", env["SEGOPT_LOCK_DIR"]):
        args = ["benchmark", "--checkpoint", str(tiny_checkpoint), "--lock-timeout", "0.2"]
        result = CliRunner().invoke(app, args, env=env)
    assert result.exit_code == 2 and "another benchmark" in result.output
