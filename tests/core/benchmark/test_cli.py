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


def test_benchmark_checkpoint_to_parquet_with_same_round_speedups(tiny_checkpoint, tmp_path, env):
    out = tmp_path / "bench.parquet"
    variants = "torch-fp32,torch-fp32-folded,torch-fp16-folded-cuda"
    args = f"benchmark --checkpoint {tiny_checkpoint} --variants {variants} --batch-sizes 1,2 --iters 2"
    args = args.split() + "--warmup 0 --lock-timeout 5 --parquet".split() + [str(out)]
    result = CliRunner().invoke(app, args, env=env)
    assert result.exit_code == 0, result.output
    by_variant = {(r["variant"], r["batch_size"]): r for r in read_parquet(out)}
    assert {v for v, _ in by_variant} == set(variants.split(","))
    fp32 = by_variant[("torch-fp32", 1)]
    assert fp32["status"] == "ok" and fp32["load_ms"] > 0 and fp32["model_size_mib"] > 0
    assert fp32["checkpoint_sha256"] and fp32["cell"] == "tiny-64-ade20k"
    folded, folded_2 = by_variant[("torch-fp32-folded", 1)], by_variant[("torch-fp32-folded", 2)]
    assert folded["reference_latency_ms"] > 0 and folded["speedup_basis"] == "same-round"
    assert folded["speedup_vs_torch_fp32"] == round(
        folded["reference_latency_ms"] / folded["paired_latency_ms"], 4
    )  # fmt: skip
    assert folded_2["speedup_basis"] == "separate"  # paired at the smallest batch size only
    fp16 = by_variant[("torch-fp16-folded-cuda", 1)]
    assert fp16["status"] == ("ok" if fp16["gpu_name"] else "skipped") and fp16["device"] == "cuda"


def test_the_table_shows_rounded_figures_and_speedups(tiny_checkpoint, env):
    args = f"benchmark --checkpoint {tiny_checkpoint} --variants torch-fp32-folded --batch-sizes 1"
    result = CliRunner().invoke(app, [*args.split(), "--iters", "2", "--warmup", "0"], env=env)
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert [line.split()[0] for line in lines] == ["variant", "torch-fp32", "torch-fp32-folded"]
    assert "1.00×" in lines[1] and "×" in lines[2]  # the reference, then the variant's same-round speedup
    numbers = [cell for line in lines[1:] for cell in line.split() if cell.replace(".", "", 1).isdigit()]
    assert numbers and all(len(n.replace(".", "").lstrip("0")) <= 5 for n in numbers), numbers


def test_the_default_variants_are_optimize_alls():
    from segopt_cli.benchmark import _options
    from segopt_core.pipeline.selection import select_options

    assert _options(None, None, None) == select_options(None, None, None, False)
    assert [o.slug for o in _options(["onnxruntime"], ["fp32"], None)] == [
        "torch-fp32", "onnxruntime-fp32", "onnxruntime-fp32-folded"
    ]  # fmt: skip


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
