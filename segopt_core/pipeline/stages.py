"""The stages of optimize-all for one variant: build, benchmark, evaluate (each a plain function)."""

from __future__ import annotations

import atexit
import dataclasses
import datetime as dt
import functools
import json
import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from segopt_core.atomic import is_disk_full
from segopt_core.lifecycle import file_lock
from segopt_core.pipeline.cache import ResultCache
from segopt_core.pipeline.jobs import REFERENCE_VARIANT, VariantJob
from segopt_core.pipeline.record import VariantRecord
from segopt_core.variants import CellSpec

# Not thread-safe within one process: torch.onnx.export and torch.compile (global exporter/compiler state,
# "GLOBALS.in_onnx_export must be True") and the forward of transformers 5 SegFormer models (output recording,
# seen as "mat1 and mat2 shapes cannot be multiplied" under load). With the thread-pool runner, builds, loads
# and torch forwards take turns on this lock; ONNX Runtime / TensorRT inference runs outside it.
_TORCH_LOCK = threading.RLock()
log = logging.getLogger(__name__)
_TORCH_BACKENDS = ("torch", "torch-compile")


class _Serialized:
    """A predictor whose calls hold the torch lock."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.name, self.precision, self.device = inner, inner.name, inner.precision, inner.device

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        with _TORCH_LOCK:
            return self.inner(batch)


@dataclass(frozen=True)
class EvalSource:
    """Where accuracy comes from: a labelled dataset (`data_dir`) or unlabelled sample images."""

    data_dir: str | None = None
    samples_dir: str | None = None
    limit: int | None = None

    @property
    def mode(self) -> str:
        """'labels' when a labelled dataset is given, else 'agreement' (vs the fp32 model)."""
        return "labels" if self.data_dir else "agreement"


def check_data(data_dir: str | Path, limit: int | None = None) -> int:
    """Check the pairs an evaluation reads (the first `limit`); DatasetError names a bad one."""
    from segopt_core.data import open_dataset

    return open_dataset(data_dir, split="val").check(limit)


def sample_images(source: EvalSource) -> list[np.ndarray]:
    """The images of the evaluation source (labels ignored), at most `limit`."""
    from segopt_core.data import open_dataset

    dataset = open_dataset(source.data_dir or source.samples_dir, split="val")
    count = len(dataset) if source.limit is None else min(source.limit, len(dataset))
    return [dataset[i].image for i in range(count)]


def calibration_images(source: EvalSource, spec: CellSpec, count: int = 32) -> np.ndarray:
    """Preprocessed (N,3,H,W) images at the crop size for INT8 static calibration (train split first)."""
    from segopt_core.backends.calibration import load_calibration_images

    return load_calibration_images(source.data_dir or source.samples_dir, spec, count)


def prepare_samples(work_dir: str | Path, specs: Sequence[CellSpec], count: int = 4, seed: int = 0) -> str:
    """Synthetic sample images (no real labels needed) for label-free checks; reused when present."""
    from segopt_core.data import synth_dataset

    size = max((s.crop_size for s in specs), default=(64, 64))
    out = Path(work_dir) / "samples" / f"folder-{size[0]}x{size[1]}-n{count}-s{seed}"
    # synth_dataset writes atomically: a present folder is complete. Runs at once on one work dir take turns
    # (else both write it and the second swaps the folder away under the first one's evaluation)
    out.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(out.parent):  # the samples folder itself: no lock file left behind
        if not out.exists():
            synth_dataset(out, layout="folder", n_train=0, n_val=count, size=size, seed=seed)
    return str(out)


def build_job(job: VariantJob, store_root: str | Path, calib: EvalSource | None = None) -> VariantRecord:
    """Load the checkpoint and get (or build) the variant's artifact; an unavailable backend is 'skipped'."""
    from segopt_core.backends import ArtifactStore, BackendUnavailable
    from segopt_core.checkpoints import load_checkpoint

    started, clock = _utc_now(), time.perf_counter()
    images = None
    if calib is not None and job.options.precision == "int8-static":
        images = calibration_images(calib, job.checkpoint.spec, job.options.calibration.num_images)
    waited = 0.0
    try:
        store = ArtifactStore(store_root)
        store.clean_temp()  # temp folders of builds killed earlier (never a live build's)
        queued = time.perf_counter()
        with _TORCH_LOCK:  # export, quantization and verification all run the torch model
            waited = time.perf_counter() - queued
            loaded = load_checkpoint(job.checkpoint.path, job.checkpoint.spec)
            artifact = store.get_or_build(loaded, job.options, calib_images=images)
    except BackendUnavailable as exc:  # not a failure: this machine cannot run the backend
        return job.record("skipped", error=str(exc), started_at=started, finished_at=_utc_now())
    except Exception as exc:  # a full disk fails this variant (a row), not the run
        if not is_disk_full(exc):
            raise
        error = f"artifact store {store_root}: no space left on device ({exc})"
        return job.record("failed", error=error, started_at=started, finished_at=_utc_now())
    return job.record(
        "ok",
        artifact=str(artifact.path),
        started_at=started,
        build_seconds=round(time.perf_counter() - clock - waited, 3),
        build_wait_seconds=round(waited, 3),
        artifact_build_seconds=artifact.metadata.get("build_seconds"),
    )


