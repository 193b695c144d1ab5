#!/usr/bin/env python
"""Where SegFormer's time goes: torch.profiler time and FLOPs per op category, folded model, batch 1.

Eager fp32: every module of a category is wrapped in a `record_function` label (forward pre/post hooks),
so the profiler gives each category's time; FLOPs per category come from `torch.utils.flop_counter` in
the same hooks. Nested labels are made exclusive by subtraction (e.g. the attention's own matmuls and
softmax = attention - its linears - its sequence-reduction conv). torch.compile bf16 (optional): hooks
would break the graph, so its time is grouped by kernel kind instead (GEMM, conv, fused inductor kernels).

    python benchmarks/profile_ops.py                          # B0 at 512x512, eager fp32
    python benchmarks/profile_ops.py --compiled-bf16          # + torch.compile bf16 kernel breakdown
    python benchmarks/profile_ops.py --cell b2-512-ade20k --iters 3 --markdown out.md
"""

from __future__ import annotations

import argparse
import contextlib
import re
import sys
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402
from torch import nn  # noqa: E402

# (label, parent label or None, regex on the module's qualified name). First match wins; a module inside
# another category's module is labelled too and subtracted from its parent (see `exclusive`).
CATEGORIES = (
    ("patch embeddings (overlapping conv + LN)", None, r"patch_embeddings$"),
    ("attention: q/k/v/o linears", "attention", r"attention\.[qkvo]_proj$"),
    ("attention: spatial reduction (conv + LN)", "attention", r"attention\.sequence_reduction$"),
    ("attention", None, r"\.attention$"),
    ("LayerNorm (blocks + stage ends)", None, r"(layernorm_before|layernorm_after|stages\.\d+\.layer_norm)$"),
    ("Mix-FFN linears (fc1, fc2)", "mix-ffn", r"mlp\.fc[12]$"),
    ("Mix-FFN depthwise 3x3", "mix-ffn", r"mlp\.dwconv$"),
    ("Mix-FFN GELU", "mix-ffn", r"mlp\.activation_fn$"),
    ("mix-ffn", None, r"\.mlp$"),
    ("head: per-stage projections (folded 1x1)", "head", r"^head\.stages\.\d+$"),
    ("head: classifier (1x1)", "head", r"^head\.classifier$"),
    ("head", None, r"^head$"),
)
REMAINDER = {
    "attention": "attention: QK^T, softmax, AV (SDPA) + reshapes",
    "mix-ffn": "Mix-FFN reshapes",
    "head": "head: bilinear upsampling + sum + ReLU",
}
# torch.compile: kernel kinds by profiler event name (first match wins).
KERNEL_KINDS = (
    ("GEMM (linear / 1x1)", ("linear", "addmm", "::mm", "matmul", "_weight_int8", "onednn.qlinear")),
    ("convolution (patch embed, SR, depthwise, head)", ("convolution", "conv2d", "qconv")),
    ("attention (SDPA / bmm)", ("scaled_dot_product", "flash_attention", "bmm", "baddbmm")),
    ("upsampling", ("upsample",)),
    ("inductor fused kernels (LN, GELU, softmax, adds, layout)", ("cpp_fused", "kernel_cpp")),
)


def category_of(name: str) -> tuple[str, str | None] | None:
    """(label, parent) of a module's qualified name, or None when it is not a category of its own."""
    for label, parent, pattern in CATEGORIES:
        if name and re.search(pattern, name):
            return label, parent
    return None


class CategoryMeter:
    """Forward hooks that label each category's modules for the profiler and count their FLOPs."""

    def __init__(self, model: nn.Module):
        self.flops: dict[str, float] = defaultdict(float)
        self.counter = None  # a FlopCounterMode while counting
        self._open: dict[int, list] = defaultdict(list)
        self.parents: dict[str, str | None] = {}
        for name, module in model.named_modules():
            found = category_of(name)
            if found is not None:
                self.parents[found[0]] = found[1]
                module.register_forward_pre_hook(self._enter(found[0]))
                module.register_forward_hook(self._exit(found[0]))

    def _enter(self, label: str):
        def hook(module, args):
            rf = torch.profiler.record_function(label)
            rf.__enter__()
            start = self.counter.get_total_flops() if self.counter else 0
            self._open[id(module)].append((rf, start))

        return hook

    def _exit(self, label: str):
        def hook(module, args, output):
            rf, start = self._open[id(module)].pop()
            if self.counter:
                self.flops[label] += self.counter.get_total_flops() - start
            rf.__exit__(None, None, None)

        return hook


def exclusive(inclusive: dict[str, float], parents: dict[str, str | None]) -> dict[str, float]:
    """Per-category values with each parent's children subtracted (the rest renamed by REMAINDER)."""
    out = dict(inclusive)
    for label, parent in parents.items():
        if parent is not None and parent in out:
            out[parent] -= inclusive.get(label, 0.0)
    return {REMAINDER.get(k, k): v for k, v in out.items()}


