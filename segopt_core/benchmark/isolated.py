"""The measuring process: every segopt measurement runs in one spawned process that only loads and measures.

optimize-all / nightly-benchmark, `segopt benchmark` and `benchmarks/headline.py` build (or find) their
artifacts in their own process, then hand each measurement to this process, so the figures a user reads
in a report and the headline's are taken the same way. Why a process of its own: on the 2-core CI machine,
torch run from a worker thread after the main thread had used torch took 1.5-3x longer than from the main
thread (`benchmarks/thread_isolation.py`), and a process that also built the artifacts carries their
compile workers, runtime threads and heap. The process measures in its main thread, on the CPUs of its
parent's main thread (a library may have pinned the thread that starts it), and is reused by the next
measurements (its start-up, about 9 s, is paid once per run), recycled every 16; it exits with its parent.
"""

from __future__ import annotations

import atexit
import functools
import multiprocessing
import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from segopt_core.benchmark.paired import Candidate, MeasureConfig, Measurement, Shape, built, measure_variant
from segopt_core.predictor import Predictor
from segopt_core.variants import CellSpec

T = TypeVar("T")


@dataclass(frozen=True)
class ReferenceSource:
    """Where the measuring process gets the torch fp32 eager reference: the checkpoint file, or (without one)
    a random-init model of the cell (`seed`), as the headline measures."""

    spec: CellSpec
    checkpoint: str | None = None
    seed: int = 0

    def predictor(self) -> Predictor:
        """The reference, loaded once per process for the measurements that follow."""
        from segopt_core.predictor import TorchPredictor

        return TorchPredictor(_reference_model(self))


@functools.lru_cache(maxsize=1)  # the variants of one checkpoint are measured one after another
def _reference_model(source: ReferenceSource) -> Any:
    if source.checkpoint is None:
        from segopt_core.models import build_model

        return build_model(source.spec, seed=source.seed)
    from segopt_core.checkpoints import load_checkpoint

    return load_checkpoint(source.checkpoint, source.spec).model


@functools.lru_cache(maxsize=2)
def _peer(folder: str, threads: int | None) -> Predictor:
    from segopt_core.backends import load_predictor

    return load_predictor(folder, num_threads=threads)


def measure_isolated(
    candidate: Candidate,
    shape: Shape,
    config: MeasureConfig,
    reference: ReferenceSource | None = None,
    peers: Mapping[str, str | Path] | None = None,
    *,
    images: Sequence[str | Path] | None = None,
    on_row: Callable[[dict[str, Any]], None] | None = None,
) -> Measurement:
    """`measure_variant` in the measuring process; the artifact is built (or found) here first, `peers`
    (name -> artifact folder) are loaded there and timed in the same rounds."""
    ready = built(candidate, shape, config)
    if isinstance(ready, Measurement):  # skipped or failed before anything could be measured
        measured = ready
    else:
        peer_folders = {name: str(folder) for name, folder in (peers or {}).items()}
        measured = in_measuring_process(_measure_here, ready, shape, config, reference, peer_folders, images)
    for row in measured.rows if on_row is not None else []:
        on_row(dict(row))
    return measured


def _measure_here(
    candidate: Candidate,
    shape: Shape,
    config: MeasureConfig,
    reference: ReferenceSource | None,
    peers: dict[str, str],
    images: Sequence[str | Path] | None,
) -> Measurement:
    """(In the measuring process) the measurement, with the reference and peers loaded once per process."""
    if config.threads:
        import torch

        torch.set_num_threads(config.threads)  # the reference is torch whatever the variant's backend
    loaded = {name: _peer(folder, config.threads) for name, folder in peers.items()}
    ref = None if reference is None else reference.predictor
    return measure_variant(candidate, shape, config, ref, loaded, images=images)


def in_measuring_process(fn: Callable[..., T], *args: Any) -> T:
    """fn(*args) in the measuring process (started on first use); a process that died (killed, out of
    memory) raises BrokenProcessPool and the next call gets a new one."""
    try:
        return measuring_pool().submit(fn, *args).result()
    except BrokenProcessPool:
        measuring_pool.cache_clear()
        raise


@functools.cache
def measuring_pool() -> ProcessPoolExecutor:
    """The spawned process that runs this process's measurements, one at a time (recycled every 16)."""
    from segopt_core.lifecycle import start_measuring_process

    pool = ProcessPoolExecutor(
        max_workers=1,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=start_measuring_process,  # a killed run leaves no measurement running on the device
        initargs=(os.getpid(), sorted(os.sched_getaffinity(os.getpid()))),
        max_tasks_per_child=16,
    )
    atexit.register(pool.shutdown, cancel_futures=True)
    return pool
