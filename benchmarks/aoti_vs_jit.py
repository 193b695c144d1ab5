#!/usr/bin/env python
"""Compiled artifacts: build time, load + first call in a fresh process, and the package vs the JIT path.

For one cell (default B0 at 512, random-init weights) and one torch-compile precision (bf16 where the CPU
has it natively, else fp32): builds the AOTInductor artifact, loads it in a fresh process and times the
load and a first call at a batch size the export never saw, then times the package and the old JIT path
(`torch.compile` with freezing, compiled in this process) in interleaved rounds at batch 1.
Prints one Markdown table with the machine it ran on.

    python benchmarks/aoti_vs_jit.py [--cell b0-512-ade20k] [--precision bf16|fp32] [--rounds 5] [--iters 10]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

FIRST_CALL = """
import json, sys, time
t0 = time.perf_counter()
import numpy as np, torch
from segopt_core.backends import load_predictor
t1 = time.perf_counter()
predictor = load_predictor(sys.argv[1])
t2 = time.perf_counter()
h, w = json.loads(sys.argv[2])
predictor(np.zeros((3, 3, h, w), np.float32))
t3 = time.perf_counter()
print(json.dumps({"imports_s": t1 - t0, "load_s": t2 - t1, "first_call_bs3_s": t3 - t2}))
"""


def parse_args() -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cell", default="b0-512-ade20k")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default=None)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--work-dir", default=None, help="artifact store (reused between runs)")
    return parser.parse_args()


def timed_rounds(calls: dict, rounds: int, iters: int) -> dict[str, float]:
    """Median ms per call of each callable, alternating the callables' order round by round."""
    samples: dict[str, list[float]] = {name: [] for name in calls}
    names = list(calls)
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            for _ in range(iters):
                start = time.perf_counter()
                calls[name]()
                samples[name].append((time.perf_counter() - start) * 1e3)
    return {name: statistics.median(values) for name, values in samples.items()}


def jit_path(folder: Path, meta: dict, options):
    """The pre-package path: torch.compile(freezing) of the model the package holds, autocast for bf16."""
    import torch
    import torch._inductor.config as inductor_config

    from segopt_core.backends import attention
    from segopt_core.backends.torch_backends import TorchVariantPredictor, prepare_model

    inductor_config.freezing = True
    model, _ = prepare_model(folder, meta, options)
    model = attention.for_precision(model, options.precision, options.device)  # as in the package
    compiled = torch.compile(model.eval(), backend="inductor", dynamic=False)
    autocast = torch.bfloat16 if options.precision == "bf16" else None
    return TorchVariantPredictor(compiled, "jit", options.precision, "cpu", autocast)


def main() -> None:
    """Build, time, print."""
    import numpy as np
    import torch

    from segopt_core.backends import ArtifactStore, VariantOptions, load_predictor
    from segopt_core.backends.options import cpu_supports_bf16
    from segopt_core.benchmark import machine_fingerprint
    from segopt_core.benchmark.fingerprint import ISA_FLAGS
    from segopt_core.models import build_model
    from segopt_core.variants import get_cell

    args = parse_args()
    torch.set_num_threads(torch.get_num_threads())
    precision = args.precision or ("bf16" if cpu_supports_bf16() else "fp32")
    spec = get_cell(args.cell)
    options = VariantOptions("torch-compile", precision, fold_decode_head=True)
    store = ArtifactStore(args.work_dir or tempfile.mkdtemp(prefix="segopt-aoti-"))
    artifact = store.get_or_build(build_model(spec, seed=0), options, spec=spec)
    package = artifact.metadata["packages"][0]
    fresh = subprocess.run(
        [sys.executable, "-c", FIRST_CALL, str(artifact.path), json.dumps(list(spec.crop_size))],
        check=True, capture_output=True, text=True, cwd=REPO,
    )  # fmt: skip
    first = json.loads(fresh.stdout.strip().splitlines()[-1])
    batch = np.random.default_rng(0).standard_normal((1, 3, *spec.crop_size), dtype=np.float32)
    packaged = load_predictor(artifact.path)
    start = time.perf_counter()
    jit = jit_path(artifact.path, artifact.metadata, options)
    jit(batch)
    jit_first = time.perf_counter() - start
    for predictor in (packaged, jit):
        for _ in range(3):
            predictor(batch)
    medians = timed_rounds(
        {"package": lambda: packaged(batch), "jit": lambda: jit(batch)}, args.rounds, args.iters
    )
    fp = machine_fingerprint()
    isa = ", ".join(flag for flag, column in ISA_FLAGS.items() if fp.get(column))
    cpu = f"{fp.get('cpu_model')}, {fp.get('cpu_affinity_cores')} cores"
    print(f"\n{cpu}, ISA: {isa}; torch {torch.__version__}")
    print(f"{args.cell} {options.slug}, batch 1, {args.rounds} rounds x {args.iters} calls, interleaved\n")
    print("| what | value |\n|---|---:|")
    print(f"| build (export + compile + verify) | {artifact.metadata['build_seconds']:.1f} s |")
    split = f"{package['export_seconds']:.1f} s / {package['compile_seconds']:.1f} s"
    print(f"| of which export / compile | {split} |")
    print(f"| fresh process: imports | {first['imports_s']:.1f} s |")
    print(f"| fresh process: load package | {first['load_s']:.2f} s |")
    print(f"| fresh process: first call, batch 3 (unseen) | {first['first_call_bs3_s']:.2f} s |")
    print(f"| JIT path: compile + first call (this process) | {jit_first:.1f} s |")
    print(f"| steady latency, package | {medians['package']:.1f} ms |")
    print(f"| steady latency, JIT torch.compile (same rounds) | {medians['jit']:.1f} ms |")


if __name__ == "__main__":
    main()
