"""Artifact store: reuse, rebuild of broken folders, atomic builds, calibration and verification errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from segopt_core.backends import (
    ArtifactError,
    ArtifactStore,
    CalibrationError,
    VariantOptions,
    VerificationError,
    load_predictor,
)
from segopt_core.backends.artifacts import METADATA_FILE
from segopt_core.backends.verify import TOLERANCES, _problems, compare_logits, verification_inputs
from segopt_core.models import LogitsModel, build_hf_model

TORCH_FP32 = VariantOptions("torch", "fp32")  # cheapest to build; ORT/other backends share the store code
MODEL_FILE = "source.safetensors"


@pytest.fixture()
def built(tmp_path, tiny_model, tiny_spec):
    store = ArtifactStore(tmp_path)
    return store, store.get_or_build(tiny_model, TORCH_FP32, spec=tiny_spec)


def test_second_call_reuses(built, tiny_model, tiny_spec):
    store, first = built
    mtime = (first.path / MODEL_FILE).stat().st_mtime_ns
    again = store.get_or_build(tiny_model, TORCH_FP32, spec=tiny_spec)
    assert again.reused and not first.reused
    assert again.path == first.path and again.metadata["built_at"] == first.metadata["built_at"]
    assert (again.path / MODEL_FILE).stat().st_mtime_ns == mtime
    assert [a.path for a in store.artifacts()] == [first.path]


def test_metadata_records_what_flows_need(built):
    meta = built[1].metadata
    for key in (
        "versions",
        "options",
        "build_seconds",
        "verification",
        "size_bytes",
        "files",
        "checkpoint_sha256",
    ):
        assert key in meta
    assert [p.name for p in built[1].model_files] == [MODEL_FILE]  # no model_files list: every file
    assert meta["size_bytes"] == sum(
        f.stat().st_size for f in built[1].path.iterdir() if f.name != METADATA_FILE
    )


@pytest.mark.parametrize("damage", ["truncate", "delete", "bad-json"])
def test_broken_artifact_is_rebuilt(built, tiny_model, tiny_spec, damage):
    store, first = built
    model_file = first.path / MODEL_FILE
    if damage == "truncate":
        model_file.write_bytes(model_file.read_bytes()[:1000])
    elif damage == "delete":
        model_file.unlink()
    else:
        (first.path / METADATA_FILE).write_text("{not json", encoding="utf-8")
    with pytest.raises(ArtifactError, match="rebuild"):
        load_predictor(first.path)
    rebuilt = store.get_or_build(tiny_model, TORCH_FP32, spec=tiny_spec)
    assert not rebuilt.reused and rebuilt.path == first.path
    assert load_predictor(rebuilt.path)(verification_inputs((1, 3, 64, 64))).shape == (1, 150, 16, 16)
    assert not list(first.path.parent.glob(".t*"))  # no temp or trash folders left behind


def test_failed_build_leaves_nothing(tmp_path, tiny_model, tiny_spec):
    store = ArtifactStore(tmp_path)
    bad = VariantOptions("onnxruntime", "fp32", extra=(("opset", "7"),))  # export fails mid-build
    with pytest.raises(Exception):  # noqa: B017 - whatever the exporter raises, nothing may be published
        store.get_or_build(tiny_model, bad, spec=tiny_spec)
    assert not any(p.is_dir() for p in tmp_path.glob("*/*"))
    assert store.artifacts() == []


def test_stale_temp_folders_are_ignored_and_cleaned(built):
    store, first = built
    stale = first.path.parent / ".tmp-leftover"
    (stale / "model.onnx").parent.mkdir()
    (stale / METADATA_FILE).write_text(json.dumps(first.metadata), encoding="utf-8")
    assert [a.path for a in store.artifacts()] == [first.path]
    assert store.clean_temp(older_than_s=-1) == 1 and not stale.exists()


def test_int8_static_needs_enough_calibration_images(tmp_path, tiny_model, tiny_spec):
    store, opts = ArtifactStore(tmp_path), VariantOptions("onnxruntime", "int8-static")
    with pytest.raises(CalibrationError, match="needs calibration images"):
        store.get_or_build(tiny_model, opts, spec=tiny_spec)
    with pytest.raises(CalibrationError, match="only 2 calibration images"):
        store.get_or_build(tiny_model, opts, calib_images=verification_inputs((2, 3, 64, 64)), spec=tiny_spec)


def test_fp16_overflow_fails_verification(tmp_path, tiny_spec):
    model = LogitsModel(build_hf_model(tiny_spec, seed=3)).eval()
    with torch.no_grad():
        model.model.decode_head.classifier.weight.mul_(1e7)  # logits far beyond fp16's 65504
    store = ArtifactStore(tmp_path)
    with pytest.raises(VerificationError, match="failed verification"):
        store.get_or_build(model, VariantOptions("onnxruntime", "fp16"), spec=tiny_spec)
    assert not any(p.is_dir() for p in tmp_path.glob("*/*"))


def test_non_finite_output_is_reported():
    ref = verification_inputs((1, 3, 32, 32))
    bad = ref.copy()
    bad[0, 0, 0, 0] = np.nan
    figures = compare_logits(ref, bad)
    assert figures["finite"] is False and figures["argmax_agreement"] == 0.0
    assert "NaN/inf" in _problems(figures, TOLERANCES["fp16"])[0]


def test_load_predictor_on_a_plain_folder(tmp_path):
    with pytest.raises(ArtifactError, match="not a segopt artifact"):
        load_predictor(tmp_path)


def test_accepts_a_loaded_checkpoint(tmp_path, tiny_model, tiny_spec):
    from segopt_core.checkpoints import load_checkpoint, write_checkpoint

    ckpt = load_checkpoint(
        write_checkpoint(tiny_model, tiny_spec, tmp_path / "tiny.safetensors", "safetensors")
    )
    artifact = ArtifactStore(tmp_path / "store").get_or_build(ckpt, VariantOptions("torch", "fp32"))
    assert artifact.metadata["checkpoint_sha256"] == ckpt.sha256
    assert artifact.path.parent.name == ckpt.sha256[:12]
    x = verification_inputs((1, 3, 64, 64))
    np.testing.assert_allclose(
        load_predictor(artifact.path)(x), ckpt.model(torch.from_numpy(x)).detach().numpy(), atol=1e-5
    )


def test_a_concurrent_valid_artifact_wins_over_a_later_build(built):
    """Two builds of one variant race: the later one keeps the earlier's folder (a reader may be using it)."""
    from segopt_core.backends.artifacts import _publish

    _, first = built
    inode = first.path.stat().st_ino
    late = first.path.parent / ".tmp-late-build"
    late.mkdir()
    assert _publish(late, first.path) == first.path
    assert first.path.stat().st_ino == inode and (first.path / MODEL_FILE).is_file()
    assert not list(first.path.parent.glob(".trash-*"))


