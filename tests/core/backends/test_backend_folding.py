"""Decode-head folding is the same function as the original head, with far fewer head FLOPs."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from segopt_core.backends import FoldingError, fold_decode_head
from segopt_core.backends.folding import head_macs
from segopt_core.models import LogitsModel, build_hf_model

SHAPES = [(1, 3, 64, 64), (2, 3, 48, 80)]


@pytest.fixture(scope="module")
def hf_with_bn_stats(tiny_spec):
    """A tiny HF SegFormer whose decode-head BatchNorm has non-trivial statistics (so folding it matters)."""
    model = LogitsModel(build_hf_model(tiny_spec, seed=1)).eval()
    bn = model.model.decode_head.batch_norm
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for tensor, low, high in ((bn.running_mean, -1, 1), (bn.running_var, 0.5, 2), (bn.weight, 0.5, 2)):
            tensor.copy_(torch.empty_like(tensor).uniform_(low, high, generator=gen))
        bn.bias.uniform_(-1, 1, generator=gen)
    return model


def _assert_same_function(model: nn.Module, folded: nn.Module) -> None:
    for shape in SHAPES:
        x = torch.randn(*shape, generator=torch.Generator().manual_seed(shape[3]))
        with torch.inference_mode():
            ref, out = model(x), folded(x)
        assert out.shape == ref.shape
        torch.testing.assert_close(out, ref, atol=1e-4, rtol=1e-4)
        assert out.is_contiguous()


def test_hf_head_folding_is_exact(hf_with_bn_stats):
    _assert_same_function(hf_with_bn_stats, fold_decode_head(hf_with_bn_stats))


def test_folding_does_not_modify_the_source(tiny_model):
    before = {k: v.clone() for k, v in tiny_model.state_dict().items()}
    fold_decode_head(tiny_model)
    after = tiny_model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_mmseg_head_folding_is_exact(tiny_spec):
    from segopt_core.checkpoints import build_mmseg_model

    model = LogitsModel(build_mmseg_model(tiny_spec, seed=2)).eval()
    _assert_same_function(model, fold_decode_head(model))


def test_unknown_head_raises_clear_error():
    with pytest.raises(FoldingError, match="build without --fold-decode-head"):
        fold_decode_head(nn.Conv2d(3, 3, 1))


def test_folding_removes_most_head_macs_on_b0():
    widths, d = (32, 64, 160, 256), 256
    full, folded = head_macs(widths, d, (512, 512), False), head_macs(widths, d, (512, 512), True)
    assert folded < full / 10
