#!/usr/bin/env python
"""Does the product measure what the headline measures? One variant timed both ways, alternating.

    python benchmarks/product_vs_headline.py [--cell b0-512-ade20k] [--variant torch-fp32-folded]
        [--checkpoint CKPT] [--rounds 3] [--warmup 3] [--iters 20] [--tolerance 0.10]

The product way is what `segopt optimize-all` runs for a variant: the flows' `benchmark_record_isolated`,
called from a worker thread (Prefect runs tasks in threads) of a process that built the artifact in that
thread: the variant's own loops at `--batch-sizes` (1,4,8), then the same-round pair with the checkpoint's
torch fp32 model at batch 1 (`--warmup` calls each, `--iters` calls spread over 5 rounds). The headline
way is `benchmarks/headline.py`'s `measure_candidate` with as many calls (5 rounds of iters/5, the same
warm-up) against its random-init baseline of the cell. Both hand the measurement to segopt's measuring
process. The two ways alternate `--rounds` times (order swapped each time) so drift hits both; the script
prints each way's median torch fp32 eager and variant latencies and their product / headline ratios, and
exits 1 when a ratio is off by more than `--tolerance`: a gap is back.

Without `--checkpoint` it writes a random-init checkpoint of the cell (seed 0: the headline's own weights),
so the ratios show the setup alone. With a real checkpoint, a third measurement (the headline way with the
checkpoint's weights as baseline) shows what the weights' values do (denormals in peaked attention, say).
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from tempfile import gettempdir

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout: use this segopt, not another installed one
sys.path.insert(0, str(REPO / "benchmarks"))  # headline.py, imported as a module


@dataclass
class Way:
    """The medians (ms) one way measured in each of its rounds: torch fp32 eager and the variant."""

    name: str
    reference_ms: list[float] = field(default_factory=list)
    variant_ms: list[float] = field(default_factory=list)

    def add(self, reference_ms: float | None, variant_ms: float | None) -> None:
        """One round's medians (a round that measured nothing is left out)."""
        if reference_ms and variant_ms:
            self.reference_ms.append(reference_ms)
            self.variant_ms.append(variant_ms)

    def median(self, which: str) -> float:
        """Median over the rounds of 'reference' or 'variant'."""
        return float(np.median(getattr(self, f"{which}_ms")))


def verdict(product: Way, headline: Way, tolerance: float) -> tuple[list[str], bool]:
    """The report lines and whether the two ways agree within `tolerance` (both ratios)."""
    lines, agree = [], True
    for which, label in (("reference", "torch fp32 eager"), ("variant", "variant")):
        ratio = product.median(which) / headline.median(which)
        agree &= abs(ratio - 1) <= tolerance
        lines.append(f"{label:<17} product {product.median(which):9.1f} ms   headline "
                     f"{headline.median(which):9.1f} ms   product/headline {ratio:.3f}")  # fmt: skip
    speedups = [w.median("reference") / w.median("variant") for w in (product, headline)]
    lines.append(f"{'speedup':<17} product {speedups[0]:9.2f}×    headline {speedups[1]:9.2f}×")
    word = "agree" if agree else "DIFFER"
    lines.append(
        f"verdict: the two ways {word} within {tolerance:.0%} ({len(product.reference_ms)} rounds each)"
    )
    return lines, agree


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cell", default="b0-512-ade20k", help="Matrix cell (without --checkpoint).")
    parser.add_argument("--variant", default="torch-fp32-folded", help="Variant slug to time both ways.")
    parser.add_argument("--checkpoint", type=Path, default=None, help="A real checkpoint (its cell is used).")
    parser.add_argument("--rounds", type=int, default=3, help="Times each way runs, alternating.")
    parser.add_argument("--warmup", type=int, default=3, help="Warm-up calls (optimize-all's default).")
    parser.add_argument("--iters", type=int, default=20, help="Timed calls (optimize-all's default).")
    parser.add_argument(
        "--batch-sizes",
        type=lambda text: [int(b) for b in text.split(",")],
        default=[1, 4, 8],
        help="The product way's batch sizes (optimize-all's default; the pair runs at batch 1).",
    )
    parser.add_argument("--tolerance", type=float, default=0.10, help="Largest product/headline gap.")
    parser.add_argument("--work-dir", type=Path, default=Path(gettempdir()) / "segopt-product-vs-headline")
    return parser.parse_args(argv)