def test_a_broken_folder_is_replaced_and_force_replaces_a_valid_one(built, tiny_model, tiny_spec):
    from segopt_core.backends.artifacts import _publish

    store, first = built
    (first.path / MODEL_FILE).write_bytes(b"truncated")
    fresh = first.path.parent / ".tmp-fresh-build"
    fresh.mkdir()
    assert _publish(fresh, first.path) == first.path and not (first.path / MODEL_FILE).exists()
    rebuilt = store.get_or_build(tiny_model, TORCH_FP32, spec=tiny_spec)
    inode = rebuilt.path.stat().st_ino
    forced = store.get_or_build(tiny_model, TORCH_FP32, spec=tiny_spec, force=True)
    assert not forced.reused and forced.path.stat().st_ino != inode


@pytest.mark.parametrize("kind", ["hf", "mmseg"])
def test_source_weights_rebuild_the_same_model(tmp_path, tiny_spec, kind):
    """load_source builds the empty model with the checkpoint loader's builder, for either head."""
    from segopt_core.backends.source import load_source, save_source, spec_to_dict
    from segopt_core.checkpoints import build_mmseg_model

    inner = build_mmseg_model(tiny_spec, seed=2) if kind == "mmseg" else build_hf_model(tiny_spec, seed=2)
    model = LogitsModel(inner).eval()
    meta = {**save_source(model, tmp_path), "spec": spec_to_dict(tiny_spec)}
    loaded, spec = load_source(tmp_path, meta)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert meta["model_kind"] == kind and spec == tiny_spec and torch.equal(loaded(x), model(x))
