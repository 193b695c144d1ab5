"""Start points (a checkpoint with other classes, an ImageNet MiT encoder); exports that discover matches."""

from __future__ import annotations

import pytest
import torch

from segopt_core.checkpoints import discover, load_checkpoint, write_checkpoint
from segopt_core.checkpoints.nvlabs import hf_to_nvlabs
from segopt_core.models import build_hf_model
from segopt_core.train import InitError, make_config, train
from segopt_core.train.init import start_point
from segopt_core.variants import get_cell, tiny_cell


def test_checkpoint_with_other_classes_gets_new_classifier(tmp_path):
    source_spec = tiny_cell("cityscapes", 64)  # 19 classes
    source = build_hf_model(source_spec, seed=3)
    path = write_checkpoint(source, source_spec, tmp_path / "city19", "hf")
    with pytest.warns(UserWarning, match="19 classes, dataset has 150; re-initialising the classifier"):
        start = start_point(None, str(path), num_classes=150, crop=None, seed=0)
    assert start.model.decode_head.classifier.out_channels == 150
    own = start.model.state_dict()
    for key, value in source.state_dict().items():
        if not key.startswith("decode_head.classifier"):
            assert torch.equal(own[key], value), key


def test_pretrained_mit_encoder_is_loaded(tmp_path, tiny_spec):
    donor = build_hf_model(tiny_spec, seed=7)
    nvlabs = hf_to_nvlabs(donor.state_dict())
    imagenet = {k.removeprefix("backbone."): v for k, v in nvlabs.items() if k.startswith("backbone.")}
    imagenet["head.weight"] = torch.zeros(1000, 16)  # the ImageNet classifier every mit_bX.pth carries
    torch.save(imagenet, tmp_path / "mit_tiny.pth")
    start = start_point(tiny_spec, "scratch", 150, None, seed=0, pretrained_encoder=tmp_path / "mit_tiny.pth")
    own, ref = start.model.state_dict(), donor.state_dict()
    encoder = [k for k in ref if k.startswith("segformer.")]
    assert encoder and all(torch.equal(own[k], ref[k]) for k in encoder)
    assert not torch.equal(own["decode_head.classifier.weight"], ref["decode_head.classifier.weight"])
    with pytest.raises(InitError, match="does not fit this cell"):  # a tiny MiT file for a B0 cell
        start_point(
            get_cell("b0-512-ade20k"),
            "scratch",
            150,
            32,
            seed=0,
            pretrained_encoder=tmp_path / "mit_tiny.pth",
        )


def test_trained_folder_is_discovered_and_loads(synth_ade, tmp_path):
    result = train(synth_ade, tiny_cell("ade20k", 32), make_config(iters=2, val_interval=2), tmp_path / "run")
    report = discover([result.best_dir])
    assert [a.cell for a in report.accepted] == ["tiny-32-ade20k"], report.table()
    loaded = load_checkpoint(result.best_dir)
    assert loaded.format == "hf" and loaded.spec.num_classes == 150
    x = torch.zeros(1, 3, 32, 32)
    assert loaded.model(x).shape == (1, 150, 8, 8)
