"""OpenVINO backend (the `openvino` extra): build + load + agreement with fp32, dynamic batch, broken IR."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from segopt_core.backends import (
    ArtifactError,
    ArtifactStore,
    BackendUnavailable,
    VariantOptions,
    load_predictor,
)
from segopt_core.backends.openvino import openvino_installed
from segopt_core.backends.options import cpu_has_int8_dot, default_variants
from segopt_core.backends.verify import verification_inputs

needs_openvino = pytest.mark.skipif(
    not openvino_installed(), reason="OpenVINO is not installed: pip install 'segopt[openvino]'"
)


def _shared_tester():
    """BaseBackendTester of test_backend_variants.py (importlib mode puts no test folder on sys.path)."""
    path = Path(__file__).with_name("test_backend_variants.py")
    spec = importlib.util.spec_from_file_location("_segopt_backend_variants", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.BaseBackendTester


BaseBackendTester = needs_openvino(_shared_tester())


def _native_bf16() -> bool:
    from segopt_core.backends.openvino import cpu_capabilities

    return "BF16" in cpu_capabilities()


class TestOpenVinoFp32(BaseBackendTester):
    options = VariantOptions("openvino", "fp32")

    def test_ir_files_and_precision_hint(self, artifact):
        files = artifact.metadata["files"]
        assert {"model.xml", "model.bin"} <= set(files)
        assert artifact.metadata["verification"]["max_rel_diff"] < 1e-4  # pinned to f32, not bf16

    def test_dynamic_batch_and_size(self, artifact, tiny_model):
        predictor = load_predictor(artifact.path, num_threads=1)
        for shape in [(1, 3, 64, 64), (4, 3, 32, 48)]:
            batch = verification_inputs(shape, seed=3)
            with torch.inference_mode():
                ref = tiny_model(torch.from_numpy(batch)).numpy()
            out = predictor(batch)
            assert out.shape == ref.shape
            assert np.abs(out - ref).max() <= 1e-3 * np.abs(ref).max()

    def test_broken_ir_is_an_artifact_error(self, artifact, tmp_path):
        broken = tmp_path / "broken"
        shutil.copytree(artifact.path, broken)
        xml = broken / "model.xml"
        xml.write_bytes(b"x" * xml.stat().st_size)  # same size: passes the size check, fails to parse
        with pytest.raises(ArtifactError, match="model.xml"):
            load_predictor(broken)

    def test_truncated_weights_are_blamed_on_the_bin_not_the_xml(self, artifact, tmp_path):
        import json

        from segopt_core.backends.integrity import file_record

        broken = tmp_path / "broken"
        shutil.copytree(artifact.path, broken)
        weights = broken / "model.bin"
        weights.write_bytes(weights.read_bytes()[:1000])
        meta = json.loads((broken / "metadata.json").read_text())
        meta["files"]["model.bin"] = file_record(weights)  # recorded: only OpenVINO's read can tell
        (broken / "metadata.json").write_text(json.dumps(meta))
        with pytest.raises(ArtifactError, match=r"model\.bin: OpenVINO cannot read the IR's weights") as err:
            load_predictor(broken)
        assert "\n" not in str(err.value) and "Exception from" not in str(err.value)


class TestOpenVinoFp32Folded(BaseBackendTester):
    options = VariantOptions("openvino", "fp32", fold_decode_head=True)


class TestOpenVinoBf16(BaseBackendTester):
    options = VariantOptions("openvino", "bf16", fold_decode_head=True)

    @pytest.fixture(scope="class")
    def artifact(self, store, tiny_model, tiny_spec):
        if not _native_bf16():
            pytest.skip("OpenVINO bf16 needs AVX512-BF16 or AMX on this CPU")
        return store.get_or_build(tiny_model, self.options, spec=tiny_spec)


@pytest.mark.slow
class TestOpenVinoInt8Nncf(BaseBackendTester):
    options = VariantOptions("openvino", "int8-static", fold_decode_head=True)

    def test_quantization_recorded(self, artifact):
        meta = artifact.metadata
        assert meta["quantization"]["tool"] == "nncf.quantize"
        assert meta["calibration"]["num_images_used"] == 8


@needs_openvino
def test_default_variants_include_openvino():
    slugs = [v.slug for v in default_variants(cuda=False, bf16=True, pt2e=False)]
    assert "openvino-fp32-folded" in slugs and "openvino-bf16-folded" in slugs
    assert ("openvino-int8-static-folded" in slugs) == cpu_has_int8_dot()
    assert not any(v.backend == "openvino" and v.precision == "bf16" for v in default_variants(False, False))


def test_missing_openvino_is_skipped_with_install_hint(monkeypatch, tmp_path, tiny_model, tiny_spec):
    monkeypatch.setitem(sys.modules, "openvino", None)  # import openvino -> ImportError
    with pytest.raises(BackendUnavailable, match=r"segopt\[openvino\]"):
        ArtifactStore(tmp_path).get_or_build(tiny_model, VariantOptions("openvino", "fp32"), spec=tiny_spec)
    with pytest.raises(ValueError, match="does not implement precision"):
        VariantOptions("openvino", "fp16")
