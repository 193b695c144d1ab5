"""benchmarks/gpu_headline.py: its plan, the dry run (no GPU), reruns, and the section it renders."""

from __future__ import annotations

import json

import pytest
import torch

CELL = "b0-512-ade20k"


@pytest.fixture(scope="module")
def gpu_headline(benchmark_script):
    return benchmark_script("gpu_headline")


def test_plan_lists_every_variant_on_every_cell(gpu_headline, capsys):
    assert gpu_headline.main(["--plan"]) == 0
    out = capsys.readouterr().out
    assert "batch sizes: 1, 8, 32" in out
    for cell in ("b0-512-ade20k", "b2-512-ade20k", "b0-1024-cityscapes"):
        for variant in ("torch-fp32-cuda", "torch-fp16-folded-cuda", "torch-bf16-folded-cuda",
                        "torch-compile-fp16-folded-cuda", "torch-compile-bf16-folded-cuda",
                        "torch-compile-fp16-folded-cuda + CUDA graphs", "onnxruntime-fp16-folded-cuda",
                        "tensorrt-fp16-folded", "tensorrt-int8-static-folded"):  # fmt: skip
            assert f"{cell}  {variant}\n" in out
    assert all(p.options().device == "cuda" for p in gpu_headline.PLAN)


def test_variant_filter_keeps_the_baseline(gpu_headline):
    labels = [p.label for p in gpu_headline.selected_plan(("tensorrt",))]
    assert labels == ["torch-fp32-cuda", "tensorrt-fp16-folded", "tensorrt-int8-static-folded"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA path")
def test_without_cuda_it_says_so(gpu_headline, capsys):
    assert gpu_headline.main(["--cells", CELL]) == 2
    assert "no CUDA device" in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA path")
def test_dry_run_stops_every_variant_at_its_first_cuda_call(gpu_headline, tmp_path):
    results = tmp_path / "RESULTS.md"
    results.write_text("# r\n\n<!-- cpu-kind: avx2 -->\n## AVX2\nkept\n<!-- /cpu-kind: avx2 -->\n")
    args = ["--dry-run", "--cells", CELL, "--work-dir", str(tmp_path), "--out", str(tmp_path / "s.md")]
    assert gpu_headline.main([*args, "--results", str(results)]) == 0
    built = json.loads((tmp_path / gpu_headline.MANIFEST).read_text())
    assert len(built) == len({p.options() for p in gpu_headline.PLAN})  # graphs rows share an artifact
    assert all(
        b["status"] == "skipped" and ("CUDA" in b["reason"] or "provider" in b["reason"]) for b in built
    )
    section = (tmp_path / "s.md").read_text()
    assert section.startswith("<!-- cpu-kind: gpu-dry-run -->") and "nothing measured" in section
    assert "`torch-compile-fp16-folded-cuda` (batch 1, 8, 32): skipped: no CUDA device" in section
    merged = results.read_text()
    assert "kept" in merged and "<!-- /cpu-kind: gpu-dry-run -->" in merged  # the other sections stay


def test_a_rerun_builds_again_only_what_was_not_built(gpu_headline, tmp_path):
    fp32, fp16 = gpu_headline.selected_plan(("torch-fp16-folded-cuda",))[:2]
    done = gpu_headline.Built(CELL, fp32.options().slug, "ok", artifact="/somewhere", build_s=3.0)
    broken = gpu_headline.Built(CELL, fp16.options().slug, "failed", reason="compiler crashed")
    gpu_headline.write_manifest([done, broken], tmp_path / gpu_headline.MANIFEST)
    args = gpu_headline.parse_args(["--cells", CELL, "--work-dir", str(tmp_path)])
    built = gpu_headline.build_missing(args, [fp32, fp16])
    assert built[CELL, fp32.options().slug] == done  # kept, not rebuilt
    again = built[CELL, fp16.options().slug]
    assert again.status != "failed" or again.reason != "compiler crashed"  # tried again
    stored = {b.slug: b.status for b in gpu_headline.read_manifest(tmp_path / gpu_headline.MANIFEST)}
    assert stored[fp32.options().slug] == "ok" and stored[fp16.options().slug] == again.status


def test_without_building_a_missing_variant_is_a_skipped_row(gpu_headline, tmp_path):
    args = gpu_headline.parse_args(["--cells", CELL, "--work-dir", str(tmp_path), "--no-build"])
    built = gpu_headline.build_missing(args, gpu_headline.selected_plan(()))
    assert {b.status for b in built.values()} == {"skipped"}
    assert all("not built" in b.reason for b in built.values())
    assert not (tmp_path / "artifacts").exists()


def _rows(gpu_headline, b0_ms: float, agreement: float):
    row = gpu_headline.Row
    return [
        row(CELL, "torch-fp32-cuda", 1, p50_ms=4.0, p90_ms=4.2, images_per_s=250.0, speedup=1.0,
            agreement=1.0, gpu_mib=30.0, build_s=3.0),
        row(CELL, "torch-compile-fp16-folded-cuda", 1, p50_ms=b0_ms, p90_ms=1.1, images_per_s=1e3 / b0_ms,
            speedup=4.0 / b0_ms, agreement=agreement, gpu_mib=12.0, build_s=60.0),
        row(CELL, "tensorrt-fp16-folded", 1, "skipped", reason="TensorRT not installed"),
        row(CELL, "tensorrt-fp16-folded", 8, "skipped", reason="TensorRT not installed"),
    ]  # fmt: skip


FINGERPRINT = {"gpu_name": "NVIDIA H200", "cpu_model": "Xeon", "torch_version": "2.11.0", "date": "today"}


def test_render_rows_targets_and_problems(gpu_headline):
    video = {"variant": "torch-compile-fp16-folded-cuda", "performance": {"fps_end_to_end": 75.0}}
    text = gpu_headline.render(_rows(gpu_headline, 0.8, 0.995), FINGERPRINT, {}, "cmd", video, ["busy"])
    assert text.startswith("<!-- cpu-kind: gpu-nvidia-h200 -->\n## NVIDIA H200")
    assert (
        "| `torch-compile-fp16-folded-cuda` | device | 1 | 0.800 | 1.100 | 1250 | 5.00× | 0.9950 | 12 | 60 |"
        in text
    )
    assert "| B0@512 batch 1 ≤ 1 ms | 0.800 ms | `torch-compile-fp16-folded-cuda` | yes |" in text
    assert "| B0@512 batch 32 ≥ 10 000 images/s | — | — | not measured |" in text
    assert (
        "| fp16/bf16 argmax agreement ≥ 0.99 (worst) | 0.9950 | `torch-compile-fp16-folded-cuda` | yes |"
        in text
    )
    assert "| video 1080p ≥ 60 FPS end to end | 75.0 | `torch-compile-fp16-folded-cuda` | yes |" in text
    assert "- `tensorrt-fp16-folded` (batch 1, 8): skipped: TensorRT not installed" in text
    assert "| fps_end_to_end | 75.0 |" in text and "> busy" in text


def test_a_missed_target_says_no(gpu_headline):
    text = gpu_headline.render(_rows(gpu_headline, 1.5, 0.97), FINGERPRINT, {}, "cmd", None, [])
    assert "| B0@512 batch 1 ≤ 1 ms | 1.500 ms | `torch-compile-fp16-folded-cuda` | no |" in text
    assert (
        "| fp16/bf16 argmax agreement ≥ 0.99 (worst) | 0.9700 | `torch-compile-fp16-folded-cuda` | no |"
        in text
    )
    assert "| video 1080p ≥ 60 FPS end to end | — | — | not measured |" in text
