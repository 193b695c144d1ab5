"""Parameter groups: decode head lr x10, zero weight decay exactly on norm and position-embedding params."""

from __future__ import annotations

import re

import pytest
import torch
from torch import nn

from segopt_core.models import build_hf_model
from segopt_core.train import TrainConfig, build_optimizer, param_groups

# HF SegFormer's normalization parameter names, spelled out (the list).
NORM_NAME = re.compile(
    r"(patch_embeddings\.layer_norm|layernorm_before|layernorm_after|sequence_reduction\.layer_norm"
    r"|stages\.\d\.layer_norm|decode_head\.batch_norm)\.(weight|bias)$"
)


def _groups(model, config=None):
    return {g.name: g for g in param_groups(model, config or TrainConfig())}


def test_groups_partition_every_parameter(tiny_spec):
    model = build_hf_model(tiny_spec)
    groups = _groups(model)
    names = [n for g in groups.values() for n in g.param_names]
    assert sorted(names) == sorted(n for n, _ in model.named_parameters())
    assert len(names) == len(set(names))


def test_zero_decay_groups_hold_exactly_norms_and_pos(tiny_spec):
    model = build_hf_model(tiny_spec)
    groups = _groups(model)
    zero_decay = {n for g in groups.values() if g.weight_decay == 0 for n in g.param_names}
    expected = {n for n, _ in model.named_parameters() if NORM_NAME.search(n)}
    assert zero_decay == expected
    assert len(expected) == 2 * (
        4 * 4 + 3 + 1
    )  # per stage: patch, before, after, stage; sr norm (sr>1); head BN
    assert groups["backbone_pos"].param_names == () and groups["head_pos"].param_names == ()  # MiT has none
    assert all(g.weight_decay == 0.01 for k, g in groups.items() if k in ("backbone", "head"))


def test_head_lr_times_ten(tiny_spec):
    model = build_hf_model(tiny_spec)
    groups = _groups(model)
    for name, group in groups.items():
        assert group.lr == pytest.approx(6e-4 if name.startswith("head") else 6e-5), name
        assert all(n.startswith("decode_head.") == name.startswith("head") for n in group.param_names)
    assert "decode_head.classifier.weight" in groups["head"].param_names
    assert "decode_head.batch_norm.weight" in groups["head_norm"].param_names


def test_pos_block_params_get_no_decay():
    class WithPos(nn.Module):
        def __init__(self):
            super().__init__()
            self.pos_block = nn.Conv2d(4, 4, 3, groups=4)
            self.pos_embed = nn.Parameter(torch.zeros(1, 4))
            self.proj = nn.Linear(4, 4)

    groups = _groups(WithPos())
    assert set(groups["backbone_pos"].param_names) == {"pos_block.weight", "pos_block.bias", "pos_embed"}
    assert groups["backbone_pos"].weight_decay == 0.0
    assert set(groups["backbone"].param_names) == {"proj.weight", "proj.bias"}


def test_optimizer_is_adamw_with_recipe_hyperparameters(tiny_spec):
    opt = build_optimizer(build_hf_model(tiny_spec), TrainConfig())
    assert isinstance(opt, torch.optim.AdamW)
    assert [g["name"] for g in opt.param_groups][:3] == ["backbone", "backbone_norm", "backbone_pos"]
    assert all(g["betas"] == (0.9, 0.999) and g["eps"] == 1e-8 for g in opt.param_groups)
