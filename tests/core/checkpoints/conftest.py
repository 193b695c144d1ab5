"""Independent reference forwards of the original NVlabs and MMSegmentation SegFormers, written from their
source code (not from segopt's converters), plus small builders for checkpoint files."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from segopt_core.checkpoints.loading import build_empty_model
from segopt_core.variants import CellSpec


def _tokens(x: torch.Tensor) -> torch.Tensor:
    return x.flatten(2).transpose(1, 2)


def _mix_ffn_linear(sd, b, t, hw):
    """NVlabs Mlp: fc1 (Linear) -> DWConv 3x3 -> GELU -> fc2 (Linear)."""
    m = F.linear(t, sd[b + "mlp.fc1.weight"], sd[b + "mlp.fc1.bias"])
    n, _, hid = m.shape
    m = m.transpose(1, 2).reshape(n, hid, *hw)
    m = F.conv2d(
        m, sd[b + "mlp.dwconv.dwconv.weight"], sd[b + "mlp.dwconv.dwconv.bias"], padding=1, groups=hid
    )
    return F.linear(F.gelu(_tokens(m)), sd[b + "mlp.fc2.weight"], sd[b + "mlp.fc2.bias"])


def _nvlabs_attention(sd, b, t, hw, heads):
    """NVlabs Attention: q Linear, optional sr conv + LayerNorm(eps 1e-5), packed kv Linear, proj."""
    n, tokens, c = t.shape
    q = (
        F.linear(t, sd[b + "attn.q.weight"], sd[b + "attn.q.bias"])
        .reshape(n, tokens, heads, c // heads)
        .permute(0, 2, 1, 3)
    )
    kv_in = t
    if b + "attn.sr.weight" in sd:
        sr = sd[b + "attn.sr.weight"].shape[2]
        x = F.conv2d(
            t.transpose(1, 2).reshape(n, c, *hw), sd[b + "attn.sr.weight"], sd[b + "attn.sr.bias"], stride=sr
        )
        kv_in = F.layer_norm(_tokens(x), (c,), sd[b + "attn.norm.weight"], sd[b + "attn.norm.bias"], 1e-5)
    kv = F.linear(kv_in, sd[b + "attn.kv.weight"], sd[b + "attn.kv.bias"])
    kv = kv.reshape(n, -1, 2, heads, c // heads).permute(2, 0, 3, 1, 4)
    attn = ((q @ kv[0].transpose(-2, -1)) * (c // heads) ** -0.5).softmax(dim=-1)
    out = (attn @ kv[1]).transpose(1, 2).reshape(n, tokens, c)
    return F.linear(out, sd[b + "attn.proj.weight"], sd[b + "attn.proj.bias"])


def nvlabs_forward(sd: dict[str, torch.Tensor], x: torch.Tensor, heads: tuple[int, ...]) -> torch.Tensor:
    """The NVlabs MixVisionTransformer + SegFormerHead forward on an NVlabs-named state dict."""
    feats = []
    for s in range(1, 5):
        p = f"backbone.patch_embed{s}."
        w = sd[p + "proj.weight"]
        x = F.conv2d(x, w, sd[p + "proj.bias"], stride=4 if s == 1 else 2, padding=w.shape[2] // 2)
        n, c, h, wd = x.shape
        t = F.layer_norm(_tokens(x), (c,), sd[p + "norm.weight"], sd[p + "norm.bias"], 1e-5)
        j = 0
        while f"backbone.block{s}.{j}.norm1.weight" in sd:
            b = f"backbone.block{s}.{j}."
            t = t + _nvlabs_attention(
                sd,
                b,
                F.layer_norm(t, (c,), sd[b + "norm1.weight"], sd[b + "norm1.bias"], 1e-6),
                (h, wd),
                heads[s - 1],
            )
            t = t + _mix_ffn_linear(
                sd, b, F.layer_norm(t, (c,), sd[b + "norm2.weight"], sd[b + "norm2.bias"], 1e-6), (h, wd)
            )
            j += 1
        t = F.layer_norm(t, (c,), sd[f"backbone.norm{s}.weight"], sd[f"backbone.norm{s}.bias"], 1e-6)
        x = t.reshape(n, h, wd, c).permute(0, 3, 1, 2)
        feats.append(x)
    size = feats[0].shape[2:]
    outs = []
    for s in (4, 3, 2, 1):  # _c4, _c3, _c2, _c1
        f = feats[s - 1]
        e = F.linear(
            _tokens(f), sd[f"decode_head.linear_c{s}.proj.weight"], sd[f"decode_head.linear_c{s}.proj.bias"]
        )
        e = e.permute(0, 2, 1).reshape(f.shape[0], -1, *f.shape[2:])
        outs.append(F.interpolate(e, size=size, mode="bilinear", align_corners=False))
    fused = F.conv2d(torch.cat(outs, dim=1), sd["decode_head.linear_fuse.conv.weight"])
    fused = F.relu(_bn(sd, "decode_head.linear_fuse.bn.", fused))
    return F.conv2d(fused, sd["decode_head.linear_pred.weight"], sd["decode_head.linear_pred.bias"])


def _bn(sd, p, x):
    return F.batch_norm(
        x, sd[p + "running_mean"], sd[p + "running_var"], sd[p + "weight"], sd[p + "bias"], False, 0.0, 1e-5
    )


def mmseg1_forward(sd: dict[str, torch.Tensor], x: torch.Tensor, heads: tuple[int, ...]) -> torch.Tensor:
    """MMSegmentation's MiT + SegformerHead forward (a real nn.MultiheadAttention) on mmseg names."""
    feats = []
    for i in range(4):
        p = f"backbone.layers.{i}."
        w = sd[p + "0.projection.weight"]
        x = F.conv2d(x, w, sd[p + "0.projection.bias"], stride=4 if i == 0 else 2, padding=w.shape[2] // 2)
        n, c, h, wd = x.shape
        t = F.layer_norm(_tokens(x), (c,), sd[p + "0.norm.weight"], sd[p + "0.norm.bias"], 1e-6)
        j = 0
        while f"{p}1.{j}.norm1.weight" in sd:
            b = f"{p}1.{j}."
            t = t + _mmseg_attention(
                sd,
                b,
                F.layer_norm(t, (c,), sd[b + "norm1.weight"], sd[b + "norm1.bias"], 1e-6),
                (h, wd),
                heads[i],
            )
            t = t + _mmseg_ffn(
                sd, b, F.layer_norm(t, (c,), sd[b + "norm2.weight"], sd[b + "norm2.bias"], 1e-6), (h, wd)
            )
            j += 1
        t = F.layer_norm(t, (c,), sd[p + "2.weight"], sd[p + "2.bias"], 1e-6)
        x = t.reshape(n, h, wd, c).permute(0, 3, 1, 2)
        feats.append(x)
    outs = []
    for i, f in enumerate(feats):
        y = F.relu(
            _bn(sd, f"decode_head.convs.{i}.bn.", F.conv2d(f, sd[f"decode_head.convs.{i}.conv.weight"]))
        )
        outs.append(F.interpolate(y, size=feats[0].shape[2:], mode="bilinear", align_corners=False))
    fused = F.conv2d(torch.cat(outs, dim=1), sd["decode_head.fusion_conv.conv.weight"])
    fused = F.relu(_bn(sd, "decode_head.fusion_conv.bn.", fused))
    return F.conv2d(fused, sd["decode_head.conv_seg.weight"], sd["decode_head.conv_seg.bias"])


def _mmseg_attention(sd, b, t, hw, heads):
    n, _, c = t.shape
    kv_in = t
    if b + "attn.sr.weight" in sd:
        sr = sd[b + "attn.sr.weight"].shape[2]
        y = F.conv2d(
            t.transpose(1, 2).reshape(n, c, *hw), sd[b + "attn.sr.weight"], sd[b + "attn.sr.bias"], stride=sr
        )
        kv_in = F.layer_norm(_tokens(y), (c,), sd[b + "attn.norm.weight"], sd[b + "attn.norm.bias"], 1e-6)
    mha = nn.MultiheadAttention(c, heads, batch_first=True)
    mha.load_state_dict(
        {k.removeprefix(b + "attn.attn."): v for k, v in sd.items() if k.startswith(b + "attn.attn.")}
    )
    return mha.eval()(t, kv_in, kv_in, need_weights=False)[0]


def _mmseg_ffn(sd, b, t, hw):
    n, _, c = t.shape
    y = t.transpose(1, 2).reshape(n, c, *hw)
    y = F.conv2d(y, sd[b + "ffn.layers.0.weight"], sd[b + "ffn.layers.0.bias"])
    y = F.conv2d(y, sd[b + "ffn.layers.1.weight"], sd[b + "ffn.layers.1.bias"], padding=1, groups=y.shape[1])
    y = F.conv2d(F.gelu(y), sd[b + "ffn.layers.4.weight"], sd[b + "ffn.layers.4.bias"])
    return _tokens(y)


@pytest.fixture(scope="session")
def reference_forwards():
    """(nvlabs_forward, mmseg1_forward) reference implementations."""
    return nvlabs_forward, mmseg1_forward


def zeros_state(spec: CellSpec, head: str = "hf") -> dict[str, torch.Tensor]:
    """A canonical-named state dict of the right shapes, all zeros (cheap stand-in for big real weights)."""
    with torch.device("meta"):
        model = build_empty_model(spec, head)
    return {k: torch.zeros(v.shape, dtype=v.dtype) for k, v in model.state_dict().items()}


@pytest.fixture(scope="session")
def make_zeros_state():
    """The zeros_state builder."""
    return zeros_state
