"""Hugging Face layout: old/new transformers key names, the architecture from canonical keys, HF configs."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

import torch

from segopt_core.checkpoints.formats import Arch, NotSegformerError


@lru_cache(maxsize=1)
def _renamings() -> tuple:
    """transformers' own old-name -> new-name rules for SegFormer (what from_pretrained applies)."""
    from transformers.conversion_mapping import get_checkpoint_conversion_mapping

    rules = []
    for owner in ("SegformerModel", "SegformerForSemanticSegmentation"):
        rules.extend(get_checkpoint_conversion_mapping(owner) or [])
    return tuple(rules)


def to_new_hf_name(key: str) -> str:
    """A transformers-4 SegFormer key renamed to transformers-5 names (new names pass through)."""
    from transformers.core_model_loading import rename_source_key

    renamed, _ = rename_source_key(key, list(_renamings()), [])
    return renamed


def normalize_hf_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """An HF state dict with old (transformers 4) or new names, in transformers-5 names."""
    return {to_new_hf_name(k): v for k, v in state.items()}


def _stage_depth(keys: set[str], stage: int) -> int:
    pattern = re.compile(rf"^segformer\.stages\.{stage}\.blocks\.(\d+)\.")
    found = [int(m.group(1)) for k in keys if (m := pattern.match(k))]
    return max(found) + 1 if found else 0


def arch_from_canonical(state: dict[str, torch.Tensor], source: object) -> Arch:
    """Read the architecture from a state dict in segopt's canonical names (HF-5 encoder + either head)."""
    keys = set(state)
    widths, depths, srs, patches, ratios = [], [], [], [], []
    for i in range(4):
        proj = state.get(f"segformer.stages.{i}.patch_embeddings.proj.weight")
        if proj is None:
            raise NotSegformerError(
                f"{source}: SegFormer encoder stage {i + 1} is missing (no patch embedding)"
            )
        widths.append(proj.shape[0])
        patches.append(proj.shape[2])
        depths.append(_stage_depth(keys, i))
        sr = state.get(
            f"segformer.stages.{i}.blocks.0.attention.sequence_reduction.sequence_reduction.weight"
        )
        srs.append(sr.shape[2] if sr is not None else 1)
        fc1 = state.get(f"segformer.stages.{i}.blocks.0.mlp.fc1.weight")
        if fc1 is None or depths[-1] == 0:
            raise NotSegformerError(f"{source}: SegFormer encoder stage {i + 1} has no transformer blocks")
        ratios.append(fc1.shape[0] // proj.shape[0])
    head, decoder, labels = _head_shape(state, source)
    return Arch(
        tuple(widths), tuple(depths), tuple(srs), tuple(patches), tuple(ratios), decoder, labels, head
    )


def _head_shape(state: dict[str, torch.Tensor], source: object) -> tuple[str, int, int]:
    if "decode_head.linear_projections.0.proj.weight" in state and "decode_head.classifier.weight" in state:
        decoder = state["decode_head.linear_projections.0.proj.weight"].shape[0]
        return "hf", decoder, state["decode_head.classifier.weight"].shape[0]
    if "decode_head.convs.0.conv.weight" in state and "decode_head.conv_seg.weight" in state:
        decoder = state["decode_head.convs.0.conv.weight"].shape[0]
        return "mmseg", decoder, state["decode_head.conv_seg.weight"].shape[0]
    raise NotSegformerError(
        f"{source}: SegFormer encoder without a semantic-segmentation decode head "
        "(an encoder-only/ImageNet or classification checkpoint); segopt needs a segmentation checkpoint"
    )


def heads_from_hf_config(config: dict[str, Any] | None) -> tuple[int, ...] | None:
    """num_attention_heads from an HF config.json dict, if present and well-formed."""
    heads = (config or {}).get("num_attention_heads")
    if isinstance(heads, list) and len(heads) == 4 and all(isinstance(h, int) and h > 0 for h in heads):
        return tuple(heads)
    return None
