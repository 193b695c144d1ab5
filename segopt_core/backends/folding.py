"""Exact decode-head folding: merge the 1x1 fuse conv (and BatchNorm) into each stage's projection.

SegFormer's all-MLP head projects each encoder stage to D channels, upsamples all four maps to H/4,
concatenates them and applies a 1x1 fuse conv.  Bilinear upsampling and 1x1 convolutions are both
linear and commute, so `fuse(cat(up(P_i x_i)))` equals `sum_i up(F_i P_i x_i)`, where F_i is the fuse
conv's slice for stage i.  The merged C_i -> D conv runs at the stage's own (low) resolution, the
4D -> D fuse at H/4 disappears, and the eval-mode BatchNorm folds into the merged weights too.  The
bias is added once (upsampling preserves constants).  All tensors stay contiguous NCHW.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from segopt_core.backends.source import hf_segformer
from segopt_core.errors import SegoptError


class FoldingError(SegoptError, ValueError):
    """The model's decode head is not one segopt knows how to fold."""


class FoldedHead(nn.Module):
    """Per-stage merged convs at stage resolution, upsample + sum, ReLU, classifier."""

    def __init__(self, stages: list[nn.Module], classifier: nn.Conv2d):
        super().__init__()
        self.stages = nn.ModuleList(stages)  # HF: one 1x1 conv; mmseg: conv+BN(folded), ReLU, fuse slice
        self.classifier = classifier

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        size = features[0].shape[-2:]
        out = self.stages[0](features[0])  # stage 1 is already at H/4: no resize
        for stage, x in zip(self.stages[1:], features[1:], strict=True):
            out = out + F.interpolate(stage(x), size=size, mode="bilinear", align_corners=False)
        return self.classifier(F.relu(out))


class FoldedSegformer(nn.Module):
    """SegFormer encoder + folded head; same forward(pixel_values) -> logits as LogitsModel."""

    def __init__(self, encoder: nn.Module, head: FoldedHead):
        super().__init__()
        self.encoder = encoder
        self.head = head

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.head(encoder_features(self.encoder, pixel_values))


def encoder_features(encoder: nn.Module, pixel_values: torch.Tensor) -> list[torch.Tensor]:
    """Each stage's output of transformers' SegformerModel, computed stage by stage.

    The same tensors as `output_hidden_states=True`, without transformers' output-capturing hooks:
    those take a lock that torch.compile cannot trace, which splits the compiled graph into pieces.
    """
    features, hidden = [], pixel_values
    for stage in encoder.stages:
        hidden = stage(hidden)
        features.append(hidden)
    return features


def _bn_scale_shift(bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Eval-mode BatchNorm as y = scale * x + shift."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return scale, bn.bias - bn.running_mean * scale


def _conv1x1(weight: torch.Tensor, bias: torch.Tensor | None) -> nn.Conv2d:
    """A 1x1 Conv2d holding a (out, in) weight matrix."""
    conv = nn.Conv2d(weight.shape[1], weight.shape[0], kernel_size=1, bias=bias is not None)
    conv.weight.data.copy_(weight[:, :, None, None])
    if bias is not None:
        conv.bias.data.copy_(bias)
    return conv


@torch.no_grad()
def fold_hf_head(hf_model: nn.Module) -> FoldedSegformer:
    """Fold transformers' SegformerDecodeHead (its concat is in REVERSED stage order)."""
    head = hf_model.decode_head
    n = len(head.linear_projections)
    d = head.linear_fuse.out_channels
    fuse = head.linear_fuse.weight.double().reshape(d, n * d)
    scale, shift = _bn_scale_shift(head.batch_norm)
    scale, shift = scale.double(), shift.double()
    convs, bias_total = [], shift.clone()
    for i, proj in enumerate(p.proj for p in head.linear_projections):
        slice_ = fuse[:, (n - 1 - i) * d : (n - i) * d]  # cat(all_hidden_states[::-1])
        merged = scale[:, None] * (slice_ @ proj.weight.double())
        bias_total += scale * (slice_ @ proj.bias.double())
        convs.append(merged)
    stage_convs = [_conv1x1(w.float(), bias_total.float() if i == 0 else None) for i, w in enumerate(convs)]
    classifier = _conv1x1(head.classifier.weight[:, :, 0, 0], head.classifier.bias)
    return FoldedSegformer(hf_model.segformer, FoldedHead(stage_convs, classifier)).eval()


@torch.no_grad()
def fold_mmseg_head(mm_model: nn.Module) -> FoldedSegformer:
    """Fold MMSegmentation's SegformerHead: conv+BN+ReLU stay, the fuse slice moves before the upsample."""
    head = mm_model.decode_head
    n = len(head.convs)
    d = head.fusion_conv.conv.out_channels
    fuse = head.fusion_conv.conv.weight.double().reshape(d, n * d)
    scale, shift = _bn_scale_shift(head.fusion_conv.bn)
    stages = []
    for i, module in enumerate(head.convs):
        s_i, t_i = _bn_scale_shift(module.bn)
        proj = _conv1x1((s_i[:, None] * module.conv.weight[:, :, 0, 0]).float(), t_i.float())
        slice_ = scale.double()[:, None] * fuse[:, i * d : (i + 1) * d]  # mmseg concatenates in stage order
        stages.append(
            nn.Sequential(proj, nn.ReLU(), _conv1x1(slice_.float(), shift.float() if i == 0 else None))
        )
    classifier = _conv1x1(head.conv_seg.weight[:, :, 0, 0], head.conv_seg.bias)
    return FoldedSegformer(mm_model.segformer, FoldedHead(stages, classifier)).eval()


def fold_decode_head(model: nn.Module) -> nn.Module:
    """The same function as `model` with its decode head folded; the input model is not modified."""
    hf = hf_segformer(model)
    if hf is not None:
        return fold_hf_head(hf)
    from segopt_core.checkpoints.mmseg_head import MMSegSegformer

    inner = getattr(model, "model", model)
    if isinstance(inner, MMSegSegformer):
        return fold_mmseg_head(inner)
    raise FoldingError(
        f"cannot fold the decode head of {type(inner).__name__}: supported are transformers' "
        "SegformerDecodeHead and MMSegmentation's SegformerHead; build without --fold-decode-head"
    )


def head_macs(spec_hidden: tuple[int, ...], d: int, hw: tuple[int, int], folded: bool) -> int:
    """Multiply-accumulates of the decode head (projections + fuse) at input size hw, for docs/tests."""
    h4, w4 = hw[0] // 4, hw[1] // 4
    sizes = [(h4 // 2**i) * (w4 // 2**i) for i in range(len(spec_hidden))]
    if folded:
        return sum(c * d * s for c, s in zip(spec_hidden, sizes, strict=True))
    return (
        sum(c * d * s for c, s in zip(spec_hidden, sizes, strict=True)) + len(spec_hidden) * d * d * sizes[0]
    )
