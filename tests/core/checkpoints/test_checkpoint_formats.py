"""Every format written and read back; old and new HF names; unsafe pickles refused, never executed."""

from __future__ import annotations

import os
import pickle
import shutil
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from segopt_core.checkpoints import (
    CheckpointError,
    NotSegformerError,
    UnsafeCheckpointError,
    build_mmseg_model,
    load_checkpoint,
    release_name,
    write_checkpoint,
)
from segopt_core.checkpoints.hf import to_new_hf_name
from segopt_core.models import LogitsModel
from segopt_core.variants import get_cell

X = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope="module")
def written(tiny_hf_model, tiny_spec, tmp_path_factory):
    """The tiny model written once in each HF-head format, and an MMSeg-head model in mmseg1."""
    root = tmp_path_factory.mktemp("formats")
    paths = {
        fmt: write_checkpoint(tiny_hf_model, tiny_spec, root / release_name(tiny_spec, fmt), fmt)
        for fmt in ("hf", "safetensors", "nvlabs")
    }
    mmseg = build_mmseg_model(tiny_spec, seed=1)
    paths["mmseg1"] = write_checkpoint(mmseg, tiny_spec, root / release_name(tiny_spec, "mmseg1"), "mmseg1")
    return paths, mmseg


@pytest.mark.parametrize("fmt", ["hf", "safetensors", "nvlabs", "mmseg1"])
@torch.inference_mode()
def test_every_format_loads_back_to_the_same_cell_and_logits(fmt, written, tiny_model, tiny_spec):
    paths, mmseg = written
    loaded = load_checkpoint(paths[fmt])
    assert loaded.format == fmt
    assert loaded.spec == tiny_spec and loaded.match.custom
    assert isinstance(loaded.model, LogitsModel) and not loaded.model.training
    assert len(loaded.sha256) == 64
    reference = mmseg(X) if fmt == "mmseg1" else tiny_model(X)
    # NVlabs/mmseg LayerNorms use eps 1e-6 where transformers uses 1e-5: tiny, expected differences.
    tol = 1e-6 if fmt in ("hf", "safetensors") else 1e-4
    torch.testing.assert_close(loaded.model(X), reference, atol=tol, rtol=tol)


def test_release_names_follow_the_official_ones():
    cell = get_cell("b2-512-ade20k")
    assert release_name(cell, "nvlabs") == "segformer.b2.512x512.ade.160k.pth"
    assert release_name(cell, "mmseg1") == "segformer_mit-b2_512x512_160k_ade20k.pth"
    assert release_name(get_cell("b0-1024-cityscapes"), "mmseg") == "segformer.b0.1024x1024.city.160k.pth"
    assert (
        release_name(get_cell("b0-1024-cityscapes"), "mmseg1")
        == "segformer_mit-b0_8x1_1024x1024_160k_cityscapes.pth"
    )
    assert release_name(get_cell("b5-640-ade20k"), "hf") == "segformer-b5-finetuned-ade-640-640"


@torch.inference_mode()
def test_bare_safetensors_with_old_and_new_names(written, tiny_model, tmp_path):
    paths, _ = written
    old = tmp_path / "old-names.safetensors"
    shutil.copy(paths["hf"] / "model.safetensors", old)  # transformers 5 saves the old (v4) names
    new = paths["safetensors"]
    with safe_open(str(old), "pt") as fh:
        assert any(".encoder.block." in k for k in fh.keys())
    with safe_open(str(new), "pt") as fh:
        assert any(".stages.0.blocks." in k for k in fh.keys())
    for path in (old, new):
        loaded = load_checkpoint(path)
        assert loaded.format == "safetensors"
        torch.testing.assert_close(loaded.model(X), tiny_model(X), atol=1e-6, rtol=1e-5)


def test_hf_folder_with_pytorch_model_bin(written, tiny_model, tmp_path):
    from safetensors.torch import load_file

    paths, _ = written
    folder = tmp_path / "segformer-tiny-finetuned-ade-64-64"
    shutil.copytree(paths["hf"], folder)
    torch.save(load_file(str(folder / "model.safetensors")), folder / "pytorch_model.bin")
    (folder / "model.safetensors").unlink()
    loaded = load_checkpoint(folder)
    assert loaded.format == "hf" and loaded.spec.name == "tiny-64-ade20k"
    torch.testing.assert_close(loaded.model(X), tiny_model(X), atol=1e-6, rtol=1e-5)


