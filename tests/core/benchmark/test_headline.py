"""benchmarks/headline.py: settings, and the Markdown it renders from measured comparisons."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[3] / "benchmarks" / "headline.py"


@pytest.fixture(scope="module")
def headline():
    spec = importlib.util.spec_from_file_location("segopt_headline", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


def test_quick_settings(headline):
    settings = headline.settings_from(headline.parse_args(["--quick"]))
    assert settings.cells == ("b0-512-ade20k",) and settings.batch_sizes == (1,)
    full = headline.settings_from(headline.parse_args(["--batch-sizes", "1,8", "--rounds", "3"]))
    assert (
        full.cells == ("b0-512-ade20k", "b2-512-ade20k") and full.batch_sizes == (1, 8) and full.rounds == 3
    )


def test_render_reports_ratios_and_problems(headline):
    settings = headline.settings_from(headline.parse_args(["--quick"]))
    ok = headline.Comparison("b0-512-ade20k", "onnxruntime-fp32", "cpu", 1, baseline_ms=[40, 42, 38],
                             candidate_ms=[20, 21, 19])  # fmt: skip
    skipped = headline.Comparison("b0-512-ade20k", "tensorrt-fp16", "cuda", 1, "skipped", "no CUDA device")
    text = headline.render([ok, skipped], [{"cell": "b0-512-ade20k", "glibc_ms": 30.0, "tcmalloc_ms": 15.0}],
                           settings, "python benchmarks/headline.py --quick")  # fmt: skip
    assert "| `onnxruntime-fp32` | cpu | 1 | 40.0 | 20.0 |" in text and "**2.00×**" in text
    assert "`tensorrt-fp16` (batch 1): skipped: no CUDA device" in text
    assert "| b0-512-ade20k | 30.0 | 15.0 | 2.00× |" in text
    assert "| allocator |" in text and "python benchmarks/headline.py --quick" in text
