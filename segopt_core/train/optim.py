"""AdamW with SegFormer's parameter groups: decode head lr x10, no weight decay on norms and pos_block.

mmseg's config says `paramwise_cfg=dict(custom_keys={'pos_block': dict(decay_mult=0.),
'norm': dict(decay_mult=0.), 'head': dict(lr_mult=10.)})`. Mapped to transformers' SegFormer:
- norm: every parameter of a LayerNorm / BatchNorm / GroupNorm module, found by module type (HF names them
  `layer_norm`, `layernorm_before/after`, `sequence_reduction.layer_norm`, `patch_embeddings.layer_norm`,
  `decode_head.batch_norm`). mmseg matches the substring 'norm' instead, which misses its own stage-end
  norms (`layers.i.2`) and the head's `bn`; we treat every normalization layer alike, as the paper intends.
- pos_block: parameters whose name contains `pos_block` or `pos_embed`. MiT has none (its Mix-FFN depthwise
  conv plays that role and keeps its decay in mmseg too), so the group is empty for SegFormer; it is kept for
  encoders that have one (PVT's `pos_block`).
- head: parameters under `decode_head.`; multipliers combine (a head norm gets lr x10 and no decay), where
  mmengine would apply only the first matching key.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from segopt_core.train.config import TrainConfig

_NORM_TYPES = (
    nn.LayerNorm,
    nn.modules.batchnorm._BatchNorm,
    nn.GroupNorm,
    nn.modules.instancenorm._InstanceNorm,
)
_POS_KEYS = ("pos_block", "pos_embed")
_HEAD_PREFIXES = ("decode_head.", "auxiliary_head.")


@dataclass(frozen=True)
class ParamGroup:
    """A named set of parameters with its lr and weight decay."""

    name: str
    param_names: tuple[str, ...]
    lr: float
    weight_decay: float


def norm_param_names(model: nn.Module) -> set[str]:
    """Names of the parameters that belong to normalization layers."""
    names = set()
    for mod_name, module in model.named_modules():
        if isinstance(module, _NORM_TYPES):
            prefix = f"{mod_name}." if mod_name else ""
            names.update(prefix + p for p, _ in module.named_parameters(recurse=False))
    return names


def _kind(name: str, norms: set[str]) -> str:
    """'pos', 'norm' or 'plain': which decay rule a parameter follows."""
    if any(key in name for key in _POS_KEYS):
        return "pos"
    return "norm" if name in norms else "plain"


def param_groups(model: nn.Module, config: TrainConfig) -> list[ParamGroup]:
    """Six groups (backbone|head x plain|norm|pos), empty ones included so the layout never changes."""
    norms = norm_param_names(model)
    decay = {"plain": 1.0, "norm": config.norm_decay_mult, "pos": config.pos_decay_mult}
    buckets: dict[tuple[str, str], list[str]] = {
        (part, kind): [] for part in ("backbone", "head") for kind in ("plain", "norm", "pos")
    }
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        part = "head" if name.startswith(_HEAD_PREFIXES) else "backbone"
        buckets[(part, _kind(name, norms))].append(name)
    return [
        ParamGroup(
            name=f"{part}" if kind == "plain" else f"{part}_{kind}",
            param_names=tuple(names),
            lr=config.lr * (config.head_lr_mult if part == "head" else 1.0),
            weight_decay=config.weight_decay * decay[kind],
        )
        for (part, kind), names in buckets.items()
    ]


def build_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.AdamW:
    """AdamW over `param_groups`, each torch group tagged with its `name` and `initial_lr`."""
    params = dict(model.named_parameters())
    groups = [
        {
            "name": g.name,
            "params": [params[n] for n in g.param_names],
            "lr": g.lr,
            "initial_lr": g.lr,
            "weight_decay": g.weight_decay,
        }
        for g in param_groups(model, config)
    ]
    return torch.optim.AdamW(groups, lr=config.lr, betas=config.betas, eps=config.eps)
