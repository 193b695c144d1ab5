"""The engine on real tiny SegFormer predictors: model scope, end-to-end scope and peak memory."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from segopt_core.benchmark import PeakMemory, benchmark_predictor
from segopt_core.benchmark.end_to_end import default_image_size, write_sample_images
from segopt_core.models import parameter_count
from segopt_core.predictor import TorchPredictor
from segopt_core.variants import get_cell


def test_model_scope_on_tiny_segformer(tiny_model, tiny_spec):
    rows = benchmark_predictor(TorchPredictor(tiny_model), tiny_spec, (1, 2), warmup=0, iters=2)
    assert [r["status"] for r in rows] == ["ok", "ok"]
    row = rows[0]
    assert (row["input_h"], row["input_w"]) == tiny_spec.crop_size and row["cell"] == tiny_spec.name
    assert row["param_count"] == parameter_count(tiny_model)
    assert row["model_size_mib"] > 0 and row["peak_rss_mib"] >= row["rss_before_mib"] > 0
    assert row["cuda_max_allocated_mib"] is None and row["device"] == "cpu"


def test_end_to_end_scope(tiny_model, tiny_spec, tmp_path):
    spec = replace(
        tiny_spec, test_scale=(80, 48)
    )  # keep the images at 48x80: 150 full-size logit maps are slow
    paths = write_sample_images(tmp_path, (48, 80), n=3)
    rows = benchmark_predictor(
        TorchPredictor(tiny_model), spec, (1, 2), warmup=0, iters=1, scope="e2e", images=paths
    )
    assert [r["status"] for r in rows] == ["ok", "ok"], rows[0]["error"]
    assert (rows[0]["input_h"], rows[0]["input_w"]) == (48, 80) and rows[0]["scope"] == "e2e"


def test_end_to_end_without_images_is_a_failed_row(tiny_model, tiny_spec):
    (row,) = benchmark_predictor(TorchPredictor(tiny_model), tiny_spec, (1,), iters=1, scope="e2e")
    assert row["status"] == "failed" and "image" in row["error"]


def test_default_image_sizes():
    assert default_image_size(get_cell("b0-512-ade20k")) == (512, 682)
    assert default_image_size(get_cell("b2-1024-cityscapes")) == (1024, 2048)


def test_peak_memory_sees_a_transient_allocation():
    with PeakMemory("cpu") as memory:
        block = np.ones(40 * 1024 * 1024 // 4, dtype=np.float32)  # 40 MiB, every page touched
        del block
    assert memory.peak_rss_increase_mib >= 35


def test_param_count_of_an_onnx_artifact_comes_from_its_metadata(tiny_model, tiny_spec, tmp_path):
    from segopt_core.backends import ArtifactStore, VariantOptions, load_predictor
    from segopt_core.backends.folding import fold_decode_head

    options = VariantOptions("onnxruntime", "fp32", fold_decode_head=True)
    artifact = ArtifactStore(tmp_path).get_or_build(tiny_model, options, spec=tiny_spec)
    folded = parameter_count(fold_decode_head(tiny_model))
    assert artifact.metadata["param_count"] == folded < parameter_count(tiny_model)
    (row,) = benchmark_predictor(
        load_predictor(artifact.path), tiny_spec, (1,), warmup=0, iters=1, model_path=artifact.path
    )
    assert row["status"] == "ok" and row["param_count"] == folded
