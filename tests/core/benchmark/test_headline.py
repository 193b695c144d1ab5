"""benchmarks/headline.py: settings, and the Markdown it renders from measured comparisons."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def headline(benchmark_script):
    return benchmark_script("headline")


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


def test_openvino_peer_columns_and_best_table(headline):
    settings = headline.settings_from(headline.parse_args(["--quick"]))
    make = headline.Comparison
    rows = [
        make("b0-512-ade20k", "torch-compile-fp32-folded", "cpu", 1, baseline_ms=[400.0],
             candidate_ms=[100.0], peer_ms=[200.0]),
        make("b0-512-ade20k", "onnxruntime-fp32", "cpu", 1, baseline_ms=[400.0], candidate_ms=[200.0],
             peer_ms=[200.0]),
        make("b0-512-ade20k", "openvino-bf16-folded", "cpu", 1, baseline_ms=[400.0], candidate_ms=[50.0],
             peer_ms=[200.0]),
    ]  # fmt: skip
    text = headline.render(rows, None, settings, "cmd", peer="openvino-bf16", notes=("busy machine",))
    assert "> busy machine" in text and "OpenVINO peer `openvino-bf16`" in text
    # segopt's best excludes segopt's own OpenVINO variants: the peer comparison is segopt vs OpenVINO
    assert (
        "| b0-512-ade20k | 1 | 400.0 | 200.0 | `torch-compile-fp32-folded` | 100.0 | **4.00×** | **2.00×** |"
        in text
    )
    assert "| `onnxruntime-fp32` | cpu | 1 | 400.0 | 200.0 | 200.0 | **2.00×** | 200.0 | 1.00× |" in text


def test_best_is_the_fastest_and_disturbed_rounds_are_marked(headline):
    settings = headline.settings_from(headline.parse_args(["--quick"]))
    make = headline.Comparison
    rows = [
        make("b0-512-ade20k", "a-fast", "cpu", 1, baseline_ms=[300.0] * 3, candidate_ms=[30.0] * 3,
             peer_ms=[60.0]),
        make("b0-512-ade20k", "b-disturbed", "cpu", 1, baseline_ms=[1000.0, 1000.0, 3000.0],
             candidate_ms=[60.0, 60.0, 2000.0], peer_ms=[60.0]),
    ]  # fmt: skip
    text = headline.render(rows, None, settings, "cmd", peer="openvino-bf16")
    assert "| `a-fast` | 30.0 | **10.00×** | **2.00×** |" in text  # not b-disturbed's inflated 16.7x
    assert "| `b-disturbed` | cpu | 1 | 1000.0 | 60.0 † |" in text and "† p90 above twice" in text


def test_results_keep_one_section_per_cpu_kind(headline):
    avx2 = "<!-- cpu-kind: avx2 -->\n## AVX2\nold\n<!-- /cpu-kind: avx2 -->\n"
    zen5 = "<!-- cpu-kind: avx512-bf16 -->\n## Zen 5\nfirst\n<!-- /cpu-kind: avx512-bf16 -->\n"
    text = headline.merge_results(headline.merge_results("", avx2), zen5)
    assert text.startswith("# segopt headline benchmark") and "old" in text and "first" in text
    again = headline.merge_results(text, zen5.replace("first", "second"))
    assert "old" in again and "second" in again and "first" not in again
    assert again.index("AVX2") < again.index("Zen 5") and again.count("<!-- cpu-kind:") == 2


def test_cpu_kind_names_the_isa(headline):
    fp = {
        "cpu_model": "AMD EPYC",
        "gpu_name": "",
        "isa_amx": False,
        "isa_avx512_bf16": True,
        "isa_avx512f": True,
    }
    assert headline.cpu_kind(fp)[0] == "avx512-bf16" and "no AMX" in headline.cpu_kind(fp)[1]
    assert headline.cpu_kind({**fp, "isa_avx512_bf16": False, "isa_avx512f": False})[0] == "avx2"
    assert headline.cpu_kind({**fp, "isa_amx": True})[0] == "amx"


def test_comparisons_come_from_the_measuring_loops_rounds(headline):
    from segopt_core.benchmark import Measurement

    ok = {"variant": "v", "batch_size": 1, "status": "ok", "error": ""}
    oom = {"variant": "v", "batch_size": 8, "status": "oom", "error": "MemoryError: batch 8"}
    rounds = {1: {"reference": [40.0, 42.0], "variant": [20.0, 21.0], "peer": [30.0, 31.0]}}
    first, second = headline.comparisons_of("b0-512-ade20k", "cpu", Measurement([ok, oom], rounds))
    assert first.status == "ok" and first.median("baseline") == 41.0 and first.peer_ms == [30.0, 31.0]
    assert second.status == "oom" and "batch 8" in second.reason
    config = headline.measuring_config(headline.settings_from(headline.parse_args(["--batch-sizes", "1,8"])))
    assert config.timing is None and config.pair_every_batch_size and config.batch_sizes == (1, 8)
    assert (config.rounds.rounds, config.rounds.iters_per_round, config.rounds.warmup_iters) == (5, 10, 5)


def test_product_vs_headline_says_when_the_two_ways_differ(benchmark_script):
    script = benchmark_script("product_vs_headline")
    product, headline = script.Way("product"), script.Way("headline")
    for ref, var in [(300.0, 40.0), (310.0, 42.0)]:
        product.add(ref, var)
    for ref, var in [(234.0, 35.0), (236.0, 35.0)]:
        headline.add(ref, var)
    lines, agree = script.verdict(product, headline, tolerance=0.10)
    assert not agree and "product/headline 1.298" in lines[0] and "DIFFER" in lines[-1]
    same, agree = script.verdict(product, product, tolerance=0.10)
    assert agree and "agree within 10%" in same[-1]
