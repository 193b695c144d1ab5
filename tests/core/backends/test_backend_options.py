"""VariantOptions validation, slugs, keys and the default variant set."""

from __future__ import annotations

import pytest

from segopt_core.backends import CalibrationOptions, VariantOptions, default_variants, segformer_safe_int8


def test_slug_names_the_variant():
    assert VariantOptions("torch", "fp32").slug == "torch-fp32"
    assert segformer_safe_int8().slug == "onnxruntime-int8-static-segformer-safe-folded"
    entropy = VariantOptions("onnxruntime", "int8-static", calibration=CalibrationOptions("entropy"))
    assert entropy.slug == "onnxruntime-int8-static-entropy"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"backend": "tflite"}, "valid: torch, torch-compile, onnxruntime, tensorrt"),
        ({"precision": "int4"}, "valid: fp32"),
        ({"backend": "torch-compile", "precision": "int8-dynamic"}, "valid for it"),
        ({"backend": "torch", "precision": "int8-dynamic", "preset": "segformer-safe"}, "applies to"),
        ({"calibration": CalibrationOptions()}, "only apply to int8-static"),
    ],
)
def test_invalid_options_name_the_valid_ones(kwargs, message):
    with pytest.raises(ValueError, match=message):
        VariantOptions(**kwargs)


def test_bad_calibration_method():
    with pytest.raises(ValueError, match="minmax, entropy, percentile"):
        CalibrationOptions("kl")


def test_int8_static_gets_default_calibration_and_round_trips():
    opts = VariantOptions("onnxruntime", "int8-static", fold_decode_head=True)
    assert opts.calibration == CalibrationOptions()
    assert VariantOptions.from_dict(opts.to_dict()) == opts
    assert opts.digest() == VariantOptions.from_dict(opts.to_dict()).digest()
    assert opts.digest() != VariantOptions("onnxruntime", "int8-static").digest()


def test_cuda_variants_are_named_apart_from_the_cpu_ones():
    """A CUDA torch fp32 variant was named torch-fp32, like the CPU reference every speedup is relative to."""
    assert VariantOptions("torch", "fp32", device="cuda").slug == "torch-fp32-cuda"
    assert VariantOptions("torch", "fp16", fold_decode_head=True).slug == "torch-fp16-folded-cuda"
    assert VariantOptions("torch-compile", "bf16", device="cuda").slug == "torch-compile-bf16-cuda"
    assert VariantOptions("onnxruntime", "fp16", device="cuda").slug == "onnxruntime-fp16-cuda"
    assert VariantOptions("tensorrt", "int8-static").slug == "tensorrt-int8-static"  # CUDA-only backend
    cpu = default_variants(cuda=False, bf16=True, pt2e=True)
    assert not any("cuda" in v.slug for v in cpu) and "torch-fp32" in {v.slug for v in cpu}


def test_cuda_only_variants_force_cuda_device():
    assert VariantOptions("tensorrt", "fp16").device == "cuda"
    assert VariantOptions("torch", "fp16").device == "cuda"


def test_default_variants_depend_on_machine():
    cpu = default_variants(cuda=False, bf16=False, pt2e=False)
    assert all(v.device == "cpu" for v in cpu)
    assert not any(v.precision == "bf16" for v in cpu)
    assert not any(v.backend == "torch-compile" and v.precision == "int8-static" for v in cpu)
    assert any(v.precision == "bf16" for v in default_variants(cuda=False, bf16=True, pt2e=False))
    pt2e = [v for v in default_variants(cuda=False, bf16=False, pt2e=True) if v not in cpu]
    assert [v.slug for v in pt2e] == ["torch-compile-int8-static-folded"]
    gpu = default_variants(cuda=True, bf16=False)
    assert {"tensorrt", "onnxruntime", "torch"} <= {v.backend for v in gpu if v.device == "cuda"}
    assert len({v.slug for v in gpu}) == len(gpu)