def test_sharded_hf_folder(tiny_hf_model, tiny_model, tmp_path):
    folder = tmp_path / "segformer-tiny-finetuned-ade-64-64"
    tiny_hf_model.save_pretrained(folder, max_shard_size="50KB")
    assert (folder / "model.safetensors.index.json").is_file()
    loaded = load_checkpoint(folder)
    assert loaded.format == "hf"
    torch.testing.assert_close(loaded.model(X), tiny_model(X), atol=1e-6, rtol=1e-5)


def test_transformers_old_names_are_renamed():
    assert to_new_hf_name("segformer.encoder.block.1.0.attention.self.kv.weight").startswith(
        "segformer.stages.1.blocks.0"
    )
    assert to_new_hf_name("segformer.encoder.block.1.0.attention.output.dense.bias").endswith(
        "attention.o_proj.bias"
    )
    assert (
        to_new_hf_name("decode_head.linear_c.3.proj.weight") == "decode_head.linear_projections.3.proj.weight"
    )
    assert to_new_hf_name("segformer.stages.0.layer_norm.weight") == "segformer.stages.0.layer_norm.weight"


class _Payload:
    """A pickle that, if ever executed, creates a marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_refused_and_never_runs(tmp_path):
    control = tmp_path / "control-marker"
    pickle.loads(pickle.dumps(_Payload(control)))  # the payload does work when a pickle is trusted...
    assert control.exists()
    marker = tmp_path / "pwned"
    path = tmp_path / "segformer.b0.512x512.ade.160k.pth"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "evil": _Payload(marker)}, path)
    with pytest.raises(UnsafeCheckpointError, match=r"refused: loading it would run code \(it calls ") as err:
        load_checkpoint(path)
    assert not marker.exists()  # ...but segopt never executed it
    message = str(err.value)  # one line, and never torch's advice to allow the global or drop weights_only
    assert "\n" not in message and "weights_only=False" not in message and "safe_globals" not in message


def test_a_plain_pickle_is_named_as_such_not_as_a_corrupt_torch_file(tmp_path):
    path = tmp_path / "weights.pth"
    path.write_bytes(pickle.dumps({"w": [0.0, 1.0]}))
    with pytest.raises(CheckpointError, match="a plain Python pickle, not a file torch.save wrote"):
        load_checkpoint(path)


def test_writing_mmseg1_from_an_hf_head_is_refused(tiny_hf_model, tiny_spec, tmp_path):
    with pytest.raises(CheckpointError, match="MMSegSegformer"):
        write_checkpoint(tiny_hf_model, tiny_spec, tmp_path / "x.pth", "mmseg1")
    with pytest.raises(CheckpointError, match="valid formats"):
        write_checkpoint(tiny_hf_model, tiny_spec, tmp_path / "x.pth", "onnx")


def test_given_cell_is_checked_against_the_weights(written, tiny_spec):
    paths, _ = written
    assert load_checkpoint(paths["nvlabs"], cell=tiny_spec).spec == tiny_spec
    with pytest.raises(CheckpointError, match="omit the cell"):
        load_checkpoint(paths["nvlabs"], cell="b0-512-ade20k")


@pytest.mark.parametrize(
    ("content", "error", "message"),
    [
        (b"", CheckpointError, "empty file"),
        (b"PK\x03\x04 definitely not a zip", CheckpointError, "corrupt or truncated"),
    ],
)
def test_broken_files_raise_checkpoint_errors(tmp_path, content, error, message):
    path = tmp_path / "broken.pth"
    path.write_bytes(content)
    with pytest.raises(error, match=message):
        load_checkpoint(path)


def test_non_segformer_weights_are_named_as_such(tmp_path):
    path = tmp_path / "resnet50.pth"
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7), "fc.weight": torch.zeros(1000, 2048)}, path)
    with pytest.raises(NotSegformerError, match="not a SegFormer checkpoint"):
        load_checkpoint(path)