def log(message: str) -> None:
    """A timestamped progress line on stderr."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def checkpoint_of(args: argparse.Namespace):
    """The LoadedCheckpoint measured: --checkpoint, else a random-init one of --cell written once."""
    from segopt_core.checkpoints import load_checkpoint, write_checkpoint
    from segopt_core.models import build_model
    from segopt_core.variants import get_cell

    if args.checkpoint is not None:
        return load_checkpoint(args.checkpoint)
    path = args.work_dir / f"{args.cell}-seed0.safetensors"
    if not path.is_file():
        spec = get_cell(args.cell)
        write_checkpoint(build_model(spec, seed=0), spec, path, "safetensors")
    return load_checkpoint(path, args.cell)


def product_way(checkpoint, artifact: Path, options, args: argparse.Namespace) -> tuple[float, float]:
    """(reference, variant) medians of the pair `segopt optimize-all` measures at batch 1 (after the
    variant's own loops at every batch size, as optimize-all runs them)."""
    from segopt_core.pipeline.jobs import CheckpointRef
    from segopt_core.pipeline.record import VariantRecord
    from segopt_core.pipeline.stages import benchmark_record_isolated

    ref = CheckpointRef(str(checkpoint.path), checkpoint.spec, checkpoint.sha256, checkpoint.format)
    record = VariantRecord.start(ref, options, "product-vs-headline", status="ok", artifact=str(artifact))
    rows = benchmark_record_isolated(
        record, checkpoint.spec, args.batch_sizes, args.warmup, args.iters
    ).bench_rows
    row = rows[0]  # the smallest batch size: where the pair runs
    if row["status"] != "ok" or row["batch_size"] != 1:
        raise SystemExit(f"error: the product way failed: {row['error']}")
    return row["reference_latency_ms"], row["paired_latency_ms"]


def headline_way(checkpoint, artifact: Path, options, args: argparse.Namespace, own_weights: bool = False):
    """(reference, variant) medians of the headline's measurement at batch 1 with the same calls; with
    `own_weights`, against the checkpoint's weights instead of the random-init baseline."""
    import headline

    from segopt_core.benchmark import Candidate
    from segopt_core.benchmark.isolated import ReferenceSource, measure_isolated
    from segopt_core.benchmark.paired import REFERENCE, VARIANT

    spec = checkpoint.spec
    settings = headline.Settings((spec.name,), (1,), 5, max(1, -(-args.iters // 5)), args.warmup)
    candidate = Candidate(options.slug, str(artifact), options.precision, options.device)
    if own_weights:
        reference = ReferenceSource(spec, str(checkpoint.path))
        measured = measure_isolated(candidate, spec, headline.measuring_config(settings), reference)
    else:
        measured = headline.measure_candidate(candidate, spec, settings)
    rounds = measured.rounds_ms.get(1)
    if not rounds:
        raise SystemExit(f"error: the headline way failed: {measured.rows[0]['error']}")
    return float(np.median(rounds[REFERENCE])), float(np.median(rounds[VARIANT]))


def main(argv: list[str] | None = None) -> int:
    """Time the variant both ways in alternating rounds; print the ratios; 1 when they differ."""
    args = parse_args(argv)
    from segopt_core.backends import ArtifactStore
    from segopt_core.benchmark import device_lock
    from segopt_core.logs import route_library_logging
    from segopt_core.pipeline.selection import select_options

    route_library_logging()
    load_before = os.getloadavg()[0]
    (options,) = [o for o in select_options(variants=[args.variant]) if o.slug == args.variant]
    product, headline, own = Way("product"), Way("headline"), Way("headline, checkpoint weights")
    with device_lock("cpu"), cf.ThreadPoolExecutor(1, thread_name_prefix="flow-task") as worker:
        checkpoint = checkpoint_of(args)
        store = ArtifactStore(args.work_dir / "artifacts")
        artifact = worker.submit(lambda: store.get_or_build(checkpoint, options).path).result()  # as a task
        ways = [
            (product, lambda: worker.submit(product_way, checkpoint, artifact, options, args).result()),
            (headline, lambda: headline_way(checkpoint, artifact, options, args)),
        ]  # the product first: like optimize-all, it starts the measuring process from a worker thread
        for r in range(args.rounds):
            log(f"round {r + 1}/{args.rounds}")
            for way, measure in ways if r % 2 == 0 else ways[::-1]:
                way.add(*measure())
            if args.checkpoint is not None:
                own.add(*headline_way(checkpoint, artifact, options, args, own_weights=True))
    lines, agree = verdict(product, headline, args.tolerance)
    load = f"1-min load average {load_before:.1f} at the start, {os.getloadavg()[0]:.1f} at the end"
    print(f"{args.variant} on {checkpoint.spec.name} ({checkpoint.path.name}), batch 1; {load}")
    print("\n".join(lines))
    if own.reference_ms:
        ratio = own.median("reference") / headline.median("reference")
        print(f"weights: torch fp32 eager with the checkpoint's weights / random-init: {ratio:.3f}")
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
