"""MMSegmentation's SegformerHead as a module, and the SegFormer model that carries it.

MMSegmentation (0.17+ and 1.x) does not use the all-MLP head of the paper/HF: each stage goes through a
ConvModule (1x1 conv without bias + BatchNorm + ReLU) at its own resolution, is resized to the stage-1
size, the four are concatenated in stage order (c1, c2, c3, c4), fused by another ConvModule and
classified by `conv_seg` (dropout 0.1 + 1x1 conv with bias). The ReLU after each projection makes that
head impossible to squeeze into HF's head, so such checkpoints get this module.

For decode-head folding and other graph work, `MMSegSegformer.decode_head` exposes:
    convs[i].conv (nn.Conv2d 1x1, no bias), convs[i].bn (nn.BatchNorm2d)   per stage i = 0..3
    fusion_conv.conv (nn.Conv2d 1x1, no bias), fusion_conv.bn (nn.BatchNorm2d)
    conv_seg (nn.Conv2d 1x1 with bias; also reachable as `.classifier`), dropout (inactive in eval)
Parameter names equal MMSegmentation's (`decode_head.convs.0.conv.weight`, ...), the encoder is
transformers' `SegformerModel` at `.segformer` (same names as in SegformerForSemanticSegmentation).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ConvBNReLU(nn.Module):
    """mmcv's ConvModule as SegformerHead builds it: 1x1 conv (no bias) -> BatchNorm -> ReLU."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)
        self.activate = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activate(self.bn(self.conv(x)))


class MMSegSegformerHead(nn.Module):
    """MMSegmentation's SegformerHead: per-stage ConvModule, resize to stage 1, concat, fuse, classify."""

    def __init__(
        self, in_channels: tuple[int, ...], channels: int, num_classes: int, dropout: float = 0.1
    ) -> None:
        super().__init__()
        self.convs = nn.ModuleList(ConvBNReLU(c, channels) for c in in_channels)
        self.fusion_conv = ConvBNReLU(channels * len(in_channels), channels)
        self.dropout = nn.Dropout2d(dropout)
        self.conv_seg = nn.Conv2d(channels, num_classes, kernel_size=1)

    @property
    def classifier(self) -> nn.Conv2d:
        """The final 1x1 classifier (mmseg's conv_seg)."""
        return self.conv_seg

    def forward(self, hidden_states: tuple[torch.Tensor, ...]) -> torch.Tensor:
        size = hidden_states[0].shape[2:]
        outs = [
            F.interpolate(conv(x), size=size, mode="bilinear", align_corners=False)
            for x, conv in zip(hidden_states, self.convs, strict=True)
        ]
        return self.conv_seg(self.dropout(self.fusion_conv(torch.cat(outs, dim=1))))


class MMSegSegformer(nn.Module):
    """transformers' SegformerModel encoder + MMSegSegformerHead: pixel_values -> logits (N,C,H/4,W/4)."""

    def __init__(self, config) -> None:
        super().__init__()
        from transformers import SegformerModel

        self.config = config
        self.segformer = SegformerModel(config)
        self.decode_head = MMSegSegformerHead(
            tuple(config.hidden_sizes),
            config.decoder_hidden_size,
            config.num_labels,
            config.classifier_dropout_prob,
        )

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        hidden = self.segformer(pixel_values, output_hidden_states=True, return_dict=True).hidden_states
        return self.decode_head(tuple(hidden))
