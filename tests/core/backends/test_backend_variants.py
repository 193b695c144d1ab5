"""Every CPU backend on the tiny model agrees with fp32 within its precision's tolerance (SMP-style)."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest
import torch

from segopt_core.backends import (
    ArtifactStore,
    BackendUnavailable,
    CalibrationOptions,
    VariantOptions,
    attention,
    load_predictor,
    segformer_safe_int8,
    torch_backends,
)
from segopt_core.backends.verify import TOLERANCES, verification_inputs
from segopt_core.predictor import Predictor


class BaseBackendTester:
    """Shared checks; a subclass only sets `options` (and maybe `marks`)."""

    options: VariantOptions
    check_shape = (2, 3, 64, 96)  # differs from the export shape and from both verification shapes

    @pytest.fixture(scope="class")
    def artifact(self, store, tiny_model, tiny_spec, calib_images):
        return store.get_or_build(tiny_model, self.options, calib_images=calib_images, spec=tiny_spec)

    def test_built_and_verified(self, artifact):
        meta = artifact.metadata
        assert meta["verification"]["passed"] is True
        assert len(meta["verification"]["shapes"]) == 2
        assert meta["slug"] == self.options.slug and artifact.size_bytes > 0
        assert meta["versions"]["torch"] == torch.__version__

    def test_loaded_predictor_matches_fp32(self, artifact, tiny_model):
        predictor = load_predictor(artifact.path)
        assert isinstance(predictor, Predictor)
        assert (predictor.name, predictor.precision) == (self.options.slug, self.options.precision)
        batch = verification_inputs(self.check_shape, seed=7)
        with torch.inference_mode():
            ref = tiny_model(torch.from_numpy(batch)).numpy()
        out = predictor(batch)
        n, _, h, w = self.check_shape
        assert out.dtype == np.float32 and out.shape == ref.shape == (n, 150, h // 4, w // 4)
        tol = TOLERANCES[self.options.precision]
        assert np.abs(out - ref).max() <= tol.max_rel_diff * np.abs(ref).max()
        assert (out.argmax(1) == ref.argmax(1)).mean() >= tol.min_argmax_agreement


class TestTorchFp32(BaseBackendTester):
    options = VariantOptions("torch", "fp32")


class TestTorchFp32Folded(BaseBackendTester):
    options = VariantOptions("torch", "fp32", fold_decode_head=True)


class TestTorchBf16(BaseBackendTester):
    options = VariantOptions("torch", "bf16", fold_decode_head=True)

    def test_metadata_says_whether_bf16_is_native(self, artifact):
        assert isinstance(artifact.metadata["bf16_native"], bool)

    def test_metadata_says_the_attention_is_replaced(self, artifact):
        assert attention.recorded(artifact.metadata["applied_at_load"])
        loaded = load_predictor(artifact.path).model
        assert attention.implementations(loaded) == {attention.MATMUL_ATTENTION}

    def test_artifacts_from_before_the_swap_keep_sdpa(self, artifact):
        steps = [s for s in artifact.metadata["applied_at_load"] if not attention.recorded([s])]
        older = {**artifact.metadata, "applied_at_load": steps}
        loaded = torch_backends.load(artifact.path, older, self.options)
        assert attention.implementations(loaded.model) == {"sdpa"}


class TestTorchInt8Dynamic(BaseBackendTester):
    options = VariantOptions("torch", "int8-dynamic")

    def test_metadata_lists_quantized_layers(self, artifact):
        meta = artifact.metadata
        assert meta["quantized_layers"] and all(
            "conv" not in n.split(".")[-1] for n in meta["quantized_layers"]
        )
        assert "Conv2d" in meta["quantization_note"] and meta["float_layers"]


class TestOrtFp32(BaseBackendTester):
    options = VariantOptions("onnxruntime", "fp32")

    def test_export_recorded(self, artifact):
        assert artifact.metadata["export"]["opset"] >= 17
        assert artifact.metadata["verification"]["max_rel_diff"] < 1e-4


class TestOrtFp32Folded(BaseBackendTester):
    options = VariantOptions("onnxruntime", "fp32", fold_decode_head=True)


class TestOrtFp16Cpu(BaseBackendTester):
    options = VariantOptions("onnxruntime", "fp16", fold_decode_head=True)


class TestOrtInt8Dynamic(BaseBackendTester):
    options = VariantOptions("onnxruntime", "int8-dynamic", fold_decode_head=True)


@pytest.mark.slow
class TestOrtInt8StaticSafe(BaseBackendTester):
    options = segformer_safe_int8(CalibrationOptions("percentile", num_images=8))

    def test_excluded_nodes_recorded(self, artifact):
        meta = artifact.metadata
        excluded = meta["excluded_nodes"]
        assert meta["num_excluded_nodes"] == len(excluded) > 0
        assert any("LayerNorm" in n or "layer_norm" in n.lower() for n in excluded)
        assert meta["calibration"]["num_images_used"] == 8 and len(meta["calibration"]["sha256"]) == 64


@pytest.mark.slow
class TestTorchCompileFp32(BaseBackendTester):
    """AOTInductor package; the package-specific checks live in test_backend_aoti.py."""

    options = VariantOptions("torch-compile", "fp32", fold_decode_head=True)

    @pytest.fixture(scope="class")
    def artifact(self, compiled_fp32):
        return compiled_fp32

    def test_metadata_lists_the_package(self, artifact):
        (entry,) = artifact.metadata["packages"]
        assert (artifact.path / entry["file"]).is_file() and entry["file"].endswith(".pt2")
        assert entry["shapes"]["max_batch"] == 16 and entry["compile_seconds"] > 0
        assert entry["file"] in artifact.metadata["files"] and artifact.metadata["model_files"] == [
            entry["file"]
        ]

    def test_package_is_frozen(self, artifact):
        """Inductor freezes (folds and pre-packs) weights only when compiling with grad off."""
        (entry,) = artifact.metadata["packages"]
        with zipfile.ZipFile(artifact.path / entry["file"]) as package:
            sources = [package.read(n).decode() for n in package.namelist() if n.endswith(".cpp")]
        assert sources and any("_frozen_param" in source for source in sources)


@pytest.mark.slow
class TestTorchCompileBf16(BaseBackendTester):
    options = VariantOptions("torch-compile", "bf16", fold_decode_head=True)

    def test_metadata_says_the_attention_is_replaced(self, artifact):
        assert any(attention.MATMUL_ATTENTION in step for step in artifact.metadata["compiled"])

    def test_package_records_its_inductor_configs(self, artifact):
        """A package rebuilt without layout optimization (inductor miscompile) says why."""
        (entry,) = artifact.metadata["packages"]
        assert entry["inductor_configs"]["freezing"] is True
        rebuilt = entry["inductor_configs"].get("layout_optimization") is False
        assert rebuilt == ("rebuilt_because" in entry)


@pytest.mark.slow
class TestTorchCompileInt8Pt2e(BaseBackendTester):
    """PT2E static INT8 (torchao's X86InductorQuantizer) baked into a package; torchao is a project extra."""

    options = VariantOptions("torch-compile", "int8-static", fold_decode_head=True)

    @pytest.fixture(scope="class")
    def artifact(self, store, tiny_model, tiny_spec, calib_images):
        pytest.importorskip("torchao", reason="PT2E INT8 needs the `pt2e` extra (torchao)")
        return store.get_or_build(tiny_model, self.options, calib_images=calib_images, spec=tiny_spec)

    def test_quantization_is_baked_in(self, artifact):
        meta = artifact.metadata
        assert any("convert_pt2e" in step for step in meta["compiled"])
        assert meta["calibration_file"] == "calibration.safetensors"


# --- GPU variants: real code, skipped here ------------------------------------------------------------

GPU_OPTIONS = [
    VariantOptions("torch", "fp16", fold_decode_head=True),
    VariantOptions("onnxruntime", "fp16", fold_decode_head=True, device="cuda"),
    VariantOptions("tensorrt", "fp16", fold_decode_head=True),
    VariantOptions("tensorrt", "int8-static", fold_decode_head=True),
]


@pytest.mark.gpu
@pytest.mark.parametrize("options", GPU_OPTIONS, ids=lambda o: o.slug)
def test_gpu_variant_builds_and_verifies(options, store, tiny_model, tiny_spec, calib_images):
    """On a GPU without onnxruntime-gpu or TensorRT those variants are skipped with the store's reason."""
    try:
        artifact = store.get_or_build(tiny_model, options, calib_images=calib_images, spec=tiny_spec)
    except BackendUnavailable as exc:
        pytest.skip(f"{options.slug}: {exc}")
    assert artifact.metadata["verification"]["passed"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA path")
@pytest.mark.parametrize("options", GPU_OPTIONS, ids=lambda o: o.slug)
def test_gpu_variants_are_unavailable_without_cuda(options, tmp_path, tiny_model, tiny_spec, calib_images):
    store = ArtifactStore(tmp_path)
    with pytest.raises(BackendUnavailable, match="CUDA|provider|TensorRT"):
        store.get_or_build(tiny_model, options, calib_images=calib_images, spec=tiny_spec)
    assert not any(
        p for p in tmp_path.rglob("*") if p.is_dir() and not p.name.startswith(".") and p.parent != tmp_path
    )
