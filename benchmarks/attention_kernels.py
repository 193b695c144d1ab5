#!/usr/bin/env python
"""SegFormer's attention core: PyTorch's SDPA against segopt's matmul attention, fp32 and bf16.

Times q·kᵀ → softmax → ·v alone at one cell's shapes (default B0 at 512: per stage 16384/4096/1024/256
queries against 256 reduced keys, 1/2/5/8 heads of dim 32), eager and torch.compile, and prints the total
for all of the encoder's attentions (each stage's time × its depth) with the machine it ran on.

    python benchmarks/attention_kernels.py [--cell b0-512-ade20k] [--iters 20]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def stage_shapes(spec) -> list[tuple[int, int, int, int, int]]:
    """(queries, keys, heads, head_dim, depth) per encoder stage of `spec` at its crop size."""
    enc, (h, w) = spec.encoder, spec.crop_size
    shapes = []
    for stride, width, heads, sr, depth in zip(
        enc.strides, enc.hidden_sizes, enc.num_heads, enc.sr_ratios, enc.depths, strict=True
    ):
        h, w = -(-h // stride), -(-w // stride)
        keys = -(-h // sr) * -(-w // sr)
        shapes.append((h * w, keys, heads, width // heads, depth))
    return shapes


def ms_per_call(fn, args, iters: int) -> float:
    """Mean ms over `iters` calls after 3 warm-up calls (short kernels: run on a quiet machine)."""
    import torch

    with torch.inference_mode():
        for _ in range(3):
            fn(*args)
        start = time.perf_counter()
        for _ in range(iters):
            fn(*args)
    return (time.perf_counter() - start) / iters * 1e3


def main() -> None:
    """Time both implementations at both precisions, eager and compiled; print one table."""
    import torch
    import torch.nn.functional as F

    from segopt_core.backends import attention
    from segopt_core.benchmark import machine_fingerprint
    from segopt_core.benchmark.fingerprint import ISA_FLAGS
    from segopt_core.variants import get_cell

    raw = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=raw)
    parser.add_argument("--cell", default="b0-512-ade20k")
    parser.add_argument("--iters", type=int, default=20)
    args = parser.parse_args()
    spec = get_cell(args.cell)
    implementations = {
        "SDPA": lambda q, k, v: F.scaled_dot_product_attention(q, k, v),
        "segopt matmul": lambda q, k, v: attention.matmul_attention(None, q, k, v, None)[0],
    }
    fp = machine_fingerprint()
    isa = ", ".join(flag for flag, column in ISA_FLAGS.items() if fp.get(column))
    print(f"{fp.get('cpu_model')}, {torch.get_num_threads()} threads, ISA: {isa}; torch {torch.__version__}")
    print(f"{args.cell}: all encoder attentions (QKᵀ, softmax, AV), ms per image, {args.iters} calls each\n")
    print("| implementation | dtype | eager ms | torch.compile ms |\n|---|---|---:|---:|")
    for name, fn in implementations.items():
        for dtype in (torch.float32, torch.bfloat16):
            compiled = torch.compile(fn, dynamic=False)
            totals = [0.0, 0.0]
            for queries, keys, heads, dim, depth in stage_shapes(spec):
                q, k, v = (torch.randn(1, heads, n, dim, dtype=dtype) for n in (queries, keys, keys))
                totals[0] += depth * ms_per_call(fn, (q, k, v), args.iters)
                totals[1] += depth * ms_per_call(compiled, (q, k, v), args.iters)
            print(f"| {name} | {str(dtype).removeprefix('torch.')} | {totals[0]:.1f} | {totals[1]:.1f} |")


if __name__ == "__main__":
    main()
