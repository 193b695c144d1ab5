"""MMSegmentation 0.17+/1.x MiT + SegformerHead names <-> segopt's canonical names (exact).

Canonical = transformers-5 encoder names + `MMSegSegformerHead` names (identical to mmseg's head names).
mmseg's `attn.attn` is an nn.MultiheadAttention: `in_proj_weight` packs q, k, v along dim 0; its MixFFN
uses 1x1 convs (`ffn.layers.0`/`.4`) where HF has Linear layers, so those weights are reshaped.
All mmseg MiT LayerNorms use eps 1e-6.
"""

from __future__ import annotations

import re

import torch

from segopt_core.checkpoints.formats import CheckpointError

_BLOCK = r"backbone\.layers\.(\d)\.1\.(\d+)\."
_RULES = (
    (r"backbone\.layers\.(\d)\.0\.projection\.(.+)", "segformer.stages.{0}.patch_embeddings.proj.{1}"),
    (r"backbone\.layers\.(\d)\.0\.norm\.(.+)", "segformer.stages.{0}.patch_embeddings.layer_norm.{1}"),
    (_BLOCK + r"norm1\.(.+)", "segformer.stages.{0}.blocks.{1}.layernorm_before.{2}"),
    (_BLOCK + r"norm2\.(.+)", "segformer.stages.{0}.blocks.{1}.layernorm_after.{2}"),
    (_BLOCK + r"attn\.attn\.out_proj\.(.+)", "segformer.stages.{0}.blocks.{1}.attention.o_proj.{2}"),
    (
        _BLOCK + r"attn\.sr\.(.+)",
        "segformer.stages.{0}.blocks.{1}.attention.sequence_reduction.sequence_reduction.{2}",
    ),
    (
        _BLOCK + r"attn\.norm\.(.+)",
        "segformer.stages.{0}.blocks.{1}.attention.sequence_reduction.layer_norm.{2}",
    ),
    (_BLOCK + r"ffn\.layers\.0\.(.+)", "segformer.stages.{0}.blocks.{1}.mlp.fc1.{2}"),
    (_BLOCK + r"ffn\.layers\.1\.(.+)", "segformer.stages.{0}.blocks.{1}.mlp.dwconv.dwconv.{2}"),
    (_BLOCK + r"ffn\.layers\.4\.(.+)", "segformer.stages.{0}.blocks.{1}.mlp.fc2.{2}"),
    (r"backbone\.layers\.(\d)\.2\.(.+)", "segformer.stages.{0}.layer_norm.{1}"),
    (r"(decode_head\.(?:convs\.\d\.(?:conv|bn)|fusion_conv\.(?:conv|bn)|conv_seg)\..+)", "{0}"),
)
_IN_PROJ = re.compile(_BLOCK + r"attn\.attn\.in_proj_(weight|bias)")
_IGNORED = re.compile(r"data_preprocessor\.")
_CONV_AS_LINEAR = re.compile(r".*\.mlp\.fc[12]\.weight")


def _rename(key: str, rules: tuple) -> str | None:
    for pattern, template in rules:
        if match := re.fullmatch(pattern, key):
            return template.format(*match.groups())
    return None


def mmseg1_to_canonical(
    state: dict[str, torch.Tensor], source: object = "checkpoint"
) -> dict[str, torch.Tensor]:
    """An mmseg-named state dict in canonical names (q/k/v unpacked, 1x1-conv FFN weights as Linear)."""
    out: dict[str, torch.Tensor] = {}
    unknown = []
    for key, tensor in state.items():
        if m := _IN_PROJ.fullmatch(key):
            prefix = f"segformer.stages.{m.group(1)}.blocks.{m.group(2)}.attention"
            for name, part in zip(("q_proj", "k_proj", "v_proj"), tensor.chunk(3, dim=0), strict=True):
                out[f"{prefix}.{name}.{m.group(3)}"] = part
        elif (new := _rename(key, _RULES)) is not None:
            out[new] = tensor.flatten(1) if _CONV_AS_LINEAR.fullmatch(new) else tensor
        elif not _IGNORED.match(key):
            unknown.append(key)
    if unknown:
        raise CheckpointError(
            f"{source}: unexpected MMSegmentation keys {unknown[:4]}; is this a SegFormer model?"
        )
    return out


_INVERSE = (
    (r"segformer\.stages\.(\d)\.patch_embeddings\.proj\.(.+)", "backbone.layers.{0}.0.projection.{1}"),
    (r"segformer\.stages\.(\d)\.patch_embeddings\.layer_norm\.(.+)", "backbone.layers.{0}.0.norm.{1}"),
    (
        r"segformer\.stages\.(\d)\.blocks\.(\d+)\.layernorm_before\.(.+)",
        "backbone.layers.{0}.1.{1}.norm1.{2}",
    ),
    (r"segformer\.stages\.(\d)\.blocks\.(\d+)\.layernorm_after\.(.+)", "backbone.layers.{0}.1.{1}.norm2.{2}"),
    (
        r"segformer\.stages\.(\d)\.blocks\.(\d+)\.attention\.o_proj\.(.+)",
        "backbone.layers.{0}.1.{1}.attn.attn.out_proj.{2}",
    ),
    (
        r"segformer\.stages\.(\d)\.blocks\.(\d+)\.attention\.sequence_reduction\.sequence_reduction\.(.+)",
        "backbone.layers.{0}.1.{1}.attn.sr.{2}",
    ),
    (
        r"segformer\.stages\.(\d)\.blocks\.(\d+)\.attention\.sequence_reduction\.layer_norm\.(.+)",
        "backbone.layers.{0}.1.{1}.attn.norm.{2}",
    ),
    (r"segformer\.stages\.(\d)\.blocks\.(\d+)\.mlp\.fc1\.(.+)", "backbone.layers.{0}.1.{1}.ffn.layers.0.{2}"),
    (
        r"segformer\.stages\.(\d)\.blocks\.(\d+)\.mlp\.dwconv\.dwconv\.(.+)",
        "backbone.layers.{0}.1.{1}.ffn.layers.1.{2}",
    ),
    (r"segformer\.stages\.(\d)\.blocks\.(\d+)\.mlp\.fc2\.(.+)", "backbone.layers.{0}.1.{1}.ffn.layers.4.{2}"),
    (r"segformer\.stages\.(\d)\.layer_norm\.(.+)", "backbone.layers.{0}.2.{1}"),
    (r"(decode_head\..+)", "{0}"),
)
_QKV = re.compile(r"segformer\.stages\.(\d)\.blocks\.(\d+)\.attention\.([qkv])_proj\.(weight|bias)")


def canonical_to_mmseg1(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Canonical names (an `MMSegSegformer` state dict) in mmseg names: the inverse mapping."""
    out: dict[str, torch.Tensor] = {}
    for key, tensor in state.items():
        if m := _QKV.fullmatch(key):
            if m.group(3) == "q":
                parts = [state[key.replace(".q_proj.", f".{p}_proj.")] for p in "qkv"]
                out[f"backbone.layers.{m.group(1)}.1.{m.group(2)}.attn.attn.in_proj_{m.group(4)}"] = (
                    torch.cat(parts)
                )
        elif (old := _rename(key, _INVERSE)) is not None:
            conv = _CONV_AS_LINEAR.fullmatch(key)
            out[old] = tensor.reshape(*tensor.shape, 1, 1) if conv else tensor
        else:
            raise CheckpointError(
                f"cannot express {key!r} in MMSegmentation names (is this an MMSegSegformer?)"
            )
    return out
