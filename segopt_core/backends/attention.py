"""SegFormer's attention as two matmuls and a softmax, for bf16 on CPU.

SegFormer attends from every token to a few hundred spatially reduced keys (16384 queries against 256 keys
at 512x512, 1-8 heads of dim 32).  For those shapes PyTorch's CPU SDPA kernel runs bf16 no faster than fp32
(about 75 GFLOP/s on two Zen 5 cores), while oneDNN's bf16 batched matmul plus a softmax takes half the
time (benchmarks/RESULTS.md, docs/backends.md).  The softmax runs over a 2-D view: with symbolic H/W
inductor otherwise splits it into scalar single-threaded loops (10 ms instead of 1 ms for stage 2).

The function is registered with transformers' `AttentionInterface` and selected per model through its
config, so the model code stays transformers' own.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

MATMUL_ATTENTION = "segopt_matmul"


def matmul_attention(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    **kwargs,
) -> tuple[torch.Tensor, None]:
    """softmax(q·kᵀ·scale)·v in the inputs' dtype; transformers' attention-function signature."""
    if attention_mask is not None or (dropout and module.training):
        raise ValueError(f"{MATMUL_ATTENTION} attention is for inference without masks")
    scale = query.size(-1) ** -0.5 if scaling is None else scaling
    scores = torch.matmul(query * scale, key.transpose(-1, -2))
    probs = torch.softmax(scores.reshape(-1, scores.size(-1)), dim=-1).view(scores.shape)
    return torch.matmul(probs, value).transpose(1, 2).contiguous(), None


def _register() -> None:
    """Make MATMUL_ATTENTION a name transformers' attention lookup knows (idempotent)."""
    from transformers import AttentionInterface

    AttentionInterface.register(MATMUL_ATTENTION, matmul_attention)


def _configs(model: nn.Module) -> list:
    """The distinct transformers configs (with an attention implementation) inside `model`."""
    found = {
        id(m.config): m.config
        for m in model.modules()
        if hasattr(getattr(m, "config", None), "_attn_implementation")
    }
    return list(found.values())


def implementations(model: nn.Module) -> set[str]:
    """The attention implementations `model`'s transformers layers are set to use."""
    return {config._attn_implementation for config in _configs(model)}


def with_matmul_attention(model: nn.Module) -> nn.Module:
    """A copy of `model` whose SegFormer attention layers use `matmul_attention`; `model` is unchanged."""
    _register()
    copied = copy.deepcopy(model)
    configs = _configs(copied)
    if not configs:
        raise ValueError(f"{type(model).__name__} has no transformers attention to replace")
    for config in configs:
        config._attn_implementation = MATMUL_ATTENTION
    return copied


def used_for(precision: str, device: str) -> bool:
    """True where the matmul attention replaces SDPA: bf16 on CPU (CUDA keeps its flash kernels)."""
    return precision == "bf16" and device == "cpu"


def for_precision(model: nn.Module, precision: str, device: str) -> nn.Module:
    """The model to run at `precision` on `device`: matmul attention where `used_for`, else `model`."""
    return with_matmul_attention(model) if used_for(precision, device) else model


def recorded(steps: list[str]) -> bool:
    """True when an artifact's recorded steps (`applied_at_load`) include the matmul attention."""
    return any(MATMUL_ATTENTION in step for step in steps)


def build_steps(precision: str, device: str) -> list[str]:
    """The metadata line saying the attention was replaced, where it is."""
    return [f"attention as matmul + 2-D softmax ({MATMUL_ATTENTION})"] if used_for(precision, device) else []
