#!/usr/bin/env python
"""Where SegFormer's time goes: torch.profiler time and FLOPs per op category, folded model, batch 1.

Eager fp32: every module of a category is wrapped in a `record_function` label (forward pre/post hooks),
so the profiler gives each category's time; FLOPs per category come from `torch.utils.flop_counter` in
the same hooks. Nested labels are made exclusive by subtraction (e.g. the attention's own matmuls and
softmax = attention - its linears - its sequence-reduction conv); flop_counter does not count CPU SDPA, so
QK^T and AV are counted from the shapes. torch.compile fp32 / bf16 (optional): hooks
would break the graph, so its time is grouped by kernel kind instead (GEMM, conv, fused inductor kernels).

    python benchmarks/profile_ops.py                          # B0 at 512x512, eager fp32
    python benchmarks/profile_ops.py --compiled fp32,bf16     # + torch.compile kernel breakdowns
    python benchmarks/profile_ops.py --cell b2-512-ade20k --iters 3 --markdown out.md
"""

from __future__ import annotations

import argparse
import contextlib
import re
import statistics
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
    ("attention softmax (inductor kernels)", ("_softmax",)),
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
        self.uncounted_flops = 0.0  # added from shapes (SDPA), not seen by the FlopCounterMode
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
                if label == "attention":
                    core = attention_core_flops(module, args[0])
                    self.flops[label] += core
                    self.uncounted_flops += core
            rf.__exit__(None, None, None)

        return hook


def attention_core_flops(module: nn.Module, hidden: torch.Tensor) -> float:
    """QK^T and AV of the reduced attention: 4 * B * N * M * C (flop_counter does not count CPU SDPA)."""
    batch, tokens, channels = hidden.shape
    ratio = getattr(module, "sequence_reduction_ratio", 1)
    return 4.0 * batch * tokens * (tokens / ratio**2) * channels


def exclusive(inclusive: dict[str, float], parents: dict[str, str | None]) -> dict[str, float]:
    """Per-category values with each parent's children subtracted (the rest renamed by REMAINDER)."""
    out = dict(inclusive)
    for label, parent in parents.items():
        if parent is not None and parent in out:
            out[parent] -= inclusive.get(label, 0.0)
    return {REMAINDER.get(k, k): v for k, v in out.items()}


def profiled_calls(call, iters: int, summarize) -> tuple[dict[str, float], float, float]:
    """Median over `iters` separately profiled calls of summarize(events, call_ms) -> {category: ms}.

    One profiler per call and medians, not one long profile and sums: on a shared machine a single
    descheduled call would otherwise dominate every category it touched.
    """
    per_call, call_ms, cpu_ms = [], [], []
    for _ in range(iters):
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            start, cpu_start = time.perf_counter(), time.process_time()
            call()
            call_ms.append((time.perf_counter() - start) * 1e3)
            cpu_ms.append((time.process_time() - cpu_start) * 1e3)
        per_call.append(summarize(prof.key_averages(), call_ms[-1]))
    keys = {k for d in per_call for k in d}
    medians = {k: statistics.median(d.get(k, 0.0) for d in per_call) for k in keys}
    return medians, statistics.median(call_ms), statistics.median(cpu_ms)


def profile_eager(
    model: nn.Module, x: torch.Tensor, iters: int, warmup: int
) -> tuple[dict, dict, float, float]:
    """(ms per category, GFLOP per category, wall ms, CPU ms per forward) of eager fp32, category labels."""
    from torch.utils.flop_counter import FlopCounterMode

    meter = CategoryMeter(model)
    with torch.inference_mode():
        with FlopCounterMode(display=False) as counter:
            meter.counter = counter
            model(x)
            total_flops = counter.get_total_flops() + meter.uncounted_flops
        meter.counter = None
        for _ in range(warmup):
            model(x)
        ms, forward_ms, cpu_ms = profiled_calls(
            lambda: model(x), iters, lambda ev, t: _categories(ev, t, meter)
        )
    gflop = {k: v / 1e9 for k, v in exclusive(dict(meter.flops), meter.parents).items()}
    gflop["other (residual adds, stage reshapes, profiler labels)"] = total_flops / 1e9 - sum(gflop.values())
    return ms, gflop, forward_ms, cpu_ms