def _utc_now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def benchmark_record(
    record: VariantRecord,
    spec: CellSpec,
    batch_sizes: Sequence[int],
    warmup: int,
    iters: int,
    same_round_reference: bool = True,
) -> VariantRecord:
    """Benchmark a built variant at each batch size (flat rows in `bench_rows`).

    With `same_round_reference`, the torch fp32 model of the same checkpoint is then timed in alternating
    rounds with the variant at the smallest batch size, so the speedup compares numbers measured under the
    same load (`reference_latency_ms`, `paired_latency_ms` on that row), not minutes apart.
    """
    from segopt_core.backends import BackendUnavailable, load_predictor
    from segopt_core.benchmark import benchmark_loader

    loaded: list[Any] = []
    rows = benchmark_loader(
        lambda: loaded.append(load_predictor(record.artifact)) or loaded[-1],
        spec,
        list(batch_sizes),
        variant=record.variant,
        precision=record.precision,
        device=record.device,
        skip_on=(BackendUnavailable,),
        warmup=warmup,
        iters=iters,
        checkpoint_sha256=record.checkpoint_sha256,
        model_path=record.artifact,
    )
    first = rows[0] if rows else {}
    if same_round_reference and loaded and first.get("status") == "ok":
        rows[0] = {**first, **paired_reference(loaded[0], record, spec, first, iters)}
    return dataclasses.replace(record, bench_rows=rows)