def profile_eager(model: nn.Module, x: torch.Tensor, iters: int, warmup: int) -> tuple[dict, dict, float]:
    """(ms per category, GFLOP per category, ms per forward) of eager fp32 with category labels."""
    from torch.utils.flop_counter import FlopCounterMode

    meter = CategoryMeter(model)
    with torch.inference_mode():
        with FlopCounterMode(display=False) as counter:
            meter.counter = counter
            model(x)
            total_flops = counter.get_total_flops()
        meter.counter = None
        for _ in range(warmup):
            model(x)
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            start = time.perf_counter()
            for _ in range(iters):
                model(x)
            forward_ms = (time.perf_counter() - start) * 1e3 / iters
    labels = set(meter.parents)
    inclusive = {e.key: e.cpu_time_total / 1e3 / iters for e in prof.key_averages() if e.key in labels}
    ms = exclusive(inclusive, meter.parents)
    ms["other (residual adds, stage reshapes, profiler labels)"] = forward_ms - sum(ms.values())
    gflop = {k: v / 1e9 for k, v in exclusive(dict(meter.flops), meter.parents).items()}
    gflop["other (residual adds, stage reshapes, profiler labels)"] = total_flops / 1e9 - sum(gflop.values())
    return ms, gflop, forward_ms


def profile_compiled_bf16(model: nn.Module, x: torch.Tensor, iters: int, warmup: int) -> tuple[dict, float]:
    """(ms per kernel kind, ms per forward) of torch.compile (inductor, freezing) under bf16 autocast."""
    import torch._inductor.config as inductor_config

    inductor_config.freezing = True
    inductor_config.cpp.enable_kernel_profile = True  # name the generated C++ kernels in the profile
    compiled = torch.compile(model, backend="inductor", dynamic=False)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16)
    with torch.inference_mode(), autocast:
        start = time.perf_counter()
        compiled(x)
        print(f"compile + first call: {time.perf_counter() - start:.1f} s", file=sys.stderr)
        for _ in range(warmup):
            compiled(x)
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            start = time.perf_counter()
            for _ in range(iters):
                compiled(x)
            forward_ms = (time.perf_counter() - start) * 1e3 / iters
    ms: dict[str, float] = defaultdict(float)
    for event in prof.key_averages():
        kind = next((k for k, pats in KERNEL_KINDS if any(p in event.key for p in pats)), None)
        if kind is not None:
            ms[kind] += event.self_cpu_time_total / 1e3 / iters
    ms["other (graph wrapper, layout copies, Python)"] = forward_ms - sum(ms.values())
    return dict(ms), forward_ms


def markdown(title: str, ms: dict, forward_ms: float, gflop: dict | None = None) -> str:
    """A Markdown table: category, ms, share, (GFLOP, GFLOP/s)."""
    head = "| category | ms | share |" + (" GFLOP | GFLOP/s |" if gflop else "")
    lines = [
        f"**{title}** ({forward_ms:.0f} ms per forward)",
        "",
        head,
        "|---|---:|---:|" + ("---:|---:|" if gflop else ""),
    ]
    for label, value in sorted(ms.items(), key=lambda kv: -kv[1]):
        row = f"| {label} | {value:.1f} | {100 * value / forward_ms:.0f} % |"
        if gflop:
            g = gflop.get(label, 0.0)
            rate = f"{g / (value / 1e3):.0f}" if value > 0.05 and g > 0.0005 else "—"
            row += f" {g:.3f} | {rate} |"
        lines.append(row)
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    """Profile one cell at batch 1 and print (or write) the Markdown tables."""
    from segopt_core.backends.folding import fold_decode_head
    from segopt_core.models import build_model
    from segopt_core.variants import get_cell, tiny_cell

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cell", default="b0-512-ade20k", help="Matrix cell, or 'tiny' (tests).")
    parser.add_argument("--iters", type=int, default=5, help="Profiled forwards.")
    parser.add_argument("--warmup", type=int, default=2, help="Un-profiled forwards first.")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads.")
    parser.add_argument(
        "--compiled-bf16", action="store_true", help="Also torch.compile bf16 (slow compile)."
    )
    parser.add_argument("--markdown", type=Path, default=None, help="Write the tables here too.")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    spec = tiny_cell("ade20k", 64) if args.cell == "tiny" else get_cell(args.cell)
    model = fold_decode_head(build_model(spec, seed=0)).eval()
    x = torch.randn(1, 3, *spec.crop_size)
    ms, gflop, forward_ms = profile_eager(model, x, args.iters, args.warmup)
    where = f"{spec.name}, batch 1, {torch.get_num_threads()} threads"
    text = markdown(f"eager fp32, folded ({where})", ms, forward_ms, gflop)
    if args.compiled_bf16:
        model = fold_decode_head(build_model(spec, seed=0)).eval()  # fresh: no hooks in the compiled graph
        kinds, compiled_ms = profile_compiled_bf16(model, x, args.iters, args.warmup)
        text += "\n" + markdown(f"torch.compile bf16, folded ({where})", kinds, compiled_ms)
    print(text)
    if args.markdown:
        args.markdown.write_text(text)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
