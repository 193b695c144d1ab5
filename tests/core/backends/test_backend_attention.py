"""The matmul attention that replaces SDPA for bf16 on CPU: same function, swapped only on a copy."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from segopt_core.backends import attention
from segopt_core.backends.folding import fold_decode_head


@pytest.mark.parametrize("heads, queries, keys", [(1, 256, 16), (2, 64, 64), (5, 48, 16)])
def test_matches_sdpa_in_fp32(heads, queries, keys):
    gen = torch.Generator().manual_seed(heads)
    q, k, v = (torch.randn(2, heads, n, 32, generator=gen) for n in (queries, keys, keys))
    out, weights = attention.matmul_attention(torch.nn.Identity(), q, k, v, None, scaling=32**-0.5)
    expected = F.scaled_dot_product_attention(q, k, v).transpose(1, 2)
    assert weights is None and out.shape == (2, queries, heads, 32) and out.is_contiguous()
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


def test_bf16_stays_close_to_fp32():
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, 2, n, 32, generator=gen) for n in (512, 64, 64))
    ref, _ = attention.matmul_attention(torch.nn.Identity(), q, k, v, None)
    low, _ = attention.matmul_attention(torch.nn.Identity(), q.bfloat16(), k.bfloat16(), v.bfloat16(), None)
    assert low.dtype == torch.bfloat16
    torch.testing.assert_close(low.float(), ref, atol=0.03, rtol=0.03)


def test_masks_are_refused():
    q = torch.zeros(1, 1, 4, 8)
    with pytest.raises(ValueError, match="without masks"):
        attention.matmul_attention(torch.nn.Identity(), q, q, q, torch.zeros(1, 1, 4, 4))


def test_swapped_on_a_copy_with_the_same_logits(tiny_model):
    folded = fold_decode_head(tiny_model)
    swapped = attention.with_matmul_attention(folded)
    assert attention.implementations(swapped) == {attention.MATMUL_ATTENTION}
    assert attention.implementations(folded) == attention.implementations(tiny_model) == {"sdpa"}
    x = torch.randn(2, 3, 64, 96, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        torch.testing.assert_close(swapped(x), folded(x), atol=1e-4, rtol=1e-4)


def test_only_cpu_bf16_is_swapped(tiny_model):
    assert attention.for_precision(tiny_model, "fp32", "cpu") is tiny_model
    assert attention.for_precision(tiny_model, "bf16", "cuda") is tiny_model
    assert attention.for_precision(tiny_model, "bf16", "cpu") is not tiny_model
    assert attention.build_steps("bf16", "cpu") and not attention.build_steps("fp16", "cuda")


def test_a_model_without_transformers_attention_is_refused():
    with pytest.raises(ValueError, match="Conv2d has no transformers attention"):
        attention.with_matmul_attention(torch.nn.Conv2d(3, 3, 1))
