"""Original NVlabs SegFormer / mmseg 0.x release names <-> transformers-5 names (exact, same head).

The NVlabs head concatenates [c4, c3, c2, c1] like HF's head, so `linear_fuse` maps 1:1; `attn.kv` packs
k then v along dim 0. NVlabs blocks and stage norms use LayerNorm eps 1e-6 (HF: 1e-5); `apply_eps` fixes
the built model so converted logits equal the source's.
"""

from __future__ import annotations

import re

import torch
from torch import nn

from segopt_core.checkpoints.formats import CheckpointError

# (NVlabs regex, HF template); stage numbers are 1-based in NVlabs names, 0-based in HF names.
_RULES = (
    (r"backbone\.patch_embed(\d)\.proj\.(.+)", "segformer.stages.{s}.patch_embeddings.proj.{1}"),
    (r"backbone\.patch_embed(\d)\.norm\.(.+)", "segformer.stages.{s}.patch_embeddings.layer_norm.{1}"),
    (r"backbone\.block(\d)\.(\d+)\.norm1\.(.+)", "segformer.stages.{s}.blocks.{1}.layernorm_before.{2}"),
    (r"backbone\.block(\d)\.(\d+)\.norm2\.(.+)", "segformer.stages.{s}.blocks.{1}.layernorm_after.{2}"),
    (r"backbone\.block(\d)\.(\d+)\.attn\.q\.(.+)", "segformer.stages.{s}.blocks.{1}.attention.q_proj.{2}"),
    (r"backbone\.block(\d)\.(\d+)\.attn\.proj\.(.+)", "segformer.stages.{s}.blocks.{1}.attention.o_proj.{2}"),
    (
        r"backbone\.block(\d)\.(\d+)\.attn\.sr\.(.+)",
        "segformer.stages.{s}.blocks.{1}.attention.sequence_reduction.sequence_reduction.{2}",
    ),
    (
        r"backbone\.block(\d)\.(\d+)\.attn\.norm\.(.+)",
        "segformer.stages.{s}.blocks.{1}.attention.sequence_reduction.layer_norm.{2}",
    ),
    (
        r"backbone\.block(\d)\.(\d+)\.mlp\.(fc1|fc2|dwconv\.dwconv)\.(.+)",
        "segformer.stages.{s}.blocks.{1}.mlp.{2}.{3}",
    ),
    (r"backbone\.norm(\d)\.(.+)", "segformer.stages.{s}.layer_norm.{1}"),
    (r"decode_head\.linear_c(\d)\.proj\.(.+)", "decode_head.linear_projections.{s}.proj.{1}"),
    (r"decode_head\.linear_fuse\.conv\.(.+)", "decode_head.linear_fuse.{0}"),
    (r"decode_head\.linear_fuse\.bn\.(.+)", "decode_head.batch_norm.{0}"),
    (r"decode_head\.linear_pred\.(.+)", "decode_head.classifier.{0}"),
)
_KV = re.compile(r"backbone\.block(\d)\.(\d+)\.attn\.kv\.(weight|bias)")
# Present in NVlabs releases but unused by the segmentation forward: BaseDecodeHead's conv_seg and
# the ImageNet classifier of MixVisionTransformer.
_IGNORED = re.compile(r"(decode_head\.conv_seg|backbone\.head)\.")


def _rename(key: str, rules: tuple, stage_offset: int) -> str | None:
    for pattern, template in rules:
        match = re.fullmatch(pattern, key)
        if match:
            groups = match.groups()
            stage = int(groups[0]) + stage_offset if "{s}" in template else None
            return template.format(*groups, s=stage)
    return None


def nvlabs_to_hf(state: dict[str, torch.Tensor], source: object = "checkpoint") -> dict[str, torch.Tensor]:
    """An NVlabs-named state dict in transformers-5 names (k and v unpacked from attn.kv)."""
    out: dict[str, torch.Tensor] = {}
    unknown = []
    for key, tensor in state.items():
        if kv := _KV.fullmatch(key):
            stage, block, kind = int(kv.group(1)) - 1, kv.group(2), kv.group(3)
            k, v = tensor.chunk(2, dim=0)
            prefix = f"segformer.stages.{stage}.blocks.{block}.attention"
            out[f"{prefix}.k_proj.{kind}"], out[f"{prefix}.v_proj.{kind}"] = k, v
        elif (new := _rename(key, _RULES, -1)) is not None:
            out[new] = tensor
        elif not _IGNORED.match(key):
            unknown.append(key)
    if unknown:
        raise CheckpointError(f"{source}: unexpected NVlabs keys {unknown[:4]}; is this a SegFormer release?")
    return out


