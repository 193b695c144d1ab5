"""Why flows benchmark in a spawned process: one torch artifact timed in a worker thread vs a new process.

    python benchmarks/thread_isolation.py ARTIFACT_DIR [--batch-size 1] [--iters 15]

Prints the median latency from the main thread, from a worker thread (after the main thread has run
torch, as earlier flow tasks leave OpenMP pools behind) and from `benchmark_record_isolated`.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import time

from segopt_core.backends import read_metadata
from segopt_core.backends.options import VariantOptions
from segopt_core.backends.source import spec_from_dict
from segopt_core.pipeline.jobs import CheckpointRef
from segopt_core.pipeline.record import VariantRecord
from segopt_core.pipeline.stages import benchmark_record, benchmark_record_isolated


def main() -> None:
    """Time the artifact three ways and print one line each."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("artifact")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--iters", type=int, default=15)
    args = parser.parse_args()
    meta = read_metadata(args.artifact)
    spec = spec_from_dict(meta["spec"])
    checkpoint = CheckpointRef(args.artifact, spec, meta.get("checkpoint_sha256", ""))
    options = VariantOptions.from_dict(meta["options"])
    record = VariantRecord.start(checkpoint, options, status="ok", artifact=args.artifact)

    def median_ms(fn) -> float:
        return fn(record, spec, [args.batch_size], 3, args.iters).bench_rows[0]["latency_ms_median"]

    print(f"main thread        {median_ms(benchmark_record):8.2f} ms")
    with cf.ThreadPoolExecutor(1) as pool:
        print(f"worker thread      {pool.submit(median_ms, benchmark_record).result():8.2f} ms")
        start = time.perf_counter()
        isolated = pool.submit(median_ms, benchmark_record_isolated).result()
        print(f"spawned process    {isolated:8.2f} ms  ({time.perf_counter() - start:.1f} s with start-up)")


if __name__ == "__main__":
    main()