def _categories(events, call_ms: float, meter: CategoryMeter) -> dict[str, float]:
    """Exclusive ms per category of one profiled eager call; the unlabelled rest is 'other'."""
    inclusive = {e.key: e.cpu_time_total / 1e3 for e in events if e.key in meter.parents}
    ms = exclusive(inclusive, meter.parents)
    ms["other (residual adds, stage reshapes, profiler labels)"] = call_ms - sum(ms.values())
    return ms


def _kernel_kinds(events, call_ms: float) -> dict[str, float]:
    """ms per kernel kind (KERNEL_KINDS) of one profiled compiled call; the rest is 'other'."""
    ms: dict[str, float] = defaultdict(float)
    for event in events:
        kind = next((k for k, pats in KERNEL_KINDS if any(p in event.key for p in pats)), None)
        if kind is not None:
            ms[kind] += event.self_cpu_time_total / 1e3
    ms["other (graph wrapper, layout copies, Python)"] = call_ms - sum(ms.values())
    return dict(ms)


def profile_compiled(
    model: nn.Module, x: torch.Tensor, iters: int, warmup: int, precision: str
) -> tuple[dict, float, float]:
    """(ms per kernel kind, wall ms, CPU ms per forward) of torch.compile (inductor, freezing), fp32|bf16."""
    import torch._inductor.config as inductor_config

    inductor_config.freezing = True
    inductor_config.cpp.enable_kernel_profile = True  # name the generated C++ kernels in the profile
    compiled = torch.compile(model, backend="inductor", dynamic=False)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16")
    with torch.inference_mode(), autocast:
        start = time.perf_counter()
        compiled(x)
        print(f"compile + first call: {time.perf_counter() - start:.1f} s", file=sys.stderr)
        for _ in range(warmup):
            compiled(x)
        return profiled_calls(lambda: compiled(x), iters, _kernel_kinds)


def markdown(title: str, ms: dict, forward_ms: float, cpu_ms: float, gflop: dict | None = None) -> str:
    """A Markdown table: category, ms, share, (GFLOP, GFLOP/s)."""
    head = "| category | ms | share |" + (" GFLOP | GFLOP/s |" if gflop else "")
    lines = [
        f"**{title}**: {forward_ms:.0f} ms per forward (median), process CPU time {cpu_ms:.0f} ms",
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
    from segopt_core.backends import attention
    from segopt_core.backends.folding import fold_decode_head
    from segopt_core.models import build_model
    from segopt_core.variants import get_cell, tiny_cell

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cell", default="b0-512-ade20k", help="Matrix cell, or 'tiny' (tests).")
    parser.add_argument("--iters", type=int, default=5, help="Profiled forwards.")
    parser.add_argument("--warmup", type=int, default=2, help="Un-profiled forwards first.")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads.")
    parser.add_argument(
        "--compiled", default="", help="Also torch.compile at these precisions, e.g. fp32,bf16 (slow)."
    )
    parser.add_argument("--markdown", type=Path, default=None, help="Write the tables here too.")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    spec = tiny_cell("ade20k", 64) if args.cell == "tiny" else get_cell(args.cell)
    model = fold_decode_head(build_model(spec, seed=0)).eval()
    x = torch.randn(1, 3, *spec.crop_size)
    ms, gflop, forward_ms, cpu_ms = profile_eager(model, x, args.iters, args.warmup)
    where = f"{spec.name}, batch 1, {torch.get_num_threads()} threads"
    text = markdown(f"eager fp32, folded ({where})", ms, forward_ms, cpu_ms, gflop)
    for precision in [p.strip() for p in args.compiled.split(",") if p.strip()]:
        torch._dynamo.reset()
        model = fold_decode_head(build_model(spec, seed=0)).eval()  # fresh: no hooks in the compiled graph
        model = attention.for_precision(model, precision, "cpu")  # what segopt ships at this precision
        kinds, compiled_ms, cpu_ms = profile_compiled(model, x, args.iters, args.warmup, precision)
        text += "\n" + markdown(f"torch.compile {precision}, folded ({where})", kinds, compiled_ms, cpu_ms)
    print(text)
    if args.markdown:
        args.markdown.write_text(text)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