def paired_reference(
    predictor: Any, record: VariantRecord, spec: CellSpec, row: Mapping[str, Any], iters: int
) -> dict[str, Any]:
    """Median latencies of the torch fp32 reference and of the variant, timed in alternating rounds."""
    from segopt_core.benchmark import interleaved_ab
    from segopt_core.benchmark.contention import (
        PAIR_CONTENDED,
        QUALITY_SUSPECT,
        ContentionProbe,
        quality_flags,
    )
    from segopt_core.checkpoints import load_checkpoint
    from segopt_core.predictor import TorchPredictor

    if record.variant == REFERENCE_VARIANT.slug:  # the reference itself: its own loop is the pair
        return {
            "reference_latency_ms": row["latency_ms_median"],
            "paired_latency_ms": row["latency_ms_median"],
        }
    try:
        reference = TorchPredictor(load_checkpoint(record.checkpoint, spec).model)
    except Exception as exc:  # the speedup falls back to the separately measured reference
        return {"reference_error": f"{type(exc).__name__}: {exc}"}
    h, w = spec.crop_size
    batch = np.random.default_rng(0).standard_normal((row["batch_size"], 3, h, w), dtype=np.float32)
    calls = {"reference": lambda: reference(batch), "variant": lambda: predictor(batch)}
    rounds = 5  # alternating rounds: a burst of load hits both; the order rotates each round
    with ContentionProbe() as probe:
        samples = interleaved_ab(calls, rounds, max(1, iters // rounds), warmup_iters=2)
    medians = {name: round(float(np.median(s)) * 1e3, 3) for name, s in samples.items()}
    paired = {"reference_latency_ms": medians["reference"], "paired_latency_ms": medians["variant"]}
    if "contended" in quality_flags({"other_cpu_cores": probe.other_cpu_cores}):  # the speedup is suspect too
        flags = ",".join(f for f in [row.get("quality_flags") or "", PAIR_CONTENDED] if f)
        paired |= {"quality": QUALITY_SUSPECT, "quality_flags": flags}
    return paired


def benchmark_record_isolated(
    record: VariantRecord, spec: CellSpec, batch_sizes: Sequence[int], warmup: int, iters: int
) -> VariantRecord:
    """`benchmark_record` in a spawned benchmark process: what the flows' worker threads must call.

    On the 2-core CI machine, torch run from a worker thread after the main thread had used torch took
    1.5-3x longer than from the main thread (`benchmarks/thread_isolation.py`); ONNX Runtime was
    unaffected. The process measures in its main thread and is reused by the next variants, so its start-up
    and imports (about 9 s) are paid once per run, not once per variant.
    """
    from concurrent.futures.process import BrokenProcessPool

    clock = time.perf_counter()
    try:
        done = (
            benchmark_pool().submit(benchmark_record, record, spec, list(batch_sizes), warmup, iters).result()
        )
    except BrokenProcessPool:
        benchmark_pool.cache_clear()  # it died (killed, out of memory): the next variant gets a new one
        raise
    return dataclasses.replace(done, benchmark_seconds=round(time.perf_counter() - clock, 3))


@functools.cache
def benchmark_pool() -> ProcessPoolExecutor:
    """The spawned process that runs this process's benchmarks, one at a time (recycled every 16 variants)."""
    from segopt_core.lifecycle import exit_with_parent

    pool = ProcessPoolExecutor(
        max_workers=1,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=exit_with_parent,  # a killed run leaves no measurement running on the device
        initargs=(os.getpid(),),
        max_tasks_per_child=16,
    )
    atexit.register(pool.shutdown, cancel_futures=True)
    return pool


def evaluate_record(record: VariantRecord, spec: CellSpec, source: EvalSource) -> VariantRecord:
    """Accuracy of a built variant: mIoU on labels, or agreement with the fp32 checkpoint on sample images."""
    from segopt_core.backends import load_predictor
    from segopt_core.evaluation import compare_predictions, evaluate

    clock = time.perf_counter()
    with _TORCH_LOCK:
        predictor = load_predictor(record.artifact)
    if record.backend in _TORCH_BACKENDS:
        predictor = _Serialized(predictor)
    if source.mode == "labels":
        from segopt_core.data import open_dataset

        dataset = open_dataset(source.data_dir, split="val")
        result = evaluate(predictor, dataset, spec, limit=source.limit, progress=False).to_dict()
        accuracy = {"eval_mode": "labels", "eval_images": result["n_images"], "miou": result["mIoU"]}
        accuracy["per_class_iou"] = result["per_class_iou"]
    else:
        from segopt_core.checkpoints import load_checkpoint
        from segopt_core.predictor import TorchPredictor

        with _TORCH_LOCK:
            reference = _Serialized(TorchPredictor(load_checkpoint(record.checkpoint, spec).model))
        result = compare_predictions(reference, predictor, sample_images(source), spec)
        accuracy = {"eval_mode": "agreement", "eval_images": result["n_images"]}
        accuracy |= {k: result[k] for k in ("pixel_agreement", "miou_vs_reference")}
    return dataclasses.replace(
        record, accuracy=accuracy, eval_seconds=round(time.perf_counter() - clock, 3), finished_at=_utc_now()
    )


def remember(record: VariantRecord, cache_root: str | Path, stage: str | None = None) -> VariantRecord:
    """Store a completed record (or one whose `stage` just finished) in the result cache and return it;
    only 'ok' builds are cached."""
    if record.ok and record.artifact:
        plain = json.loads(json.dumps(record.to_dict(), default=str))
        try:
            ResultCache(cache_root).put(record.cache_key, record.artifact, plain, stage=stage)
        except OSError as exc:  # the result stands; only a later resume loses it
            if not is_disk_full(exc):
                raise
            log.warning(
                "result cache %s not written (no space left on device): a re-run redoes it", cache_root
            )
    return record


def recall_stage(record: VariantRecord, cache_root: str | Path, stage: str) -> VariantRecord | None:
    """The record as it was when `stage` finished in an earlier run on the same artifact, else None."""
    done = ResultCache(cache_root).get_record(record.cache_key, stage=stage, artifact=record.artifact or None)
    return None if done is None else dataclasses.replace(done, reused=True)