_INVERSE = (
    (r"segformer\.stages\.(\d)\.patch_embeddings\.proj\.(.+)", "backbone.patch_embed{s}.proj.{1}"),
    (r"segformer\.stages\.(\d)\.patch_embeddings\.layer_norm\.(.+)", "backbone.patch_embed{s}.norm.{1}"),
    (r"segformer\.stages\.(\d)\.blocks\.(\d+)\.layernorm_before\.(.+)", "backbone.block{s}.{1}.norm1.{2}"),
    (r"segformer\.stages\.(\d)\.blocks\.(\d+)\.layernorm_after\.(.+)", "backbone.block{s}.{1}.norm2.{2}"),
    (r"segformer\.stages\.(\d)\.blocks\.(\d+)\.attention\.q_proj\.(.+)", "backbone.block{s}.{1}.attn.q.{2}"),
    (
        r"segformer\.stages\.(\d)\.blocks\.(\d+)\.attention\.o_proj\.(.+)",
        "backbone.block{s}.{1}.attn.proj.{2}",
    ),
    (
        r"segformer\.stages\.(\d)\.blocks\.(\d+)\.attention\.sequence_reduction\.sequence_reduction\.(.+)",
        "backbone.block{s}.{1}.attn.sr.{2}",
    ),
    (
        r"segformer\.stages\.(\d)\.blocks\.(\d+)\.attention\.sequence_reduction\.layer_norm\.(.+)",
        "backbone.block{s}.{1}.attn.norm.{2}",
    ),
    (
        r"segformer\.stages\.(\d)\.blocks\.(\d+)\.mlp\.(fc1|fc2|dwconv\.dwconv)\.(.+)",
        "backbone.block{s}.{1}.mlp.{2}.{3}",
    ),
    (r"segformer\.stages\.(\d)\.layer_norm\.(.+)", "backbone.norm{s}.{1}"),
    (r"decode_head\.linear_projections\.(\d)\.proj\.(.+)", "decode_head.linear_c{s}.proj.{1}"),
    (r"decode_head\.linear_fuse\.(.+)", "decode_head.linear_fuse.conv.{0}"),
    (r"decode_head\.batch_norm\.(.+)", "decode_head.linear_fuse.bn.{0}"),
    (r"decode_head\.classifier\.(.+)", "decode_head.linear_pred.{0}"),
)
_HF_KV = re.compile(r"segformer\.stages\.(\d)\.blocks\.(\d+)\.attention\.([kv])_proj\.(weight|bias)")


def hf_to_nvlabs(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A transformers-5 state dict in NVlabs names (k and v packed into attn.kv): the inverse mapping."""
    out: dict[str, torch.Tensor] = {}
    for key, tensor in state.items():
        if m := _HF_KV.fullmatch(key):
            if m.group(3) == "k":
                v = state[key.replace(".k_proj.", ".v_proj.")]
                out[f"backbone.block{int(m.group(1)) + 1}.{m.group(2)}.attn.kv.{m.group(4)}"] = torch.cat(
                    [tensor, v]
                )
        elif (old := _rename(key, _INVERSE, +1)) is not None:
            out[old] = tensor
        else:
            raise CheckpointError(f"cannot express {key!r} in NVlabs names (is this a SegFormer model?)")
    return out


def apply_eps(model: nn.Module, eps: float, patch_and_sr_eps: float) -> None:
    """Set LayerNorm eps as the source code had it: blocks and stage norms vs patch-embed and sr norms."""
    for name, module in model.named_modules():
        if isinstance(module, nn.LayerNorm):
            lowlevel = name.endswith(("patch_embeddings.layer_norm", "sequence_reduction.layer_norm"))
            module.eps = patch_and_sr_eps if lowlevel else eps
