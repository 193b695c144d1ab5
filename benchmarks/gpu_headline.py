#!/usr/bin/env python
"""segopt's GPU table: torch fp16, ONNX Runtime CUDA EP, TensorRT FP16/INT8 vs torch fp32, B0/B2 at 512.

Every variant is built by the artifact store (which verifies it against the fp32 model), timed with the
benchmark engine (`benchmark_predictor`: warm-up, CUDA synchronize, medians) at each batch size, and its
argmax agreement with torch fp32 on CUDA is measured on the same deterministic image-like batch. One
Markdown table is printed (and written with --out). `--dry-run` lists the plan without touching CUDA.

    python benchmarks/gpu_headline.py                      # B0 + B2, batch 1/4/8
    python benchmarks/gpu_headline.py --dry-run            # the plan only (works without a GPU)
    python benchmarks/gpu_headline.py --cells b0-512-ade20k --batch-sizes 1 --iters 20
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout: use this segopt, not another installed one

DEFAULT_CELLS = ("b0-512-ade20k", "b2-512-ade20k")
DEFAULT_BATCH_SIZES = (1, 4, 8)
BASELINE = "torch-fp32-cuda"
# (label, backend, precision, extra VariantOptions keywords). The baseline is torch fp32 eager on CUDA.
PLAN = (
    (BASELINE, "torch", "fp32", {"device": "cuda"}),
    ("torch-fp16-folded", "torch", "fp16", {"fold_decode_head": True}),
    ("onnxruntime-fp32-folded-cuda", "onnxruntime", "fp32", {"device": "cuda", "fold_decode_head": True}),
    ("onnxruntime-fp16-folded-cuda", "onnxruntime", "fp16", {"device": "cuda", "fold_decode_head": True}),
    ("tensorrt-fp16-folded", "tensorrt", "fp16", {"fold_decode_head": True}),
    ("tensorrt-int8-static-folded", "tensorrt", "int8-static", {"fold_decode_head": True}),
)


@dataclass
class Row:
    """One variant at one batch size on one cell (latencies in ms), or why it did not run."""

    cell: str
    variant: str
    batch_size: int
    status: str = "ok"
    median_ms: float | None = None
    p90_ms: float | None = None
    throughput_ips: float | None = None
    agreement: float | None = None
    build_s: float | None = None
    reason: str = ""


def variant_options():
    """(label, VariantOptions) of every planned variant (validated, no CUDA needed)."""
    from segopt_core.backends import VariantOptions

    return [(label, VariantOptions(backend, precision, **kw)) for label, backend, precision, kw in PLAN]


def plan_lines(cells, batch_sizes, variants: tuple[str, ...] = ()) -> list[str]:
    """Human-readable plan: what would be built and timed."""
    chosen = [(label, o) for label, o in variant_options() if _selected(label, variants)]
    lines = [f"cells: {', '.join(cells)}; batch sizes: {', '.join(map(str, batch_sizes))}"]
    for cell in cells:
        for label, options in chosen:
            lines.append(f"{cell}  {label:<30} {options.backend}/{options.precision} on {options.device}")
    return lines


def _selected(label: str, patterns: tuple[str, ...]) -> bool:
    """The baseline always runs; others when no pattern is given or one matches."""
    return label == BASELINE or not patterns or any(p in label for p in patterns)


def reference_batch(spec, batch_size: int):
    """Deterministic image-like (N,3,H,W) float32 input at the crop size."""
    from segopt_core.backends.verify import verification_inputs

    return verification_inputs((batch_size, 3, *spec.crop_size), seed=11)


def agreement(candidate, reference_logits, batch) -> float:
    """Argmax agreement of the candidate with the fp32 reference logits."""
    out = candidate(batch)
    return float((out.argmax(1) == reference_logits.argmax(1)).mean())


def run_cell(cell: str, args, store, deadline: float = float("inf")) -> list[Row]:
    """Build, verify, time and compare every planned variant on one cell (skipped past the deadline)."""
    from segopt_core.backends import BackendUnavailable, load_predictor
    from segopt_core.benchmark import benchmark_predictor, describe_error
    from segopt_core.models import build_model
    from segopt_core.variants import get_cell

    spec = get_cell(cell)
    model = build_model(spec, seed=0)
    calib = reference_batch(spec, 8)  # INT8 calibration: image-like inputs at the crop size
    check = reference_batch(spec, 2)
    rows, reference = [], None
    for label, options in variant_options():
        if not _selected(label, args.variants):
            continue
        if time.monotonic() > deadline:
            reason = f"time budget of {args.budget_s:.0f} s used up"
            rows += [Row(cell, label, b, "skipped", reason=reason) for b in args.batch_sizes]
            continue
        print(f"[{time.strftime('%H:%M:%S')}] {cell}: {label}", file=sys.stderr, flush=True)
        start = time.perf_counter()
        try:
            artifact = store.get_or_build(model, options, calib_images=calib, spec=spec)
            predictor = load_predictor(artifact)
        except BackendUnavailable as exc:
            rows += [Row(cell, label, b, "skipped", reason=str(exc)) for b in args.batch_sizes]
            continue
        except Exception as exc:  # a failed build is a row, the table goes on
            rows += [Row(cell, label, b, "failed", reason=describe_error(exc)) for b in args.batch_sizes]
            continue
        build_s = time.perf_counter() - start
        if reference is None:
            reference = predictor(check)  # the baseline (first in PLAN) is the fp32 reference
        agree = agreement(predictor, reference, check)
        for r in benchmark_predictor(predictor, spec, args.batch_sizes, warmup=args.warmup, iters=args.iters):
            rows.append(
                Row(cell, label, r["batch_size"], r["status"], r.get("latency_ms_median"),
                    r.get("latency_ms_p90"), r.get("throughput_ips"), agree, build_s, r.get("error", ""))
            )  # fmt: skip
    return rows


def render(rows: list[Row], fingerprint: dict) -> str:
    """One Markdown table: latency, throughput, speedup vs torch fp32 CUDA, agreement, build time."""
    base = {(r.cell, r.batch_size): r.median_ms for r in rows if r.variant == BASELINE and r.status == "ok"}
    fp = fingerprint
    lines = [
        f"GPU headline on {fp.get('gpu_name') or '?'} (driver {fp.get('gpu_driver') or '?'}, "
        f"CUDA {fingerprint.get('cuda_version') or '?'}, torch {fingerprint.get('torch_version')}, "
        f"onnxruntime {fingerprint.get('onnxruntime_version') or '-'}, "
        f"TensorRT {fingerprint.get('tensorrt_version') or '-'}), {fingerprint.get('date', '')}",
        "",
        "| cell | variant | batch | median ms | p90 ms | img/s | × torch fp32 | agreement | build+load s |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    problems = []
    for r in rows:
        if r.status != "ok":
            problems.append(f"- {r.cell} `{r.variant}` batch {r.batch_size}: {r.status}: {r.reason}")
            continue
        ref = base.get((r.cell, r.batch_size))
        speedup = f"{ref / r.median_ms:.2f}×" if ref and r.median_ms else "—"
        lines.append(
            f"| {r.cell} | `{r.variant}` | {r.batch_size} | {r.median_ms:.2f} | {r.p90_ms:.2f} "
            f"| {r.throughput_ips:.1f} | {speedup} | {r.agreement:.4f} | {r.build_s:.0f} |"
        )
    return "\n".join(lines + ([""] + problems if problems else [])) + "\n"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", default=",".join(DEFAULT_CELLS), help="Comma-separated matrix cells.")
    parser.add_argument("--batch-sizes", default=",".join(map(str, DEFAULT_BATCH_SIZES)))
    parser.add_argument("--variants", default="", help="Only variants whose name contains one of these.")
    parser.add_argument("--warmup", type=int, default=10, help="Warm-up calls per batch size.")
    parser.add_argument("--iters", type=int, default=50, help="Timed calls per batch size.")
    parser.add_argument("--work-dir", type=Path, default=Path("gpu-headline"), help="Artifact store root.")
    parser.add_argument("--out", type=Path, default=None, help="Also write the table here.")
    parser.add_argument("--dry-run", action="store_true", help="Print the plan and exit (no CUDA needed).")
    parser.add_argument(
        "--budget-s", type=float, default=float("inf"), help="Skip variants not started within this many s."
    )
    args = parser.parse_args(argv)
    args.cells = tuple(c.strip() for c in args.cells.split(",") if c.strip())
    args.batch_sizes = tuple(int(b) for b in args.batch_sizes.split(",") if b.strip())
    args.variants = tuple(v.strip() for v in args.variants.split(",") if v.strip())
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the GPU headline (or print its plan); exit 2 when CUDA is missing."""
    args = parse_args(argv)
    if args.dry_run:
        print("\n".join(plan_lines(args.cells, args.batch_sizes, args.variants)))
        return 0
    import torch

    if not torch.cuda.is_available():
        print("error: no CUDA device (torch.cuda.is_available() is False); use --dry-run", file=sys.stderr)
        return 2
    from segopt_core.backends import ArtifactStore
    from segopt_core.benchmark import device_lock, machine_fingerprint

    store = ArtifactStore(args.work_dir / "artifacts")
    deadline = time.monotonic() + args.budget_s
    with device_lock("cuda"):
        rows = [row for cell in args.cells for row in run_cell(cell, args, store, deadline)]
    text = render(rows, machine_fingerprint())
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
