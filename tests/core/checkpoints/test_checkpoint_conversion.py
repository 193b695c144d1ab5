"""Formats (c) NVlabs and (d) MMSegmentation 1.x: converted models give the source weights' logits.

The source logits come from reference forwards written from the original repos' code (conftest), so a
wrong packing order (kv, in_proj), head concatenation order or FFN reshape fails these tests."""

from __future__ import annotations

import pytest
import torch

from segopt_core.checkpoints import build_mmseg_model, load_checkpoint
from segopt_core.checkpoints.mmseg1 import canonical_to_mmseg1, mmseg1_to_canonical
from segopt_core.checkpoints.nvlabs import hf_to_nvlabs, nvlabs_to_hf
from segopt_core.checkpoints.zoo import randomize_batchnorm
from segopt_core.models import build_hf_model

# A non-square batch of 2 catches height/width mix-ups in the token reshapes.
X = torch.randn(2, 3, 64, 96, generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="module")
def hf_source(tiny_spec):
    """A random tiny HF SegFormer whose BatchNorm has non-trivial statistics."""
    return randomize_batchnorm(build_hf_model(tiny_spec, seed=3), seed=3).eval()


def _random_state(state: dict[str, torch.Tensor], seed: int) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for key, value in state.items():
        if not value.is_floating_point():
            out[key] = value
        elif key.endswith("running_var"):
            out[key] = torch.rand(value.shape, generator=gen) + 0.5
        else:
            out[key] = torch.randn(value.shape, generator=gen) * 0.2
    return out


def test_nvlabs_state_round_trips_exactly(hf_source):
    state = hf_source.state_dict()
    back = nvlabs_to_hf(hf_to_nvlabs(state))
    assert set(back) == set(state)
    assert all(torch.equal(back[k], state[k]) for k in state)


@torch.inference_mode()
def test_nvlabs_checkpoint_gives_the_source_logits(hf_source, tiny_spec, tmp_path, reference_forwards):
    nvlabs_forward, _ = reference_forwards
    source = _random_state(hf_to_nvlabs(hf_source.state_dict()), seed=4)
    path = tmp_path / "segformer.tiny.64x64.ade.160k.pth"
    torch.save(
        {"meta": {"config": "num_heads=[1, 1, 2, 2]\ncrop_size = (64, 64)"}, "state_dict": source}, path
    )

    loaded = load_checkpoint(path)

    assert loaded.format == "nvlabs"
    expected = nvlabs_forward(source, X, tiny_spec.encoder.num_heads)
    got = loaded.model(X)
    assert got.shape == (2, 150, 16, 24)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)


@torch.inference_mode()
def test_nvlabs_reference_matches_hf_model(hf_source, tiny_spec, reference_forwards):
    """The reference itself agrees with transformers on HF weights (up to NVlabs' LayerNorm eps)."""
    nvlabs_forward, _ = reference_forwards
    expected = hf_source(pixel_values=X).logits
    got = nvlabs_forward(hf_to_nvlabs(hf_source.state_dict()), X, tiny_spec.encoder.num_heads)
    torch.testing.assert_close(got, expected, atol=1e-3, rtol=1e-3)


@torch.inference_mode()
def test_mmseg1_checkpoint_gives_the_source_logits(tiny_spec, tmp_path, reference_forwards):
    _, mmseg1_forward = reference_forwards
    model = build_mmseg_model(tiny_spec, seed=5)
    source = _random_state(canonical_to_mmseg1(model.state_dict()), seed=6)
    path = tmp_path / "segformer_mit-tiny_64x64_160k_ade20k.pth"
    torch.save(
        {"meta": {"config": "num_heads=[1, 1, 2, 2]\ncrop_size = (64, 64)"}, "state_dict": source}, path
    )

    loaded = load_checkpoint(path)

    assert loaded.format == "mmseg1"
    head = loaded.model.model.decode_head
    assert head.convs[0].bn.running_var.shape == (16,) and head.fusion_conv.conv.weight.shape == (
        16,
        64,
        1,
        1,
    )
    assert head.classifier is head.conv_seg
    expected = mmseg1_forward(source, X, tiny_spec.encoder.num_heads)
    torch.testing.assert_close(loaded.model(X), expected, atol=1e-5, rtol=1e-4)


def test_mmseg1_state_round_trips_exactly(tiny_spec):
    state = build_mmseg_model(tiny_spec, seed=7).state_dict()
    back = mmseg1_to_canonical(canonical_to_mmseg1(state))
    assert set(back) == set(state)
    assert all(torch.equal(back[k], state[k]) for k in state)
    mm = canonical_to_mmseg1(state)
    assert mm["backbone.layers.0.1.0.attn.attn.in_proj_weight"].shape == (24, 8)
    assert mm["backbone.layers.0.1.0.ffn.layers.0.weight"].shape == (32, 8, 1, 1)
