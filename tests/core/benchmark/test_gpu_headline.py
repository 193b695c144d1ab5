"""benchmarks/gpu_headline.py: the plan (no CUDA needed) and the table it renders from rows."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def gpu_headline(benchmark_script):
    return benchmark_script("gpu_headline")


def test_dry_run_lists_every_variant_on_every_cell(gpu_headline, capsys):
    assert gpu_headline.main(["--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "batch sizes: 1, 4, 8" in out
    for cell in ("b0-512-ade20k", "b2-512-ade20k"):
        for variant in ("torch-fp32-cuda", "torch-fp16-folded", "onnxruntime-fp16-folded-cuda",
                        "tensorrt-fp16-folded", "tensorrt-int8-static-folded"):  # fmt: skip
            assert f"{cell}  {variant}" in out
    options = dict(gpu_headline.variant_options())
    assert all(o.device == "cuda" for o in options.values())


def test_variant_filter_keeps_the_baseline(gpu_headline):
    lines = gpu_headline.plan_lines(("b0-512-ade20k",), (1,), ("tensorrt",))
    assert any("torch-fp32-cuda" in line for line in lines)
    assert not any("onnxruntime" in line for line in lines)


def test_render_speedup_agreement_and_problems(gpu_headline):
    row = gpu_headline.Row
    rows = [
        row("b0-512-ade20k", "torch-fp32-cuda", 1, median_ms=4.0, p90_ms=4.2, throughput_ips=250.0,
            agreement=1.0, build_s=3.0),
        row("b0-512-ade20k", "tensorrt-fp16-folded", 1, median_ms=1.0, p90_ms=1.1, throughput_ips=1000.0,
            agreement=0.99, build_s=60.0),
        row("b0-512-ade20k", "tensorrt-int8-static-folded", 1, "skipped", reason="TensorRT not installed"),
    ]  # fmt: skip
    text = gpu_headline.render(rows, {"gpu_name": "H200", "torch_version": "2.13.0"})
    assert (
        "| b0-512-ade20k | `tensorrt-fp16-folded` | 1 | 1.00 | 1.10 | 1000.0 | 4.00× | 0.9900 | 60 |" in text
    )
    assert "skipped: TensorRT not installed" in text and "H200" in text


def test_without_cuda_it_says_so(gpu_headline, capsys):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("checks the no-CUDA path")
    assert gpu_headline.main(["--cells", "b0-512-ade20k"]) == 2
    assert "no CUDA device" in capsys.readouterr().err


def test_variants_past_the_time_budget_are_skipped(gpu_headline):
    args = gpu_headline.parse_args(["--cells", "b0-512-ade20k", "--batch-sizes", "1,8", "--budget-s", "0"])
    rows = gpu_headline.run_cell("b0-512-ade20k", args, store=None, deadline=0.0)
    assert len(rows) == 2 * len(gpu_headline.PLAN)
    assert all(r.status == "skipped" and "time budget" in r.reason for r in rows)
