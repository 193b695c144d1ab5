"""An artifact loads only what its metadata vouches for (issue #23, item 3): no listed path outside the
folder (`..`, absolute, symbolic links), every loaded file listed and checked (size + sha256), and the
loaded model's classes checked against the metadata's cell."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from segopt_core.backends import ArtifactError, ArtifactStore, VariantOptions, load_predictor
from segopt_core.backends.artifacts import METADATA_FILE, check_artifact
from segopt_core.backends.integrity import file_record
from segopt_core.models import LogitsModel, build_hf_model

ORT_FP32 = VariantOptions("onnxruntime", "fp32")
TORCH_FP32 = VariantOptions("torch", "fp32")
OUTSIDE = Path("/etc/passwd")


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory, tiny_model, tiny_spec, tiny_city_spec):
    """ONNX Runtime and torch fp32 artifacts of the 150-class tiny model, and ONNX of a 19-class one."""
    store = ArtifactStore(tmp_path_factory.mktemp("store"))
    city = LogitsModel(build_hf_model(tiny_city_spec, seed=1)).eval()
    return {
        "ort": store.get_or_build(tiny_model, ORT_FP32, spec=tiny_spec).path,
        "torch": store.get_or_build(tiny_model, TORCH_FP32, spec=tiny_spec).path,
        "ort-19": store.get_or_build(city, ORT_FP32, spec=tiny_city_spec).path,
        "torch-19": store.get_or_build(city, TORCH_FP32, spec=tiny_city_spec).path,
    }


def _copy(artifacts: dict, kind: str, tmp_path: Path) -> tuple[Path, dict]:
    folder = tmp_path / kind
    shutil.copytree(artifacts[kind], folder)
    return folder, json.loads((folder / METADATA_FILE).read_text())


def _save(folder: Path, meta: dict) -> None:
    (folder / METADATA_FILE).write_text(json.dumps(meta))


def test_an_untouched_artifact_loads(artifacts):
    for kind in artifacts:
        assert load_predictor(artifacts[kind]).name


@pytest.mark.parametrize("name", ["../../../../../../etc/passwd", str(OUTSIDE)])
def test_a_listed_path_outside_the_folder_is_refused_without_reading_it(artifacts, tmp_path, name):
    folder, meta = _copy(artifacts, "ort", tmp_path)
    meta["files"][name] = file_record(OUTSIDE)  # under its real size and sha256
    _save(folder, meta)
    with pytest.raises(ArtifactError, match="a path outside the artifact folder") as err:
        load_predictor(folder)
    assert str(OUTSIDE.stat().st_size) not in str(err.value)  # nothing about that file was used


def test_a_loaded_file_that_is_a_symbolic_link_is_refused(artifacts, tmp_path):
    folder, _ = _copy(artifacts, "ort", tmp_path)
    elsewhere = tmp_path / "elsewhere.onnx"
    (folder / "model.onnx").rename(elsewhere)
    os.symlink(elsewhere, folder / "model.onnx")  # same bytes, so size and sha256 would match
    with pytest.raises(ArtifactError, match="model.onnx: a symbolic link inside the artifact"):
        load_predictor(folder)
    with pytest.raises(ArtifactError, match="symbolic link"):
        check_artifact(folder)  # the store treats it as broken too (rebuilt, never reused)


def test_a_loaded_file_missing_from_the_list_is_refused(artifacts, tmp_path):
    """/etc/passwd listed under its real sha256, model.onnx dropped: the check used to pass."""
    folder, meta = _copy(artifacts, "ort", tmp_path)
    del meta["files"]["model.onnx"]
    _save(folder, meta)
    with pytest.raises(ArtifactError, match="model.onnx: loaded by the onnxruntime backend but not listed"):
        load_predictor(folder)


def test_a_loaded_file_replaced_at_the_same_size_is_refused(artifacts, tmp_path):
    folder, _ = _copy(artifacts, "torch", tmp_path)
    path = folder / "source.safetensors"
    data = bytearray(path.read_bytes())
    data[-8:] = b"\x00" * 8  # one weight changed, size kept: only the sha256 tells
    path.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="source.safetensors: contents differ from the metadata"):
        load_predictor(folder)


@pytest.mark.parametrize(("kind", "file"), [("ort", "model.onnx"), ("torch", "source.safetensors")])
def test_a_model_of_another_class_count_is_refused_even_with_its_size_and_sha_recorded(
    artifacts, tmp_path, kind, file
):
    folder, meta = _copy(artifacts, kind, tmp_path)
    shutil.copy(artifacts[f"{kind}-19"] / file, folder / file)  # 19 classes into a 150-class artifact
    meta["files"][file] = file_record(folder / file)
    _save(folder, meta)
    with pytest.raises(ArtifactError, match=r"19 classes|do not fit the artifact's cell.*150 classes") as err:
        load_predictor(folder)
    assert "\n" not in str(err.value)
