"""Build SegFormer models from cell specs (random init, never a download)."""

from __future__ import annotations

import torch
from torch import nn
from transformers import SegformerConfig, SegformerForSemanticSegmentation

from segopt_core.variants import CellSpec


def hf_config(spec: CellSpec) -> SegformerConfig:
    """The transformers SegformerConfig for a cell, with its class names as id2label."""
    enc = spec.encoder
    names = spec.dataset.class_names if spec.num_labels_override is None else None
    id2label = (
        {i: n for i, n in enumerate(names)} if names else {i: f"class_{i}" for i in range(spec.num_classes)}
    )
    return SegformerConfig(
        num_channels=3,
        num_encoder_blocks=4,
        depths=list(enc.depths),
        sr_ratios=list(enc.sr_ratios),
        hidden_sizes=list(enc.hidden_sizes),
        patch_sizes=list(enc.patch_sizes),
        strides=list(enc.strides),
        num_attention_heads=list(enc.num_heads),
        mlp_ratios=list(enc.mlp_ratios),
        decoder_hidden_size=spec.decoder_hidden_size,
        num_labels=spec.num_classes,
        id2label=id2label,
        label2id={v: k for k, v in id2label.items()},
        semantic_loss_ignore_index=255,
        image_size=spec.crop_size[0],
    )


def build_hf_model(spec: CellSpec, seed: int = 0) -> SegformerForSemanticSegmentation:
    """A random-init transformers SegFormer for a cell, in eval mode."""
    torch.manual_seed(seed)
    model = SegformerForSemanticSegmentation(hf_config(spec))
    return model.eval()


class LogitsModel(nn.Module):
    """Adapter: pixel_values (N,3,H,W) -> logits (N,C,H/4,W/4); the one model interface segopt optimizes."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        out = self.model(pixel_values=pixel_values)
        return out.logits if hasattr(out, "logits") else out


def build_model(spec: CellSpec, seed: int = 0) -> LogitsModel:
    """A random-init SegFormer for a cell wrapped as a LogitsModel."""
    return LogitsModel(build_hf_model(spec, seed)).eval()


def parameter_count(model: nn.Module) -> int:
    """Number of parameters of a model."""
    return sum(p.numel() for p in model.parameters())
